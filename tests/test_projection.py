"""Projection methods on vocabularies whose geometry we control."""

from __future__ import annotations

import torch

from audit.projection import METHODS, project, resolve_methods
from audit.stats import compute_stats
from audit.vocab import vocabulary_from_tensors
from tests.conftest import WORDS, orthogonal_rows, word_level_tokenizer

ALL = tuple(METHODS)


def _stats(vocab):
    return compute_stats(vocab, chunk_size=4)


def test_every_row_projects_to_itself_under_every_method(tiny_vocab):
    stats = _stats(tiny_vocab)
    prompt = tiny_vocab.input.rows(0, len(WORDS))  # every real word once
    tops = project(prompt, tiny_vocab, stats, ALL, 3)
    for method, top in tops.items():
        assert top.ids[:, 0].tolist() == list(range(len(WORDS))), method


def test_placeholder_tokens_are_never_ranked_but_control_tokens_are():
    words = WORDS + ["[unused0]"]
    rows = orthogonal_rows(len(words) + 1, 16)
    vocab = vocabulary_from_tensors(rows, word_level_tokenizer(words))
    unused, unk = len(WORDS), len(WORDS) + 1
    assert vocab.tokens.special[unused] and not vocab.tokens.special[unk]
    stats = _stats(vocab)
    tops = project(vocab.input.rows(unused, unk + 1), vocab, stats, ALL, 5)
    for method, top in tops.items():
        assert unused not in top.ids.flatten().tolist(), method
        assert top.ids[1, 0] == unk, method  # the [UNK] row reads as [UNK]


def test_vector_between_buenos_and_blancos_lists_both(tiny_vocab):
    stats = _stats(tiny_vocab)
    e = tiny_vocab.input.rows(0, len(WORDS))
    buenos, blancos = WORDS.index("buenos"), WORDS.index("blancos")
    prompt = (0.6 * e[buenos] + 0.4 * e[blancos])[None, :]
    tops = project(prompt, tiny_vocab, stats, ("l2", "cosine", "dot"), 2)
    for method, top in tops.items():
        assert top.ids[0].tolist() == [buenos, blancos], method


def test_embed_scale_is_applied_before_comparing():
    rows = orthogonal_rows(len(WORDS) + 1, 16)
    vocab = vocabulary_from_tensors(rows, word_level_tokenizer(WORDS), embed_scale=25.0)
    stats = compute_stats(vocab)
    # A PEFT prompt lives in the scaled space: row 3 * 25 is exactly token 3 (distance 0).
    prompt = rows[3:4] * 25.0
    top = project(prompt, vocab, stats, ("l2",), 2)["l2"]
    assert top.ids[0, 0] == 3
    assert abs(float(top.scores[0, 0])) < 1e-3
    # The raw (unscaled) row is far from the scaled token: distance ~ 24 * |row|.
    raw = project(rows[3:4], vocab, stats, ("l2",), 1)["l2"]
    assert float(-raw.scores[0, 0]) > 20


def test_chunked_equals_unchunked():
    gen = torch.Generator().manual_seed(1)
    words = [f"w{i}" for i in range(5000)]
    rows = torch.randn(len(words) + 1, 48, generator=gen)
    vocab = vocabulary_from_tensors(rows, word_level_tokenizer(words))
    stats = compute_stats(vocab)
    prompt = torch.randn(4, 48, generator=gen) * 3
    whole = project(prompt, vocab, stats, ALL, 5, chunk_size=100_000)
    chunked = project(prompt, vocab, stats, ALL, 5, chunk_size=2048)
    for method in ALL:
        assert torch.equal(whole[method].ids, chunked[method].ids), method
        assert torch.equal(whole[method].scores, chunked[method].scores), method


def test_unknown_method_is_refused_with_the_list():
    import pytest

    from audit.errors import AuditInputError

    with pytest.raises(AuditInputError, match="unknown projection method.*choose from l2"):
        resolve_methods(("l2", "nearest"))
    assert resolve_methods(("all",)) == ALL
    assert resolve_methods(("cosine", "l2")) == ("l2", "cosine")  # registry order


def test_prompt_dimension_must_match_the_model(tiny_vocab):
    import pytest

    from audit.errors import AuditInputError

    with pytest.raises(AuditInputError, match="dim|d_model"):
        project(torch.zeros(2, 7), tiny_vocab, _stats(tiny_vocab), ("l2",), 3)
