"""Projection methods on vocabularies whose geometry we control."""

from __future__ import annotations

import torch

from audit.geometry.engine import project
from audit.geometry.methods import METHODS, resolve_methods
from audit.geometry.stats import compute_stats
from audit.inputs.vocab import vocabulary_from_tensors
from tests.helpers import WORDS, orthogonal_rows, word_level_tokenizer

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


# ---------------------------------------------------------------------------------------------
# Properties (hypothesis) on random vocabularies

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _random_vocab(seed: int, n: int = 40, d: int = 12):
    gen = torch.Generator().manual_seed(seed)
    words = [f"t{i}" for i in range(n)]
    rows = torch.randn(n + 1, d, generator=gen) * (0.5 + torch.rand(n + 1, 1, generator=gen))
    vocab = vocabulary_from_tensors(rows, word_level_tokenizer(words))
    return vocab, compute_stats(vocab)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), row=st.integers(0, 39))
def test_property_a_vocabulary_row_is_its_own_top1(seed, row):
    vocab, stats = _random_vocab(seed)
    tops = project(vocab.input.rows(row, row + 1), vocab, stats, ("l2", "cosine", "centered", "whitened"), 1)
    for method, top in tops.items():
        assert int(top.ids[0, 0]) == row, method


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), factor=st.floats(0.01, 100.0))
def test_property_cosine_ranking_is_scale_invariant(seed, factor):
    vocab, stats = _random_vocab(seed)
    prompt = torch.randn(3, 12, generator=torch.Generator().manual_seed(seed + 1))
    a = project(prompt, vocab, stats, ("cosine",), 10)["cosine"]
    b = project(prompt * factor, vocab, stats, ("cosine",), 10)["cosine"]
    assert torch.equal(a.ids, b.ids)
    assert torch.allclose(a.scores, b.scores, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_property_l2_ranking_equals_norm_minus_twice_dot(seed):
    vocab, stats = _random_vocab(seed)
    prompt = torch.randn(2, 12, generator=torch.Generator().manual_seed(seed + 7)) * 2
    top = project(prompt, vocab, stats, ("l2",), 41)["l2"]
    e = vocab.input.rows(0, 41).double()  # 40 words + [UNK] (a control token, ranked)
    key = (e * e).sum(1)[None, :] - 2 * prompt.double() @ e.T  # ||E||^2 - 2 p.E, smaller = nearer
    expected = torch.argsort(key, dim=1, stable=True)
    assert torch.equal(top.ids, expected)


def test_anisotropic_vocabulary_cosine_prefers_the_frequency_direction_centered_does_not():
    """All tokens share a large common direction c (anisotropy). Token 0 is the 'hub' lying almost on c.
    A prompt c + 0.3 u_5 is closest in angle to the hub under raw cosine, but once the vocabulary mean
    (~c) is removed it points at token 5."""
    d, n = 16, 12
    gen = torch.Generator().manual_seed(3)
    basis = orthogonal_rows(n + 1, d, seed=5)
    c = basis[0] * 4.0
    rows = torch.stack([c * 1.5 + 0.05 * basis[1]] + [c + 1.2 * basis[i] for i in range(1, n)])
    rows = torch.cat([rows, 0.1 * torch.randn(1, d, generator=gen)])  # [UNK]
    words = [f"w{i}" for i in range(n)]
    vocab = vocabulary_from_tensors(rows, word_level_tokenizer(words))
    stats = compute_stats(vocab)
    prompt = (c + 0.3 * basis[5])[None, :]
    tops = project(prompt, vocab, stats, ("cosine", "centered"), 3)
    assert int(tops["cosine"].ids[0, 0]) == 0
    assert int(tops["centered"].ids[0, 0]) == 5


def test_removing_principal_directions_changes_centered_only():
    vocab, stats = _random_vocab(11, n=60, d=12)
    prompt = torch.randn(4, 12, generator=torch.Generator().manual_seed(2))
    base = project(prompt, vocab, stats, ("cosine", "centered"), 5)
    abtt = project(prompt, vocab, stats.with_components(3), ("cosine", "centered"), 5)
    assert torch.equal(base["cosine"].ids, abtt["cosine"].ids)
    assert not torch.equal(base["centered"].scores, abtt["centered"].scores)
