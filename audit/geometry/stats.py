"""Per-vocabulary statistics in the scaled embedding space, computed once and cached on disk.

Mean, principal directions, a regularised precision matrix for whitening, per-token norms and
whitened norms, and a sample of token-to-nearest-token distances (the scale for "off-manifold").
Special/control tokens are excluded. Keyed by the embedding matrix's sha256 and the embed scale.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import torch

from audit.cache import get_or_build, load_safetensors, save_safetensors
from audit.inputs.vocab import Vocabulary

STATS_VERSION = "4"  # bump whenever compute_stats can return other values, even in the last bit
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

    @cached_property
    def median_nn_distance(self) -> float:
        return float(self.nn_distances.median())

    @cached_property
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


@dataclass(frozen=True)
class Whitening:
    """The regularised inverse covariance as ``iso * I + basis.T @ diag(weights) @ basis``.

    Attributes:
        basis: (m, d) float64 orthonormal eigenvectors of the covariance, largest eigenvalue first.
        weights: (m,) float64 ``1 / (lambda_i + ridge) - iso``.
        iso: ``1 / (tail + ridge)`` for the directions outside ``basis`` (0 when m == d).
    """

    basis: torch.Tensor
    weights: torch.Tensor
    iso: float

    def precision(self) -> torch.Tensor:
        """(d, d) float32 matrix form."""
        matrix = (self.basis.T * self.weights) @ self.basis
        matrix.diagonal().add_(self.iso)
        return matrix.to(torch.float32)

    def squared_norms(self, sq: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """||W x||^2 = x^T C_reg^-1 x for rows x, given ``sq = ||x||^2`` (c,) and ``coords = x @ basis.T``
        (c, m). Returns (c,) float32. Summed in float64: above EXACT_WHITEN_MAX_DIM the weights are
        negative and the two terms partly cancel."""
        coords = coords.to(torch.float64)
        return ((coords * coords) @ self.weights + self.iso * sq.to(torch.float64)).to(torch.float32)


def whitening(cov: torch.Tensor) -> Whitening:
    """Regularised whitening of a (d, d) covariance (above EXACT_WHITEN_MAX_DIM only its upper triangle
    is read).

    Eigenvalues get a ridge of SHRINKAGE x their mean. For d <= EXACT_WHITEN_MAX_DIM every eigenpair is
    kept (exact, float64 eigh); above, only the top WHITEN_RANK (LAPACK's partial ``syevr`` in float32)
    and the remaining eigenvalues are replaced by their mean, which the trace gives without computing
    them (a low-rank-plus-isotropic model: same precision matrix as a full eigh with the tail averaged).
    """
    d = cov.shape[0]
    trace = float(torch.diagonal(cov).sum(dtype=torch.float64))
    ridge = SHRINKAGE * max(trace, 0.0) / d + 1e-12
    if d <= EXACT_WHITEN_MAX_DIM:
        evals, evecs = torch.linalg.eigh(cov.to(torch.float64))
        evals = evals.flip(0).clamp_min(0.0)
        return Whitening(evecs.flip(1).T.contiguous(), 1.0 / (evals + ridge), 0.0)
    from scipy.linalg import eigh

    m = min(WHITEN_RANK, d - 1)
    upper = cov.to(torch.float32).numpy()
    vals, vecs = eigh(upper, lower=False, subset_by_index=[d - m, d - 1], driver="evr", check_finite=False)
    evals = torch.from_numpy(vals[::-1].copy()).to(torch.float64).clamp_min(0.0)
    basis = torch.from_numpy(vecs[:, ::-1].T.copy()).to(torch.float64)
    tail = max((trace - float(evals.sum())) / (d - m), 0.0)
    iso = 1.0 / (tail + ridge)
    return Whitening(basis, 1.0 / (evals + ridge) - iso, iso)


def _covariance(centred: torch.Tensor, *, exact: bool) -> torch.Tensor:
    """Covariance of centred sample rows (n, d) -> (d, d). ``exact``: float64, full. Otherwise float32
    with only the upper triangle filled (BLAS syrk: half the work of a matmul; :func:`whitening` reads
    no more)."""
    n = centred.shape[0]
    if exact:
        x = centred.to(torch.float64)
        return x.T @ x / n
    from scipy.linalg.blas import ssyrk

    # A row-major (n, d) array is a column-major (d, n) one: syrk(A) = A A^T = X^T X, without a copy.
    return torch.from_numpy(ssyrk(1.0 / n, centred.numpy().T, lower=0))


def _sample(ids: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """``size`` of ``ids`` chosen with ``gen``, in ascending order."""
    return ids[torch.randperm(len(ids), generator=gen)[:size]].sort().values


def compute_stats(vocab: Vocabulary, *, chunk_size: int = 16384, progress=None) -> VocabStats:
    """Two chunked passes over E * scale (see module docstring). Deterministic.

    Pass 1: token norms, the mean, and a seeded sample of rows for the covariance (all valid rows up
    to COV_SAMPLE_ROWS) and for nearest-token distances. Pass 2, one matmul per chunk against
    [whitening basis | distance sample]: whitened norms, principal coordinates, nearest distances.
    """
    n, d = vocab.size, vocab.dim
    scale = vocab.embed_scale
    valid = torch.from_numpy(~vocab.tokens.special)
    gen = torch.Generator().manual_seed(STATS_SEED)
    valid_ids = valid.nonzero().squeeze(1)
    cov_ids = _sample(valid_ids, min(len(valid_ids), COV_SAMPLE_ROWS), gen)
    sample_ids = _sample(valid_ids, min(len(valid_ids), 256 if d <= EXACT_WHITEN_MAX_DIM else 128), gen)
    total = torch.zeros(d, dtype=torch.float64)
    norms = torch.zeros(n)
    cov_rows = torch.zeros(len(cov_ids), d)
    sample_rows = torch.zeros(len(sample_ids), d)
    buffer = torch.empty(min(chunk_size, n), d)  # reused: no page faults on fresh memory per chunk
    for start, stop in _chunks(n, chunk_size):
        rows = vocab.input.rows(start, stop, out=buffer).mul_(scale)
        norms[start:stop] = rows.norm(dim=1)
        total += rows[valid[start:stop]].sum(0).to(torch.float64)  # float32 within a chunk
        for ids, out in ((cov_ids, cov_rows), (sample_ids, sample_rows)):
            here = (ids >= start) & (ids < stop)
            out[here] = rows[ids[here] - start]
        if progress:
            progress(stop - start)
    mean = (total / len(valid_ids)).to(torch.float32)
    cov_rows -= cov_rows.mean(0, keepdim=True)
    white = whitening(_covariance(cov_rows, exact=d <= EXACT_WHITEN_MAX_DIM))
    del cov_rows
    n_pc = min(MAX_COMPONENTS, white.basis.shape[0])
    principal = white.basis[:n_pc].to(torch.float32).contiguous()
    m = white.basis.shape[0]
    sample_c = sample_rows - mean
    sample_sq = (sample_c * sample_c).sum(1)
    against = torch.cat([white.basis.to(torch.float32), sample_c]).T.contiguous()  # (d, m + S)
    whitened = torch.zeros(n)
    centered_sq = torch.zeros(n)
    coords = torch.zeros(n, n_pc)
    nearest = torch.full((len(sample_ids),), float("inf"))
    for start, stop in _chunks(n, chunk_size):
        centred = vocab.input.rows(start, stop, out=buffer).mul_(scale).sub_(mean)
        inner = centred @ against  # (c, m + S)
        sq = (centred * centred).sum(1)
        centered_sq[start:stop] = sq
        coords[start:stop] = inner[:, :n_pc]
        whitened[start:stop] = white.squared_norms(sq, inner[:, :m]).clamp_min(0).sqrt()
        dist = (sample_sq[:, None] - 2 * inner[:, m:].T + sq[None, :]).clamp_min(0)  # (S, c)
        ids = torch.arange(start, stop)
        dist[sample_ids[:, None] == ids[None, :]] = float("inf")  # not itself
        dist[:, ~valid[start:stop]] = float("inf")
        nearest = torch.minimum(nearest, dist.min(1).values)
        if progress:
            progress(stop - start)
    return VocabStats(
        mean, principal, white.precision(), norms, whitened, centered_sq, coords, nearest.sqrt(), valid
    )


def stats_key(vocab: Vocabulary) -> str:
    """Cache key of the statistics: matrix hash, embed scale, which tokens are ranked (the token table's
    placeholder mask, so a tokenizer change cannot reuse stale statistics) and the code version."""
    mask = hashlib.sha256(np.packbits(vocab.tokens.special).tobytes()).hexdigest()[:16]
    return f"{vocab.sha256}-s{vocab.embed_scale:.6f}-m{mask}-v{STATS_VERSION}"


def load_or_compute_stats(
    vocab: Vocabulary, *, chunk_size: int = 16384, show_progress: bool = True
) -> VocabStats:
    """Vocabulary statistics from the on-disk cache, computing them (with a progress bar) if absent."""

    def build() -> VocabStats:
        from audit.progress import progress_bar

        desc = "vocabulary statistics (once per model, cached)"
        with progress_bar(desc, 2 * vocab.size, enabled=show_progress) as bar:
            return compute_stats(vocab, chunk_size=chunk_size, progress=bar.update)

    def load(path) -> VocabStats:
        tensors = load_safetensors(path)
        stats = VocabStats(**{k: tensors[k] for k in TENSOR_FIELDS})
        if stats.token_norms.shape[0] != vocab.size or stats.mean.shape[0] != vocab.dim:
            raise ValueError("statistics of another shape")
        return stats

    def save(stats: VocabStats, path) -> None:
        tensors = {k: getattr(stats, k) for k in TENSOR_FIELDS}
        save_safetensors(tensors, path, {"spec": vocab.spec, "version": STATS_VERSION})

    return get_or_build("stats", stats_key(vocab), build=build, save=save, load=load, suffix=".safetensors")
