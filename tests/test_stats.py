"""Vocabulary statistics against their definitions, computed here the slow, direct way."""

from __future__ import annotations

import pytest
import torch

from audit.geometry import stats as stats_mod
from audit.geometry.stats import SHRINKAGE, compute_stats, whitening
from audit.inputs.vocab import vocabulary_from_tensors
from tests.helpers import word_level_tokenizer


def _reference_precision(cov: torch.Tensor, rank: int | None) -> torch.Tensor:
    """DESIGN's whitening: full eigh, ridge = SHRINKAGE x mean eigenvalue; with ``rank``, eigenvalues
    past the top ``rank`` replaced by their mean first."""
    evals, evecs = torch.linalg.eigh(cov.to(torch.float64))
    evals = evals.clamp_min(0.0)
    if rank is not None:
        tail = evals[: len(evals) - rank]
        evals = torch.cat([torch.full_like(tail, float(tail.mean())), evals[len(evals) - rank :]])
    ridge = SHRINKAGE * float(evals.mean())
    return (evecs / (evals + ridge)) @ evecs.T


def _anisotropic_cov(d: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(4 * d, d, generator=gen, dtype=torch.float64) * torch.logspace(
        0, -2, d, dtype=torch.float64
    )
    return x.T @ x / x.shape[0]


def test_exact_whitening_is_the_ridge_regularised_inverse():
    cov = _anisotropic_cov(48)
    got = whitening(cov).precision().to(torch.float64)
    expected = _reference_precision(cov, None)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6 * float(expected.abs().max()))


def test_large_d_whitening_equals_the_full_eigh_with_its_tail_averaged(monkeypatch):
    # The partial (top-rank) eigensolver must give the same matrix as the definition.
    monkeypatch.setattr(stats_mod, "EXACT_WHITEN_MAX_DIM", 64)
    monkeypatch.setattr(stats_mod, "WHITEN_RANK", 16)
    cov = _anisotropic_cov(96, seed=1)
    white = stats_mod.whitening(cov)
    assert white.basis.shape == (16, 96) and white.iso > 0
    expected = _reference_precision(cov, 16)
    got = white.precision().to(torch.float64)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


@pytest.mark.parametrize("large_d", [False, True])
def test_per_token_statistics_match_their_definitions(monkeypatch, large_d):
    if large_d:  # exercise the low-rank-plus-isotropic path on a small vocabulary
        monkeypatch.setattr(stats_mod, "EXACT_WHITEN_MAX_DIM", 16)
        monkeypatch.setattr(stats_mod, "WHITEN_RANK", 8)
    words = [f"w{i}" for i in range(300)]
    gen = torch.Generator().manual_seed(3)
    rows = torch.randn(len(words) + 1, 24, generator=gen) * torch.linspace(2.0, 0.2, 24) + 0.5
    vocab = vocabulary_from_tensors(rows, word_level_tokenizer(words), embed_scale=3.0)
    st = stats_mod.compute_stats(vocab, chunk_size=64)
    scaled = rows * 3.0
    valid = st.valid
    assert torch.allclose(st.mean, scaled[valid].mean(0), atol=1e-5)
    assert torch.allclose(st.token_norms, scaled.norm(dim=1), rtol=1e-6)
    centred = (scaled - st.mean).to(torch.float64)
    assert torch.allclose(st.centered_sq.double(), (centred * centred).sum(1), rtol=1e-5)
    quad = ((centred @ st.precision.double()) * centred).sum(1)
    assert torch.allclose(st.whitened_norms.double(), quad.sqrt(), rtol=1e-4)
    assert torch.allclose(st.component_coords.double(), centred @ st.principal.double().T, atol=1e-4)
    # Principal directions: orthonormal, by decreasing variance of the valid rows.
    gram = st.principal @ st.principal.T
    assert torch.allclose(gram, torch.eye(len(gram)), atol=1e-5)
    var = (st.component_coords[valid] ** 2).mean(0)
    assert bool((var[:-1] >= var[1:] - 1e-4).all())
    # Nearest-token distances: each sampled token's true nearest other (valid) token.
    dist = torch.cdist(scaled.double(), scaled.double())
    dist.fill_diagonal_(float("inf"))
    dist[:, ~valid] = float("inf")
    nearest = dist.min(1).values[valid]
    for value in st.nn_distances.tolist():
        assert float((nearest - value).abs().min()) < 1e-3 * max(1.0, value)


def test_statistics_do_not_depend_on_chunk_size(tiny_vocab):
    a, b = compute_stats(tiny_vocab, chunk_size=3), compute_stats(tiny_vocab, chunk_size=1000)
    for name in ("mean", "precision", "token_norms", "whitened_norms", "centered_sq", "nn_distances"):
        assert torch.allclose(getattr(a, name), getattr(b, name), rtol=1e-5, atol=1e-6), name


def test_cached_statistics_follow_the_tokens_that_are_ranked():
    """Same matrix, but a tokenizer that marks one row as a placeholder: the cache must not hand back
    statistics computed with that row counted."""
    from audit.geometry.stats import load_or_compute_stats
    from tests.helpers import WORDS, orthogonal_rows

    rows = orthogonal_rows(len(WORDS) + 1, 16)
    plain = vocabulary_from_tensors(rows, word_level_tokenizer(WORDS), spec="same-matrix")
    marked = vocabulary_from_tensors(
        rows, word_level_tokenizer(WORDS[:-1] + ["[unused0]"]), spec="same-matrix"
    )
    assert plain.sha256 == marked.sha256
    first = load_or_compute_stats(plain, show_progress=False)
    second = load_or_compute_stats(marked, show_progress=False)
    assert bool(first.valid[len(WORDS) - 1]) and not bool(second.valid[len(WORDS) - 1])
    assert not torch.allclose(first.mean, second.mean)
