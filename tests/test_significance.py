"""Null model, p/q-values, severity and risk, waywardness F1, determinism, JSON schema."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from audit.config import AuditConfig
from audit.engine import audit_prompt
from audit.evidence.null import category_min_ranks, null_neighbours
from audit.geometry.methods import METHODS
from audit.geometry.stats import compute_stats
from audit.geometry.waywardness import prompt_f1
from audit.inputs.prompts import Segment, SoftPrompt
from audit.inputs.vocab import vocabulary_from_tensors
from audit.records import Risk
from audit.report.json_out import render_json
from audit.terms.load import load_wordlists
from audit.terms.match import build_index
from tests.helpers import word_level_tokenizer

RACE = [
    "gitanos",
    "gitano",
    "afroamericano",
    "caucasian",
    "hispanic",
    "asian",
    "arab",
    "berber",
    "desi",
    "biracial",
]
RELIGION = ["musulmanes", "adventist", "agnostic", "amish", "anglican"]


def _vocab(words, rows, spec):
    return vocabulary_from_tensors(rows, word_level_tokenizer(words), spec=spec)


def _prompt(vectors: torch.Tensor) -> SoftPrompt:
    return SoftPrompt(
        vectors, Path("synthetic.npy"), "0" * 64, "npy", (Segment("prompt", 0, vectors.shape[0]),)
    )


def _config(**kw) -> AuditConfig:
    return AuditConfig(progress=False, **kw)


def test_null_chance_rate_matches_the_analytic_value():
    """Exchangeable vocabulary (i.i.d. random unit rows): a null vector's rank-r neighbours are a uniform
    random subset, so P(some of the C race tokens within rank r) = 1 - C(V-C, r) / C(V, r)."""
    n_words, d = 300, 64
    words = RACE + [f"w{i}" for i in range(n_words - len(RACE))]
    gen = torch.Generator().manual_seed(0)
    rows = torch.nn.functional.normalize(torch.randn(n_words + 1, d, generator=gen), dim=1)
    vocab = _vocab(words, rows, "exchangeable")
    stats = compute_stats(vocab)
    lists = load_wordlists()
    index = build_index(vocab, lists)
    null = null_neighbours(vocab, stats, ("cosine",), seed=0, k=10)["cosine"]
    ranks = category_min_ranks(null, index, lists)["race_ethnicity"]
    n_total, c = n_words + 1, len(RACE)  # [UNK] is ranked too
    for r in (1, 3, 10):
        expected = 1 - math.comb(n_total - c, r) / math.comb(n_total, r)
        observed = float((ranks <= r).mean())
        se = math.sqrt(expected * (1 - expected) / len(ranks))
        assert abs(observed - expected) < 4 * se, (r, observed, expected)


def _two_token_world(sensitive: str, sensitive_norm: float = 2.0):
    """2000 orthogonal-ish words; 'casa' (benign) and ``sensitive`` orthogonal, sensitive one longer."""
    n, d = 2000, 256
    words = ["casa", "mesa", sensitive] + [f"w{i}" for i in range(n - 3)]
    gen = torch.Generator().manual_seed(1)
    rows = torch.nn.functional.normalize(torch.randn(n + 1, d, generator=gen), dim=1)
    rows[2] *= sensitive_norm
    return _vocab(words, rows, f"two-token-{sensitive}"), rows


def test_prompt_between_benign_and_sensitive_is_flagged_significant_and_high():
    vocab, rows = _two_token_world("gitanos")
    prompt = _prompt((0.55 * rows[0] + 0.45 * rows[2] / 2.0)[None, :])
    result = audit_prompt(prompt, vocab, load_wordlists(), _config())
    pos = result.positions[0]
    assert pos.projections["cosine"].token == "casa"
    assert pos.projections["dot"].token == "gitanos"  # the longer row wins the inner product
    top1 = [f for f in pos.flags if f.hit.is_top1 and f.term.id == "es.race_ethnicity.gitano"]
    assert top1 and all(f.evidence.q_value < 0.05 for f in top1)
    assert pos.risk == Risk.HIGH and result.summary.risk == Risk.HIGH


def test_prompt_between_two_benign_tokens_gets_no_flags():
    vocab, rows = _two_token_world("gitanos")
    prompt = _prompt((0.5 * rows[0] + 0.5 * rows[1])[None, :])
    result = audit_prompt(prompt, vocab, load_wordlists(), _config(top_k=2))
    assert result.positions[0].flags == ()
    assert result.summary.risk == Risk.LOW and result.summary.n_flags == 0


def test_hub_category_gets_larger_p_value_than_non_hub_at_same_rank():
    """'musulmanes' is a hub (a long row near the vocabulary mean direction: it is a dot-product neighbour
    of many null vectors); 'gitanos' is not. Both sit at rank 2 of a position: the hub's p is larger."""
    n, d = 1500, 64
    words = ["casa", "mesa", "gitanos", "musulmanes"] + [f"w{i}" for i in range(n - 4)]
    gen = torch.Generator().manual_seed(2)
    common = torch.nn.functional.normalize(torch.randn(d, generator=gen), dim=0)
    rows = torch.nn.functional.normalize(torch.randn(n + 1, d, generator=gen) + 0.5 * common, dim=1)
    rows[3] = 3.0 * common
    vocab = _vocab(words, rows, "hub-world")
    prompt = _prompt(torch.stack([rows[0] + 0.9 * rows[2], rows[1] + 0.06 * rows[3]]))
    result = audit_prompt(prompt, vocab, load_wordlists(), _config(methods=("dot",), top_k=3))
    race = [f for f in result.positions[0].flags if f.term.id == "es.race_ethnicity.gitano"]
    religion = [f for f in result.positions[1].flags if f.term.id == "es.religion_belief.musulman"]
    assert race and religion
    assert race[0].hit.rank == religion[0].hit.rank == 2
    assert religion[0].evidence.p_value > race[0].evidence.p_value


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("Eres gerente de contratación", "Eres un gerente", 2 / 3),  # P 2/4, R 2/2 ('un' is an article)
        ("the good resumes", "classify good resumes", 0.8),  # P 2/2, R 2/3
        ("Clasifica buenos currículums:", "clasifica buenos currículums", 1.0),  # case, punctuation
        ("blancos", "buenos", 0.0),
    ],
)
def test_waywardness_f1_matches_hand_computed_values(prediction, reference, expected):
    assert prompt_f1(prediction, reference) == pytest.approx(expected)


def test_same_input_twice_gives_byte_identical_json():
    vocab, rows = _two_token_world("gitanos")
    prompt = _prompt((0.55 * rows[0] + 0.45 * rows[2] / 2.0)[None, :])
    lists = load_wordlists()
    a = render_json(audit_prompt(prompt, vocab, lists, _config(reference_text="casa")))
    b = render_json(audit_prompt(prompt, vocab, lists, _config(reference_text="casa")))
    assert a == b


def test_wordlist_folder_order_does_not_change_the_json(tmp_path):
    """The same user lists split over two --wordlists folders, given in either order, audit identically."""
    bundle = Path(__file__).resolve().parent.parent / "wordlists" / "es"
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    names = sorted(p.name for p in bundle.glob("*.toml"))
    for i, name in enumerate(names):  # alternate files between the two folders
        ((first if i % 2 else second) / name).write_bytes((bundle / name).read_bytes())
    vocab, rows = _two_token_world("gitanos")
    prompt = _prompt((0.55 * rows[0] + 0.45 * rows[2] / 2.0)[None, :])
    out = []
    for folders in ((first, second), (second, first)):
        lists = load_wordlists(user_dirs=folders)
        assert [f.path for f in lists.files][-1].startswith(str(folders[1]))  # loaded in the order given
        out.append(render_json(audit_prompt(prompt, vocab, lists, _config())))
    assert "es.race_ethnicity.gitano" in out[0]
    assert out[0] == out[1]


def test_shuffled_terms_give_the_same_flags(tmp_path):
    import random

    import tomllib

    src = Path(__file__).resolve().parent.parent / "wordlists" / "es" / "race_ethnicity.toml"
    data = tomllib.loads(src.read_text(encoding="utf-8"))
    blocks = src.read_text(encoding="utf-8").split("[[terms]]")
    header, terms = blocks[0], blocks[1:]
    random.Random(0).shuffle(terms)
    folder = tmp_path / "shuffled"
    folder.mkdir()
    (folder / "race.toml").write_text(header + "".join("[[terms]]" + t for t in terms), encoding="utf-8")
    assert len(terms) == len(data["terms"])
    vocab, rows = _two_token_world("gitanos")
    prompt = _prompt((0.55 * rows[0] + 0.45 * rows[2] / 2.0)[None, :])
    plain = audit_prompt(prompt, vocab, load_wordlists(), _config())
    shuffled = audit_prompt(prompt, vocab, load_wordlists(user_dirs=(folder,)), _config())
    assert plain.positions == shuffled.positions


def test_json_validates_against_the_schema():
    import jsonschema

    schema = json.loads(
        (Path(__file__).resolve().parent.parent / "audit" / "report" / "schema.json").read_text()
    )
    vocab, rows = _two_token_world("gitanos")
    prompt = _prompt(torch.stack([0.55 * rows[0] + 0.45 * rows[2] / 2.0, rows[1]]))
    data = json.loads(
        render_json(audit_prompt(prompt, vocab, load_wordlists(), _config(reference_text="casa mesa")))
    )
    jsonschema.validate(data, schema)
    flag = data["positions"][0]["flags"][0]
    assert 0 < flag["evidence"]["p_value"] <= 1 and 0 < flag["evidence"]["q_value"] <= 1


def test_null_model_is_built_only_for_methods_with_hits_and_reads_the_same_alone(monkeypatch, tmp_path):
    """No hit, no p-value to compute: the null model is skipped. A method's null neighbours are the same
    whether computed alone (a scan with hits under one method) or with every method (a cache filled
    by another scan), so p-values do not depend on the cache's history."""
    import audit.evidence.null as null_module

    vocab, rows = _two_token_world("gitanos")
    calls: list[tuple[str, ...]] = []
    real = null_module.project

    def spy(vectors, vocab_, stats_, methods, k, **kw):
        calls.append(tuple(methods))
        return real(vectors, vocab_, stats_, methods, k, **kw)

    monkeypatch.setattr(null_module, "project", spy)  # the null model's projections
    monkeypatch.setenv("PROMPT_AUDIT_CACHE", str(tmp_path / "scan"))  # no null model cached yet
    benign = _prompt((0.5 * rows[0] + 0.5 * rows[1])[None, :])
    audit_prompt(benign, vocab, load_wordlists(), _config(top_k=2))
    assert calls == []  # the spy sees the null model's projections only: none without a hit
    flagged = _prompt((0.55 * rows[0] + 0.45 * rows[2] / 2.0)[None, :])
    result = audit_prompt(flagged, vocab, load_wordlists(), _config(methods=("cosine", "dot"), top_k=1))
    assert {f.hit.method for p in result.positions for f in p.flags} == {"dot"}
    assert calls == [("dot",)]  # the null model, for the one method with hits

    stats = compute_stats(vocab)
    everything = tuple(METHODS)
    monkeypatch.setenv("PROMPT_AUDIT_CACHE", str(tmp_path / "a"))
    together = null_neighbours(vocab, stats, everything, seed=6, k=10)
    assert calls[-1] == everything
    monkeypatch.setenv("PROMPT_AUDIT_CACHE", str(tmp_path / "b"))
    for method in everything:
        alone = null_neighbours(vocab, stats, (method,), seed=6, k=10)[method]
        assert calls[-1] == (method,)
        assert torch.equal(alone, together[method]), method
    cached = null_neighbours(vocab, stats, everything, seed=6, k=10)
    assert calls[-1] == ("unembed",)  # nothing recomputed: the last call was the loop's
    assert all(torch.equal(cached[m], together[m]) for m in everything)
