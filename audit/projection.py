"""Projection methods: each maps prompt vectors to a ranking of the vocabulary.

Every method is a pure scoring function ``(prompt (n, d), rows (c, d), ctx) -> scores (n, c)``
(higher = nearer) registered in :data:`METHODS`. :func:`project` runs all requested methods in one
pass over the vocabulary in row chunks (float32, bounded memory) and keeps a running top-k.

Scores: ``l2`` is the negative Euclidean distance; ``dot`` and ``unembed`` are inner products
(logits); ``cosine``, ``centered`` and ``whitened`` are cosine similarities in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from audit.errors import AuditInputError
from audit.stats import VocabStats
from audit.vocab import Vocabulary


@dataclass(frozen=True)
class Method:
    """A projection method as two pure steps around one shared matmul.

    ``query(prompt, stats) -> (n, d)`` transforms the prompt once; the engine computes
    ``raw = query @ rows.T`` for a chunk of rows; ``finish(raw, prompt, stats, start, stop) -> (n, c)``
    turns the inner products into scores using per-token quantities precomputed in ``stats``.
    Writing every method this way keeps a scan to one matmul per chunk and makes chunked and
    unchunked results identical.
    """

    name: str
    summary: str
    matrix: str  # "input": E * embed_scale, "output": the unembedding matrix
    query: Callable[[torch.Tensor, VocabStats], torch.Tensor]
    finish: Callable[[torch.Tensor, torch.Tensor, VocabStats, int, int], torch.Tensor]


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _identity(prompt: torch.Tensor, stats: VocabStats) -> torch.Tensor:
    return prompt


def _raw(raw: torch.Tensor, prompt: torch.Tensor, stats: VocabStats, start: int, stop: int) -> torch.Tensor:
    return raw


def _l2_finish(
    raw: torch.Tensor, prompt: torch.Tensor, stats: VocabStats, start: int, stop: int
) -> torch.Tensor:
    """-||p - e|| from p.e: ||p||^2 - 2 p.e + ||e||^2 (token norms precomputed)."""
    sq_tok = stats.token_norms[start:stop].to(raw.device) ** 2
    sq = (prompt * prompt).sum(-1, keepdim=True) - 2.0 * raw + sq_tok
    return -sq.clamp_min(0.0).sqrt()


def _cosine_finish(
    raw: torch.Tensor, prompt: torch.Tensor, stats: VocabStats, start: int, stop: int
) -> torch.Tensor:
    return raw / stats.token_norms[start:stop].to(raw.device).clamp_min(1e-12)


def _remove_top(x: torch.Tensor, components: torch.Tensor) -> torch.Tensor:
    if components.shape[0] == 0:
        return x
    return x - (x @ components.T) @ components


def _centered_query(prompt: torch.Tensor, stats: VocabStats) -> torch.Tensor:
    """Unit (p - mu) with the top principal directions removed: (n, d)."""
    return _unit(_remove_top(prompt - stats.mean.to(prompt.device), stats.components.to(prompt.device)))


def _centered_finish(
    raw: torch.Tensor, prompt: torch.Tensor, stats: VocabStats, start: int, stop: int
) -> torch.Tensor:
    """cos(p_perp, (e - mu)_perp) = (q.e - q.mu) / ||(e - mu)_perp|| with q the unit p_perp."""
    query = _centered_query(prompt, stats)
    offset = query @ stats.mean.to(raw.device)
    return (raw - offset[:, None]) / stats.centered_norms[start:stop].to(raw.device).clamp_min(1e-12)


def _whitened_query(prompt: torch.Tensor, stats: VocabStats) -> torch.Tensor:
    """C_reg^-1 (p - mu) / ||W (p - mu)||: (n, d)."""
    centred = prompt - stats.mean.to(prompt.device)
    query = centred @ stats.precision.to(prompt.device)  # precision is symmetric
    return query / (query * centred).sum(-1, keepdim=True).clamp_min(1e-12).sqrt()


def _whitened_finish(
    raw: torch.Tensor, prompt: torch.Tensor, stats: VocabStats, start: int, stop: int
) -> torch.Tensor:
    """cos(W(p - mu), W(e - mu)) = (q.e - q.mu) / ||W(e - mu)||, W = C_reg^(-1/2)."""
    offset = _whitened_query(prompt, stats) @ stats.mean.to(raw.device)
    return (raw - offset[:, None]) / stats.whitened_norms[start:stop].to(raw.device).clamp_min(1e-12)


def _cosine_query(prompt: torch.Tensor, stats: VocabStats) -> torch.Tensor:
    return _unit(prompt)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "l2",
            "nearest token by Euclidean distance to E*scale (Prompt Waywardness code)",
            "input",
            _identity,
            _l2_finish,
        ),
        Method(
            "dot",
            "largest inner product with E*scale (Prompt Waywardness paper; tied LM logit)",
            "input",
            _identity,
            _raw,
        ),
        Method(
            "cosine",
            "largest cosine similarity with E*scale (Lester et al. 2021, PEZ)",
            "input",
            _cosine_query,
            _cosine_finish,
        ),
        Method(
            "centered",
            "cosine after removing the vocabulary mean (and top principal directions)",
            "input",
            _centered_query,
            _centered_finish,
        ),
        Method(
            "whitened",
            "cosine after regularised whitening with the vocabulary covariance (Mahalanobis)",
            "input",
            _whitened_query,
            _whitened_finish,
        ),
        Method(
            "unembed",
            "logits of the output matrix (layer-0 logit lens); equals dot when tied",
            "output",
            _identity,
            _raw,
        ),
    )
}
DEFAULT_METHODS = tuple(METHODS)


def resolve_methods(requested: tuple[str, ...] | None) -> tuple[str, ...]:
    """Validates method names ("all" or None: every method), keeping registry order."""
    if requested is None or requested == ("all",):
        return DEFAULT_METHODS
    unknown = [m for m in requested if m not in METHODS]
    if unknown:
        raise AuditInputError(
            f"unknown projection method(s) {', '.join(unknown)}",
            f"choose from {', '.join(METHODS)} or 'all' (see `prompt-audit methods`)",
        )
    if not requested:
        raise AuditInputError("no projection method selected", "pass --methods all or a list")
    return tuple(m for m in METHODS if m in requested)


BLOCK = 2048


def _blocked_inner(queries: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """queries @ rows.T computed in fixed blocks of BLOCK rows (the last one zero-padded).

    BLAS picks kernels by matrix shape, so float32 results can differ in the last bit between
    shapes; always multiplying (q, d) by (d, BLOCK) makes every score independent of chunk_size.

    Args:
        queries: (q, d); rows: (c, d), c a multiple of BLOCK except for the vocabulary's last chunk.

    Returns:
        (q, c) inner products.
    """
    out = queries.new_empty(queries.shape[0], rows.shape[0])
    for start in range(0, rows.shape[0], BLOCK):
        block = rows[start : start + BLOCK]
        stop = start + block.shape[0]
        if block.shape[0] < BLOCK:
            block = torch.cat([block, block.new_zeros(BLOCK - block.shape[0], block.shape[1])])
            out[:, start:stop] = (queries @ block.T)[:, : stop - start]
        else:
            torch.matmul(queries, block.T, out=out[:, start:stop])
    return out


@dataclass(frozen=True)
class TopK:
    """Neighbours of each prompt position under one method.

    Attributes:
        ids: (n, k) int64 token ids, best first (ties broken by lower id).
        scores: (n, k) float32 scores, descending.
    """

    ids: torch.Tensor
    scores: torch.Tensor


def _merge(best: TopK | None, ids: torch.Tensor, scores: torch.Tensor, k: int) -> TopK:
    """Merges a chunk's candidates into the running top-k, ordered by (-score, id)."""
    if best is not None:
        ids = torch.cat([best.ids, ids], dim=1)
        scores = torch.cat([best.scores, scores], dim=1)
    order = torch.argsort(ids, dim=1, stable=True)
    ids, scores = ids.gather(1, order), scores.gather(1, order)
    order = torch.argsort(-scores, dim=1, stable=True)[:, :k]
    return TopK(ids.gather(1, order), scores.gather(1, order))


def project(
    prompt: torch.Tensor,
    vocab: Vocabulary,
    stats: VocabStats,
    methods: tuple[str, ...],
    k: int,
    *,
    chunk_size: int = 16384,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> dict[str, TopK]:
    """Top-k neighbours of every prompt row under every method, one chunked pass per matrix.

    Args:
        prompt: (n, d_model) float32, in the model's (scaled) input-embedding space.
        vocab: the vocabulary; its input rows are multiplied by ``embed_scale`` here.
        stats: precomputed vocabulary statistics (mean, principal directions, whitening).
        methods: method names from :data:`METHODS`.
        k: neighbours to keep per position (capped at the number of rankable tokens).
        chunk_size: vocabulary rows read at once (rounded up to a multiple of BLOCK); memory is
            O(chunk_size * (d + n)). Results do not depend on it.
        progress: called with the number of rows done after each chunk.

    Returns:
        method name -> TopK with (n, k) ids and scores.
    """
    if prompt.dim() != 2 or prompt.shape[1] != vocab.dim:
        raise AuditInputError(
            f"prompt has shape {tuple(prompt.shape)} but model '{vocab.spec}' has d_model {vocab.dim}",
            "is this the right base model? pass --model",
        )
    chunk_size = max(BLOCK, -(-chunk_size // BLOCK) * BLOCK)  # a multiple of BLOCK
    n_valid = int((~vocab.tokens.special).sum())
    k = max(1, min(k, n_valid))
    dev = torch.device(device)
    query = prompt.to(dev, torch.float32)
    special = torch.from_numpy(vocab.tokens.special).to(dev)
    mask_add = torch.zeros(special.shape, device=dev).masked_fill(special, float("-inf"))
    dev_stats = stats.to(dev)
    best: dict[str, TopK | None] = dict.fromkeys(methods)
    for source, scale, names, finishes in _passes(vocab, methods):
        # Methods sharing a query transform (l2, dot, tied unembed) share its rows of the matmul.
        query_fns = list(dict.fromkeys(METHODS[m].query for m in names))
        queries = torch.cat([fn(query, dev_stats) for fn in query_fns])  # (n_queries * n, d)
        slot = {m: query_fns.index(METHODS[m].query) for m in names}
        n = query.shape[0]
        n_rows = source.shape[0]
        buffer = torch.empty(min(chunk_size, n_rows), source.shape[1]) if dev.type == "cpu" else None
        for start in range(0, n_rows, chunk_size):
            stop = min(start + chunk_size, n_rows)
            rows = source.rows(start, stop, out=buffer).to(dev)
            if scale != 1.0:
                rows.mul_(scale)  # our own buffer (or a fresh copy on the device)
            raw = _blocked_inner(queries, rows)
            penalty = mask_add[start:stop]
            ids = torch.arange(start, stop, device=dev).expand(n, -1)
            take = min(k, stop - start)
            for name in names:
                j = slot[name]
                scores = finishes[name](raw[j * n : (j + 1) * n], query, dev_stats, start, stop) + penalty
                top_scores, top_idx = torch.topk(scores, take, dim=1)
                best[name] = _merge(best[name], ids.gather(1, top_idx), top_scores, k)
            if progress is not None:
                progress(stop - start)
    return {name: TopK(top.ids.cpu(), top.scores.cpu()) for name, top in best.items() if top is not None}


def _passes(vocab: Vocabulary, methods: tuple[str, ...]):
    """The passes over matrices a projection needs: (source, row scale, method names, finish fns).

    A tied model's ``unembed`` is the inner product with the unscaled E, i.e. ``dot / embed_scale``:
    it rides on the input pass instead of reading E a second time.
    """
    finishes = {m: METHODS[m].finish for m in methods}
    input_names = [m for m in methods if METHODS[m].matrix == "input"]
    output_names = [m for m in methods if METHODS[m].matrix == "output"]
    if vocab.output is None and output_names:
        scale = vocab.embed_scale
        for name in output_names:
            finishes[name] = lambda raw, prompt, stats, start, stop, _s=scale: raw / _s
        input_names += output_names
        output_names = []
    passes = []
    if input_names:
        passes.append((vocab.input, vocab.embed_scale, input_names, finishes))
    if output_names:
        passes.append((vocab.output, 1.0, output_names, finishes))
    return passes


def count_rows(vocab: Vocabulary, methods: tuple[str, ...]) -> int:
    """How many matrix rows :func:`project` will read (for progress bars)."""
    return sum(source.shape[0] for source, *_ in _passes(vocab, methods))


def agreement(tops: dict[str, TopK], exclude: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Cross-method agreement per position.

    Returns:
        top1: (n,) share of method pairs whose top-1 tokens agree (1.0 with a single method).
        jaccard: (n,) mean Jaccard overlap of the methods' top-k sets over pairs.
    """
    names = [m for m in tops if m not in exclude]
    n = next(iter(tops.values())).ids.shape[0]
    if len(names) < 2:
        return np.ones(n), np.ones(n)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    top1 = np.zeros(n)
    jac = np.zeros(n)
    for a, b in pairs:
        ia, ib = tops[a].ids.numpy(), tops[b].ids.numpy()
        top1 += ia[:, 0] == ib[:, 0]
        for row in range(n):
            sa, sb = set(ia[row].tolist()), set(ib[row].tolist())
            jac[row] += len(sa & sb) / len(sa | sb)
    return top1 / len(pairs), jac / len(pairs)


def pca_2d(points: torch.Tensor) -> np.ndarray:
    """First two principal coordinates of a small point cloud, signs fixed for determinism.

    Args:
        points: (m, d).

    Returns:
        (m, 2) float64.
    """
    x = points.to(torch.float64)
    x = x - x.mean(0, keepdim=True)
    if x.shape[0] < 2:
        return np.zeros((x.shape[0], 2))
    u, s, _ = torch.linalg.svd(x, full_matrices=False)
    coords = (u[:, :2] * s[:2]).numpy()
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    for j in range(2):
        pivot = np.argmax(np.abs(coords[:, j]))
        if coords[pivot, j] < 0:
            coords[:, j] = -coords[:, j]
    return coords
