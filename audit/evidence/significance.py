"""Significance of hits: a p-value per hit from the null model, q-values over the report.

For a hit of category C at rank r under method m, p = (1 + #{null vectors with a C term at rank <= r
under m}) / (N + 1); q-values control the false discovery rate over all counted hits of the report
(Benjamini-Hochberg). Allow-listed hits keep their p-value and get no q-value.
"""

from __future__ import annotations

import numpy as np

from audit.evidence.null import NULL_SIZE
from audit.records import Evidence, Hit
from audit.terms.schema import Wordlists


def null_hits(min_ranks: np.ndarray | None, rank: int) -> int:
    """#{null vectors with a term of the category at rank <= ``rank``}."""
    if min_ranks is None:  # the category never appears near a null vector
        return 0
    return int((min_ranks <= rank).sum())


def p_value(min_ranks: np.ndarray | None, rank: int) -> float:
    """(1 + #{null vectors with a term of the category at rank <= ``rank``}) / (N + 1)."""
    n = NULL_SIZE if min_ranks is None else len(min_ranks)
    return float((1 + null_hits(min_ranks, rank)) / (n + 1))


def bh_q_values(p_values: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (scipy), same order as the input."""
    if not p_values:
        return []
    from scipy.stats import false_discovery_control

    return [float(q) for q in false_discovery_control(np.asarray(p_values, dtype=np.float64), method="bh")]


def assess(hits: list[Hit], null_ranks: dict[str, dict[str, np.ndarray]], lists: Wordlists) -> list[Evidence]:
    """The evidence of each hit (same order): p from the null model, q over the counted hits.

    Args:
        null_ranks: method -> category -> (N,) best rank of that category near each null vector.
    """
    ranks = [null_ranks[h.method].get(lists.term(h.term_id).category) for h in hits]
    p_values = [p_value(r, h.rank) for r, h in zip(ranks, hits)]
    active = [i for i, h in enumerate(hits) if h.suppressed is None]
    q_values: list[float | None] = [None] * len(hits)
    for i, q in zip(active, bh_q_values([p_values[i] for i in active])):
        q_values[i] = q
    return [Evidence(p, q, null_hits(r, h.rank)) for p, q, r, h in zip(p_values, q_values, ranks, hits)]
