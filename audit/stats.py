"""Per-vocabulary statistics in the scaled embedding space, computed once and cached on disk.

Mean, principal directions, a regularised precision matrix for whitening, per-token norms and
whitened norms, and a sample of token-to-nearest-token distances (the scale for "off-manifold").
Special/control tokens are excluded. Keyed by the embedding matrix's sha256 and the embed scale.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import torch

from audit.cache import atomic_save_safetensors, cache_dir
from audit.vocab import Vocabulary

STATS_VERSION = "2"
COV_SAMPLE_ROWS = 16384  # covariance from a seeded row sample when the vocabulary is larger
EXACT_WHITEN_MAX_DIM = 1024  # above this, eigenvalues past the top WHITEN_RANK share their mean
WHITEN_RANK = 256
SHRINKAGE = 0.05  # ridge: lambda = SHRINKAGE * mean eigenvalue
MAX_COMPONENTS = 32
STATS_SEED = 20220113  # fixed: statistics describe the vocabulary, not a user's run


@dataclass(frozen=True)
class VocabStats:
    """Statistics of the scaled input embeddings ``E * embed_scale`` over non-special tokens.

    Attributes:
        mean: (d,) vocabulary mean.
        principal: (MAX_COMPONENTS, d) top principal directions (unit rows), largest first.
        precision: (d, d) regularised inverse covariance used by ``whitened``.
        token_norms: (V,) ||e_i * scale||.
        whitened_norms: (V,) ||W (e_i * scale - mean)||.
        centered_sq: (V,) ||e_i * scale - mean||^2.
        component_coords: (V, MAX_COMPONENTS) coordinates of e_i * scale - mean on ``principal``.
        nn_distances: (S,) Euclidean distance from sampled tokens to their nearest other token.
        valid: (V,) bool, False for special/control tokens.
        n_removed: principal directions removed by ``centered`` (0: mean only).
    """

    mean: torch.Tensor
    principal: torch.Tensor
    precision: torch.Tensor
    token_norms: torch.Tensor
    whitened_norms: torch.Tensor
    centered_sq: torch.Tensor
    component_coords: torch.Tensor
    nn_distances: torch.Tensor
    valid: torch.Tensor
    n_removed: int = 0

    @property
    def components(self) -> torch.Tensor:
        """(n_removed, d) directions removed by ``centered``."""
        return self.principal[: self.n_removed]

    @cached_property
    def centered_norms(self) -> torch.Tensor:
        """(V,) ||(e_i * scale - mean) with the removed directions projected out||."""
        removed = (self.component_coords[:, : self.n_removed] ** 2).sum(1)
        return (self.centered_sq - removed).clamp_min(0).sqrt()

    def with_components(self, r: int) -> VocabStats:
        """The same statistics with ``r`` top principal directions removed by ``centered``."""
        if not 0 <= r <= self.principal.shape[0]:
            raise ValueError(f"centered can remove 0..{self.principal.shape[0]} directions, got {r}")
        return replace(self, n_removed=r)

    def to(self, device: torch.device | str) -> VocabStats:
        """Moves the small per-prompt tensors (mean, directions, precision) to ``device``."""
        if torch.device(device).type == "cpu":
            return self
        return replace(
            self,
            mean=self.mean.to(device),
            principal=self.principal.to(device),
            precision=self.precision.to(device),
        )

    @property
    def median_nn_distance(self) -> float:
        return float(self.nn_distances.median())

    @property
    def median_token_norm(self) -> float:
        return float(self.token_norms[self.valid].median())


TENSOR_FIELDS = (
    "mean",
    "principal",
    "precision",
    "token_norms",
    "whitened_norms",
    "centered_sq",
    "component_coords",
    "nn_distances",
    "valid",
)


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(start + size, n)


def precision_matrix(cov: torch.Tensor) -> torch.Tensor:
    """Regularised inverse covariance. (d, d) -> (d, d).

    Eigenvalues get a ridge of SHRINKAGE x their mean; for d > EXACT_WHITEN_MAX_DIM the eigenvalues
    past the top WHITEN_RANK are replaced by their mean (a low-rank-plus-isotropic model).
    """
    evals, evecs = torch.linalg.eigh(cov.to(torch.float64))
    evals = evals.clamp_min(0.0)
    if cov.shape[0] > EXACT_WHITEN_MAX_DIM:
        tail = evals[: cov.shape[0] - WHITEN_RANK]
        evals = torch.cat([torch.full_like(tail, float(tail.mean())), evals[cov.shape[0] - WHITEN_RANK :]])
    ridge = SHRINKAGE * float(evals.mean()) + 1e-12
    return ((evecs / (evals + ridge)) @ evecs.T).to(torch.float32)


def compute_stats(vocab: Vocabulary, *, chunk_size: int = 16384, progress=None) -> VocabStats:
    """Two chunked passes over E * scale (see module docstring). Deterministic."""
    n, d = vocab.size, vocab.dim
    scale = vocab.embed_scale
    valid = torch.from_numpy(~vocab.tokens.special)
    gen = torch.Generator().manual_seed(STATS_SEED)
    valid_ids = valid.nonzero().squeeze(1)
    n_cov = min(len(valid_ids), COV_SAMPLE_ROWS) if n > COV_SAMPLE_ROWS else len(valid_ids)
    cov_ids = valid_ids[torch.randperm(len(valid_ids), generator=gen)[:n_cov]]
    in_cov = torch.zeros(n, dtype=torch.bool)
    in_cov[cov_ids] = True
    n_sample = min(len(valid_ids), 256 if d <= EXACT_WHITEN_MAX_DIM else 128)
    sample_ids = valid_ids[torch.randperm(len(valid_ids), generator=gen)[:n_sample]].sort().values
    total = torch.zeros(d, dtype=torch.float64)
    second = torch.zeros(d, d, dtype=torch.float64)
    cov_sum = torch.zeros(d, dtype=torch.float64)
    norms = torch.zeros(n)
    sample_rows = torch.zeros(n_sample, d)
    for start, stop in _chunks(n, chunk_size):
        rows = vocab.input.rows(start, stop) * scale
        norms[start:stop] = rows.norm(dim=1)
        keep = valid[start:stop]
        total += rows[keep].sum(0, dtype=torch.float64)
        sel = rows[in_cov[start:stop]].to(torch.float64)
        second += sel.T @ sel
        cov_sum += sel.sum(0)
        here = (sample_ids >= start) & (sample_ids < stop)
        sample_rows[here] = rows[sample_ids[here] - start]
        if progress:
            progress(stop - start)
    mean = (total / len(valid_ids)).to(torch.float32)
    cov_mean = cov_sum / n_cov
    cov = second / n_cov - torch.outer(cov_mean, cov_mean)
    evals, evecs = torch.linalg.eigh(cov)
    principal = evecs[:, -min(MAX_COMPONENTS, d) :].flip(1).T.contiguous().to(torch.float32)
    precision = precision_matrix(cov)
    whitened = torch.zeros(n)
    centered_sq = torch.zeros(n)
    coords = torch.zeros(n, principal.shape[0])
    nearest = torch.full((n_sample,), float("inf"))
    sample_sq = (sample_rows * sample_rows).sum(1, keepdim=True)
    for start, stop in _chunks(n, chunk_size):
        rows = vocab.input.rows(start, stop) * scale
        centred = rows - mean
        whitened[start:stop] = ((centred @ precision) * centred).sum(1).clamp_min(0).sqrt()
        centered_sq[start:stop] = (centred * centred).sum(1)
        coords[start:stop] = centred @ principal.T
        sq = (sample_sq - 2 * sample_rows @ rows.T + (rows * rows).sum(1)).clamp_min(0)
        ids = torch.arange(start, stop)
        sq[sample_ids[:, None] == ids[None, :]] = float("inf")  # not itself
        sq[:, ~valid[start:stop]] = float("inf")
        nearest = torch.minimum(nearest, sq.min(1).values)
        if progress:
            progress(stop - start)
    return VocabStats(mean, principal, precision, norms, whitened, centered_sq, coords, nearest.sqrt(), valid)


def _key(vocab: Vocabulary) -> str:
    return f"{vocab.sha256}-s{vocab.embed_scale:.6f}-v{STATS_VERSION}"


def load_or_compute_stats(
    vocab: Vocabulary, *, chunk_size: int = 16384, show_progress: bool = True
) -> VocabStats:
    """Vocabulary statistics from the on-disk cache, computing them (with a progress bar) if absent."""
    from safetensors.torch import load_file

    path = cache_dir("stats") / f"{_key(vocab)}.safetensors"
    if path.is_file():
        t = load_file(str(path))
        if t["token_norms"].shape[0] == vocab.size:
            return VocabStats(**{k: t[k] for k in TENSOR_FIELDS})
    from audit.progress import progress_bar

    desc = "vocabulary statistics (once per model, cached)"
    with progress_bar(desc, 2 * vocab.size, enabled=show_progress) as bar:
        stats = compute_stats(vocab, chunk_size=chunk_size, progress=bar.update)
    tensors = {k: getattr(stats, k) for k in TENSOR_FIELDS}
    atomic_save_safetensors(tensors, path, {"spec": vocab.spec, "version": STATS_VERSION})
    return stats


def norm_percentile(stats: VocabStats, norms: np.ndarray) -> np.ndarray:
    """Percentile (0-100) of each prompt norm among the vocabulary's token norms."""
    ref = np.sort(stats.token_norms[stats.valid].numpy())
    return 100.0 * np.searchsorted(ref, norms, side="right") / len(ref)
