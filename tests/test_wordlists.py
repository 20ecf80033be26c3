"""Wordlists: the shipped bundle validates, and matching works across tokenizer families."""

from __future__ import annotations

import pytest
import torch

from audit.cli import main
from audit.errors import AuditInputError
from audit.evidence.hits import find_hits
from audit.geometry.engine import TopK
from audit.inputs.vocab import vocabulary_from_tensors
from audit.records import Severity
from audit.terms.bundle import check_bundle
from audit.terms.load import load_wordlists
from audit.terms.match import build_index, coverage, normalize
from audit.terms.schema import categories
from tests.helpers import word_level_tokenizer

CORPUS_WORDS = [
    "blancos",
    "blanca",
    "blanco",
    "étnico",
    "gitano",
    "musulmana",
    "casa",
    "perro",
    "buenos",
    "the",
]


def test_shipped_bundle_passes_full_validation():
    assert check_bundle() == []


def test_bundle_covers_every_category_in_both_languages():
    lists = load_wordlists()
    present = {(t.language, t.category) for t in lists.terms}
    for language in ("es", "en"):
        for category in categories():
            assert (language, category) in present, (language, category)
    by_id = {t.id: t for t in lists.terms}
    blanco = by_id["es.race_ethnicity.blanco"]
    assert set(blanco.forms) >= {"blanco", "blanca", "blancos", "blancas"}
    assert blanco.policy == "downweight" and "colour" in blanco.ambiguity
    assert all(t.severity == Severity.HIGH for t in lists.terms if t.kind == "slur")


def test_seed_terms_are_known_in_every_inflection():
    forms = {normalize(f) for t in load_wordlists().terms for f in t.forms}
    for word in ("blancos", "musulmana", "gitano", "discapacitado", "anciano", "gay", "black"):
        assert word in forms, word


def _byte_bpe():
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator([" ".join(CORPUS_WORDS)] * 200, vocab_size=400, min_frequency=1)
    return tok


def _sentencepiece():
    from tokenizers import SentencePieceBPETokenizer

    tok = SentencePieceBPETokenizer()
    tok.train_from_iterator([" ".join(CORPUS_WORDS)] * 200, vocab_size=300, min_frequency=1)
    return tok


def _wordpiece_uncased():
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(lowercase=True, strip_accents=True)
    tok.train_from_iterator([" ".join(CORPUS_WORDS)] * 200, vocab_size=200, min_frequency=1)
    return tok


def _vocab(raw_tokenizer, spec):
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw_tokenizer._tokenizer)
    n = len(tokenizer)
    rows = torch.randn(n, 8, generator=torch.Generator().manual_seed(0))
    return vocabulary_from_tensors(rows, tokenizer, spec=spec)


def _term_ids_for(vocab, index, word):
    ids = [i for i, s in enumerate(vocab.tokens.surfaces) if normalize(s.strip().lstrip("#")) == word]
    return {t for i in ids for t in index.token_terms.get(i, ())}


@pytest.mark.parametrize(
    ("factory", "marker"),
    [(_byte_bpe, "Ġ"), (_sentencepiece, "▁"), (_wordpiece_uncased, None)],
)
def test_matching_across_tokenizer_families(factory, marker):
    vocab = _vocab(factory(), factory.__name__)
    index = build_index(vocab, load_wordlists())
    if marker:
        assert any(p.startswith(marker) for p in vocab.tokens.pieces)
    strip = vocab.strips_accents
    etnico = "etnico" if strip else "étnico"
    hits = {
        "blancos": "es.race_ethnicity.blanco",
        "gitano": "es.race_ethnicity.gitano",
        "musulmana": "es.religion_belief.musulman",
    }
    for word, term_id in hits.items():
        assert term_id in _term_ids_for(vocab, index, word), (factory.__name__, word)
    # Byte-level BPE maps 'é' to other bytes: decoding, not stripping 'Ġ', recovers the word.
    etnico_ids = [i for i, s in enumerate(vocab.tokens.surfaces) if s.strip() == etnico]
    assert etnico_ids, (factory.__name__, [p for p in vocab.tokens.pieces if "tn" in p])
    assert not _term_ids_for(vocab, index, "casa")


def test_wordpiece_uncased_strips_accents_on_both_sides():
    vocab = _vocab(_wordpiece_uncased(), "wp")
    assert vocab.uncased and vocab.strips_accents
    assert "etnico" in {s.strip() for s in vocab.tokens.surfaces}


@pytest.mark.slow
def test_real_vocabularies_match_blancos_blanca_blanco(gemma_vocab, minilm_path):
    from audit.inputs.formats import load_vocabulary

    lists = load_wordlists()
    gemma_index = build_index(gemma_vocab, lists)
    for piece in ("▁blancos", "▁blanca"):
        tok = gemma_vocab.tokenizer.convert_tokens_to_ids(piece)
        assert "es.race_ethnicity.blanco" in gemma_index.token_terms[tok], piece
    minilm = load_vocabulary("all-minilm-l6-v2")
    minilm_index = build_index(minilm, lists)
    tok = minilm.tokenizer.convert_tokens_to_ids("blanco")
    assert "es.race_ethnicity.blanco" in minilm_index.token_terms[tok]
    assert lists.term("es.race_ethnicity.blanco").policy == "downweight"
    rows = coverage(lists, gemma_index)
    assert {(r.language, r.category) for r in rows} >= {("es", "race_ethnicity"), ("en", "race_ethnicity")}


USER_LIST = """schema = 1
id = "es.socioeconomic"
version = "0.1.0"
language = "es"
category = "socioeconomic"
licence = "CC0-1.0"

[[terms]]
id = "es.socioeconomic.perro"
lemma = "perro"
forms = ["perro", "perros"]
kind = "descriptor"
severity = "medium"
sources = ["curated"]

[[terms]]
id = "es.race_ethnicity.gitano"
deprecated = true
"""


def test_user_list_adds_and_deprecates_terms(tmp_path):
    (tmp_path / "mine.toml").write_text(
        USER_LIST.replace('id = "es.race_ethnicity.gitano"', 'id = "es.socioeconomic.gitano_x"')
    )
    lists = load_wordlists(user_dirs=(tmp_path,))
    ids = {t.id for t in lists.terms}
    assert "es.socioeconomic.perro" in ids
    assert any(f.origin == "user" for f in lists.files)


def test_user_list_can_deprecate_a_shipped_term(tmp_path):
    (tmp_path / "a.toml").write_text(USER_LIST)
    # The deprecation lives in a socioeconomic file but names a race id: ids are global.
    lists = load_wordlists(user_dirs=(tmp_path,))
    assert "es.race_ethnicity.gitano" not in {t.id for t in lists.terms}


def test_allowlist_suppresses_with_reason(tmp_path):
    vocab = _vocab(_sentencepiece(), "sp")
    allow = tmp_path / "allow.toml"
    allow.write_text('[[allow]]\nform = "blancos"\nlanguage = "es"\nreason = "colour: vino blanco context"\n')
    lists = load_wordlists(allowlist=allow)
    index = build_index(vocab, lists)
    tok = next(i for i, s in enumerate(vocab.tokens.surfaces) if s.strip() == "blancos")
    tops = {"l2": TopK(torch.tensor([[tok, 0]]), torch.tensor([[0.0, -1.0]]))}
    hits = [h for h in find_hits(tops, vocab, index, lists) if h.term_id == "es.race_ethnicity.blanco"]
    assert hits and all(h.suppressed == "colour: vino blanco context" for h in hits)


def test_malformed_toml_is_exit_2_naming_file_and_line(tmp_path, capsys):
    bad = tmp_path / "lists"
    bad.mkdir()
    (bad / "broken.toml").write_text('schema = 1\nid = "es.age"\nseverity = medium\n')
    code = main(["wordlists", "list", "--wordlists", str(bad)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{bad / 'broken.toml'}:3: malformed TOML" in err
    assert len(err.strip().splitlines()) == 1
    (bad / "broken.toml").write_text('schema = 1\nid = "es.age"\nforms = ["a", "b"\n')
    assert main(["wordlists", "list", "--wordlists", str(bad)]) == 2
    assert f"{bad / 'broken.toml'}:3: malformed TOML" in capsys.readouterr().err


def test_schema_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "lists"
    bad.mkdir()
    text = USER_LIST.replace('severity = "medium"', 'severity = "extreme"')
    (bad / "sev.toml").write_text(text)
    with pytest.raises(AuditInputError) as info:
        load_wordlists(user_dirs=(bad,))
    line = text.splitlines().index('id = "es.socioeconomic.perro"') + 1
    assert f"sev.toml:{line}:" in str(info.value)
    assert "severity 'extreme'" in str(info.value)


def test_wordlists_check_cli_passes_on_bundle(capsys):
    assert main(["wordlists", "check"]) == 0
    assert "wordlists OK" in capsys.readouterr().out


def test_prefix_piece_of_a_multi_token_term_gives_one_partial_hit():
    """Gemma spells 'musulmana' as '▁musul' + 'mana': the word-start piece alone is a partial hit."""
    from tokenizers import SentencePieceBPETokenizer

    raw = SentencePieceBPETokenizer()
    raw.train_from_iterator(["musul casa perro mesa"] * 100, vocab_size=60, min_frequency=1)
    vocab = _vocab(raw, "sp-prefix")
    lists = load_wordlists()
    index = build_index(vocab, lists)
    musul = next(i for i, p in enumerate(vocab.tokens.pieces) if p == "▁musul")
    assert not index.covered["es.religion_belief.musulman"]
    assert "es.religion_belief.musulman" in index.prefix[musul]
    tops = {"cosine": TopK(torch.tensor([[musul, 0]]), torch.tensor([[0.9, 0.1]]))}
    hits = [h for h in find_hits(tops, vocab, index, lists) if h.term_id == "es.religion_belief.musulman"]
    assert len(hits) == 1 and hits[0].partial and hits[0].rank == 1


def test_acronyms_match_case_sensitively_where_the_tokenizer_keeps_case():
    words = ["als", "ALS", "casa"]
    vocab = vocabulary_from_tensors(torch.randn(len(words) + 1, 8), word_level_tokenizer(words), spec="acr")
    lists = load_wordlists()
    term = next(t for t in lists.terms if "ALS" in t.forms)
    index = build_index(vocab, lists)
    assert term.id in index.token_terms.get(1, ())
    assert term.id not in index.token_terms.get(0, ())
