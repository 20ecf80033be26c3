"""Selection rates by category in the layout of a NYC Local Law 144 bias-audit summary: each attribute's
groups, and the crossed categories of two attributes that vary the same slot (origin x gender through
names), with impact ratios against the most selected category and categories under 2 % excluded.

Descriptive: no test, no interval. Rates are over the qualifying templates (as every group statistic).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from audit.behaviour.stats.scores import MIN_RENDERINGS, MIN_SHARE, impact_ratio
from audit.records_behaviour import Category


def category_table(
    lo_qualifying: np.ndarray,
    members: Sequence[tuple[tuple[str, ...], np.ndarray]],
    *,
    min_share: float = MIN_SHARE,
    min_n: int = MIN_RENDERINGS,
) -> tuple[tuple[Category, ...], str | None]:
    """Rates and impact ratios of the categories ``members`` over one attribute's log-odds.

    Args:
        lo_qualifying: (T_q, V) log-odds of the qualifying templates, a column per value.
        members: per category, (its groups, a (V,) bool mask of its columns); categories with no column
            are left out.
    Returns:
        the categories (``Category`` records: impact ratio against the most selected category, None when
        excluded (share below ``min_share``) or when that rate is 0; ``small_sample`` under ``min_n``
        renderings) in the order given, and the name of the most selected one that is not excluded
        (ties: the first), None when every category is excluded.
    """
    lo = np.asarray(lo_qualifying, dtype=np.float64)
    if lo.ndim != 2 or lo.size == 0:
        raise ValueError(f"need (T_q, V) log-odds with both > 0, got shape {lo.shape}")
    present = [(groups, np.asarray(mask, dtype=bool)) for groups, mask in members]
    present = [(g, m) for g, m in present if m.any()]
    total = sum(int(m.sum()) for _, m in present) * lo.shape[0]
    rows = []
    for groups, mask in present:
        x = lo[:, mask]
        rows.append(
            (groups, x.size, int(mask.sum()), x.size / total, float(np.count_nonzero(x > 0) / x.size))
        )
    kept = [r for r in rows if r[3] >= min_share]
    best = max(kept, key=lambda r: r[4]) if kept else None  # max keeps the first of equal rates
    out = tuple(
        Category(
            name=" x ".join(groups),
            groups=groups,
            n=n,
            n_names=n_names,
            share=share,
            selection_rate=rate,
            impact_ratio=None if share < min_share or best is None else impact_ratio(rate, best[4]),
            excluded=share < min_share,
            small_sample=n < min_n,
        )
        for groups, n, n_names, share, rate in rows
    )
    return out, None if best is None else " x ".join(best[0])


def crossed_members(
    values: Sequence[str], first: dict[str, Sequence[str]], second: dict[str, Sequence[str]]
) -> list[tuple[tuple[str, str], np.ndarray]]:
    """The crossed categories of two attributes over the same values: group a of ``first`` x group b of
    ``second`` holds the values in both, as a (len(values),) mask; first's groups outermost.

    Args:
        values: the columns' values (the first attribute's, in its column order).
        first, second: group -> its values, in suite order.
    """
    column = {v: i for i, v in enumerate(values)}
    out = []
    for a, a_values in first.items():
        for b, b_values in second.items():
            mask = np.zeros(len(values), dtype=bool)
            for v in set(a_values) & set(b_values):
                if v in column:
                    mask[column[v]] = True
            out.append(((a, b), mask))
    return out
