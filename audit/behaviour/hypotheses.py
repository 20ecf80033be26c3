"""What the geometry offers the behavioural check to test: each method's reading (does it behave like the
soft prompt?) and each flagged position (does replacing it change a group's decisions?).

A reading is run as a hard prompt: the embeddings of its top-1 tokens, in the soft prompt's place (the
same tokens the projected text spells, without re-tokenizing it). An ablation replaces one position's
vector by (a) the embedding of its best non-sensitive reading (the highest-ranked neighbour under the
flag's method whose token spells no active flag) and (b) the vocabulary mean, leaving the rest as trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from audit.records import Flag, Level


@dataclass(frozen=True)
class ReadingProbe:
    methods: tuple[str, ...]
    token_ids: tuple[int, ...]
    text: str


@dataclass(frozen=True)
class PositionProbe:
    position: int
    method: str
    token_id: int | None  # best non-sensitive reading under ``method``; None when all top-k are flagged
    token: str | None


@dataclass(frozen=True)
class Hypotheses:
    readings: tuple[ReadingProbe, ...]
    positions: tuple[PositionProbe, ...]
    skipped: tuple[int, ...]  # flagged positions beyond --max-ablations
    mean: torch.Tensor  # (d,) the vocabulary mean in the scaled embedding space
    # The faithful-reading search's candidates: per position, every method's top-k ids (method order,
    # then rank, each once), and the (V,) mask of tokens that may be ranked (no control or placeholder).
    neighbours: tuple[tuple[int, ...], ...] = ()
    rankable: np.ndarray | None = None


def hypotheses(
    geometry,
    flags: tuple[Flag, ...],
    risks: dict[int, Level],
    max_ablations: int,
    rankable: np.ndarray | None = None,
) -> Hypotheses:
    """Readings grouped by identical top-1 tokens; flagged positions, worst risk first, capped; each
    position's neighbours under every method. ``rankable``: (V,) bool, the vocabulary's rankable tokens."""
    by_ids: dict[tuple[int, ...], list[str]] = {}
    for method in geometry.methods:
        ids = tuple(int(i) for i in geometry.tops[method].ids[:, 0].tolist())
        by_ids.setdefault(ids, []).append(method)
    readings = tuple(
        ReadingProbe(tuple(methods), ids, geometry.projected_text[methods[0]])
        for ids, methods in by_ids.items()
    )
    active = [f for f in flags if f.counts]
    flagged = sorted({f.hit.position for f in active}, key=lambda p: (-risks[p], p))
    probes = []
    for position in flagged[:max_ablations]:
        own = sorted(
            (f for f in active if f.hit.position == position), key=lambda f: (-f.severity, f.hit.rank)
        )
        method = own[0].hit.method
        sensitive = {f.hit.token_id for f in own}
        pos = next(p for p in geometry.positions if p.index == position)
        best = next((n for n in pos.neighbors[method] if n.token_id not in sensitive), None)
        probes.append(
            PositionProbe(position, method, best.token_id if best else None, best.token if best else None)
        )
    return Hypotheses(
        readings,
        tuple(probes),
        tuple(flagged[max_ablations:]),
        geometry.stats.mean,
        neighbours(geometry),
        rankable,
    )


def neighbours(geometry) -> tuple[tuple[int, ...], ...]:
    """Per position, the union of every method's top-k token ids (method order, then rank, each once)."""
    tops = [geometry.tops[m].ids.tolist() for m in geometry.methods]
    n = len(tops[0]) if tops else 0
    return tuple(tuple(dict.fromkeys(int(t) for top in tops for t in top[i])) for i in range(n))
