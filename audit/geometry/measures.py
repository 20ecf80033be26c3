"""Per-position geometry from the projections: agreement, off-manifold distance, norms, drift from
the reference text, 2-D neighbourhood maps and the projected texts. Pure functions over tensors."""

from __future__ import annotations

import numpy as np
import torch

from audit.geometry.engine import TopK, project
from audit.geometry.stats import VocabStats
from audit.inputs.prompts import SoftPrompt
from audit.inputs.vocab import Vocabulary
from audit.records import MapPoint, Neighbor

MAP_NEIGHBOURS = 24


def agreement(tops: dict[str, TopK]) -> tuple[np.ndarray, np.ndarray]:
    """Cross-method agreement per position.

    Returns:
        top1: (n,) share of method pairs whose top-1 tokens agree (1.0 with a single method).
        jaccard: (n,) mean Jaccard overlap of the methods' top-k sets over pairs.
    """
    names = list(tops)
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


def neighbours(top: TopK, pos: int, surfaces: tuple[str, ...]) -> tuple[Neighbor, ...]:
    """The ranked neighbours of one position under one method, as records."""
    pairs = zip(top.ids[pos].tolist(), top.scores[pos].tolist())
    return tuple(Neighbor(r + 1, int(t), surfaces[int(t)], float(s)) for r, (t, s) in enumerate(pairs))


def map_points(vector: torch.Tensor, vocab: Vocabulary, neighbors: dict) -> tuple[MapPoint, ...]:
    """2-D PCA of the prompt vector and the union of its neighbours (first MAP_NEIGHBOURS, best first).
    ``sensitive`` is left False: the evidence stage knows which neighbours are flagged."""
    ids: list[int] = []
    for rank in range(max(len(nb) for nb in neighbors.values())):
        for nb in neighbors.values():
            if rank < len(nb) and nb[rank].token_id not in ids:
                ids.append(nb[rank].token_id)
    ids = ids[:MAP_NEIGHBOURS]
    rows = torch.cat([vocab.input.rows(i, i + 1) for i in ids]) * vocab.embed_scale
    coords = pca_2d(torch.cat([vector[None, :], rows]))
    points = [MapPoint(-1, "", float(coords[0, 0]), float(coords[0, 1]), False)]
    for (x, y), tok in zip(coords[1:], ids):
        points.append(MapPoint(tok, vocab.tokens.surfaces[tok], float(x), float(y), False))
    return tuple(points)


def nearest_distance(
    vectors: torch.Tensor, vocab: Vocabulary, stats: VocabStats, tops: dict[str, TopK], **engine
) -> np.ndarray:
    """Euclidean distance from each prompt row to its nearest rankable token (scaled space). (n,)

    Read from the ``l2`` projection; when ``l2`` was not requested, a top-1 ``l2`` pass computes it
    (``engine``: the projection's device and chunk_size)."""
    top = tops["l2"] if "l2" in tops else project(vectors, vocab, stats, ("l2",), 1, **engine)["l2"]
    return (-top.scores[:, 0]).numpy()


def norm_percentile(stats: VocabStats, norms: np.ndarray) -> np.ndarray:
    """Percentile (0-100) of each prompt norm among the vocabulary's token norms."""
    ref = np.sort(stats.token_norms[stats.valid].numpy())
    return 100.0 * np.searchsorted(ref, norms, side="right") / len(ref)


def drift(prompt: SoftPrompt, vocab: Vocabulary, reference: str | None) -> np.ndarray | None:
    """Cosine of each row to the token a TEXT init would have placed there for the reference text. (n,)

    PEFT embeds ``tokenizer(text)`` with special tokens (e.g. a leading <bos>), cut or repeated to the
    prompt's length; some training scripts drop the special tokens. Both alignments are tried and the
    one the prompt is closer to is used.
    """
    if not reference:
        return None
    n = prompt.vectors.shape[0]
    candidates = [vocab.init_token_ids(reference, n), vocab.init_token_ids(reference, n, special=False)]
    best = None
    for ids in candidates:
        if not ids:
            continue
        ref = torch.cat([vocab.input.rows(i, i + 1) for i in ids]) * vocab.embed_scale
        cos = torch.nn.functional.cosine_similarity(prompt.vectors, ref, dim=1).numpy()
        if best is None or cos.mean() > best.mean():
            best = cos
    return best


def projected_text(prompt: SoftPrompt, vocab: Vocabulary, top: TopK, *, skip_special: bool = False) -> str:
    """The text a method reads: each segment's top-1 tokens decoded (segments named when several)."""
    parts = []
    for segment in prompt.segments:
        text = vocab.decode(top.ids[segment.start : segment.stop, 0].tolist(), skip_special=skip_special)
        parts.append(text if len(prompt.segments) == 1 else f"[{segment.name}] {text}")
    return " ".join(parts)
