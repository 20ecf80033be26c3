"""The projection engine: every requested method over the vocabulary in one chunked pass per matrix.

:func:`project` runs the methods of :data:`audit.geometry.methods.METHODS` over the vocabulary in row
chunks (float32, bounded memory) and keeps a running top-k per method.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from audit.errors import AuditInputError
from audit.geometry.methods import METHODS
from audit.geometry.stats import VocabStats
from audit.inputs.vocab import Vocabulary

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


def check_prompt(prompt: torch.Tensor, vocab: Vocabulary) -> None:
    """A prompt must be (n, d_model) for this vocabulary."""
    if prompt.dim() != 2 or prompt.shape[1] != vocab.dim:
        found = f"dim {prompt.shape[1]}" if prompt.dim() == 2 else f"shape {tuple(prompt.shape)}"
        raise AuditInputError(
            f"prompt has {found} but model '{vocab.spec}' has d_model {vocab.dim}",
            "was the prompt trained on this model? check --model (or the adapter's "
            "base_model_name_or_path when --model is not given)",
        )


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
    return project_many(
        [prompt], vocab, stats, methods, k, chunk_size=chunk_size, device=device, progress=progress
    )[0]


def project_many(
    prompts: Sequence[torch.Tensor],
    vocab: Vocabulary,
    stats: VocabStats,
    methods: tuple[str, ...],
    k: int,
    *,
    chunk_size: int = 16384,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, TopK]]:
    """:func:`project` for several prompts in one pass over the vocabulary: each chunk of rows is read,
    converted and scaled once and scored against every prompt.

    Each prompt keeps its own matmul per chunk, of the shape a scan of that prompt alone multiplies: BLAS
    picks kernels by shape, so stacking the prompts' rows into one matmul could change scores in the last
    bit, and a report must not depend on which other prompts shared its run.

    Args:
        prompts: each (n_i, d_model) float32 (see :func:`project`).

    Returns:
        per prompt, in order: method name -> TopK with (n_i, k) ids and scores.
    """
    for prompt in prompts:
        check_prompt(prompt, vocab)
    chunk_size = max(BLOCK, -(-chunk_size // BLOCK) * BLOCK)  # a multiple of BLOCK
    n_valid = int((~vocab.tokens.special).sum())
    k = max(1, min(k, n_valid))
    dev = torch.device(device)
    query = [prompt.to(dev, torch.float32) for prompt in prompts]
    special = torch.from_numpy(vocab.tokens.special).to(dev)
    mask_add = torch.zeros(special.shape, device=dev).masked_fill(special, float("-inf"))
    dev_stats = stats.to(dev)
    best: list[dict[str, TopK | None]] = [dict.fromkeys(methods) for _ in prompts]
    for source, scale, names, finishes in _passes(vocab, methods):
        # Methods sharing a query transform (l2, dot, tied unembed) share its rows of the matmul.
        query_fns = list(dict.fromkeys(METHODS[m].query for m in names))
        queries = [torch.cat([fn(q, dev_stats) for fn in query_fns]) for q in query]  # (n_queries * n, d)
        slot = {m: query_fns.index(METHODS[m].query) for m in names}
        n_rows = source.shape[0]
        buffer = torch.empty(min(chunk_size, n_rows), source.shape[1]) if dev.type == "cpu" else None
        for start in range(0, n_rows, chunk_size):
            stop = min(start + chunk_size, n_rows)
            rows = source.rows(start, stop, out=buffer).to(dev)
            if scale != 1.0:
                rows.mul_(scale)  # our own buffer (or a fresh copy on the device)
            penalty = mask_add[start:stop]
            take = min(k, stop - start)
            for q, qs, top in zip(query, queries, best):
                raw = _blocked_inner(qs, rows)
                n = q.shape[0]
                ids = torch.arange(start, stop, device=dev).expand(n, -1)
                for name in names:
                    j = slot[name]
                    scores = finishes[name](raw[j * n : (j + 1) * n], q, dev_stats, start, stop) + penalty
                    top_scores, top_idx = torch.topk(scores, take, dim=1)
                    top[name] = _merge(top[name], ids.gather(1, top_idx), top_scores, k)
            if progress is not None:
                progress(stop - start)
    return [
        {name: TopK(t.ids.cpu(), t.scores.cpu()) for name, t in top.items() if t is not None} for top in best
    ]


def _passes(vocab: Vocabulary, methods: tuple[str, ...]):
    """The passes over matrices a projection needs: (source, row scale, method names, finish fns).

    On a model without an output matrix (tied), an "output" method equals its ``tied_to`` input
    method up to the embedding scale (``unembed`` = ``dot / embed_scale``): it rides on the input pass
    instead of reading E a second time.
    """
    finishes = {m: METHODS[m].finish for m in methods}
    input_names = [m for m in methods if METHODS[m].matrix == "input"]
    output_names = [m for m in methods if METHODS[m].matrix == "output"]
    if vocab.output is None and output_names:
        scale = vocab.embed_scale
        for name in output_names:
            twin = METHODS[METHODS[name].tied_to or "dot"].finish
            finishes[name] = lambda raw, prompt, stats, start, stop, _f=twin, _s=scale: (
                _f(raw, prompt, stats, start, stop) / _s
            )
        input_names += output_names
        output_names = []
    passes = []
    if input_names:
        passes.append((vocab.input, vocab.embed_scale, input_names, finishes))
    if output_names:
        passes.append((vocab.output, 1.0, output_names, finishes))
    return passes


def agreement_methods(vocab: Vocabulary, methods: tuple[str, ...]) -> tuple[str, ...]:
    """The methods counted in cross-method agreement: a tied output method that equals another
    requested method is counted once."""
    return tuple(
        m
        for m in methods
        if not (vocab.output is None and METHODS[m].tied_to is not None and METHODS[m].tied_to in methods)
    )


def count_rows(vocab: Vocabulary, methods: tuple[str, ...]) -> int:
    """How many matrix rows :func:`project` will read (for progress bars)."""
    return sum(source.shape[0] for source, *_ in _passes(vocab, methods))
