"""Percentile bootstrap intervals of impact ratio and effect size (templates and names resampled)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.behaviour.stats.permutation import _rng
from audit.behaviour.stats.scores import _CHUNK_ELEMENTS, LEVEL, N_BOOT, ProbeScores, _canonical


@dataclass(frozen=True)
class BootstrapCI:
    """Percentile bootstrap intervals of one group-vs-reference comparison.

    Attributes:
        impact_ratio: (low, high) of selection rate / reference selection rate, over the replicates
            where the reference rate is > 0; None when it is 0 in every replicate.
        effect_size: (low, high) of the difference in mean log-odds (logits), group minus reference.
        n_boot: replicates B.
        n_undefined: replicates left out of the impact-ratio interval (reference rate 0 there).
        level: coverage, e.g. 0.95.
    """

    impact_ratio: tuple[float, float] | None
    effect_size: tuple[float, float]
    n_boot: int
    n_undefined: int
    level: float


def _replicate_means(scores: ProbeScores, *, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, G) selection rates and (B, G) mean log-odds of bootstrap replicates.

    A replicate's mean over (resampled rows) x (resampled columns) is r^T X c / (T_q n_g) with r, c the
    multinomial resampling counts, so B replicates are a matrix product, computed in memory-bounded
    blocks. The stream: per block, the row counts, then each group's column counts in suite order.
    """
    lo = scores.lo_qualifying
    t_q, v = lo.shape
    n_groups = len(scores.group_ids)
    onehot = np.zeros((v, n_groups))
    onehot[np.arange(v), scores.groups] = 1.0
    sizes = onehot.sum(axis=0)
    cols = [np.flatnonzero(scores.groups == gi) for gi in range(n_groups)]
    data = np.stack([(lo > 0).astype(np.float64), lo])  # (2, T_q, V)
    rng = _rng(seed)
    rates = np.empty((n_boot, n_groups))
    means = np.empty((n_boot, n_groups))
    chunk = max(1, _CHUNK_ELEMENTS // (t_q + 3 * v))
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        rows = rng.multinomial(t_q, np.full(t_q, 1.0 / t_q), size=m)  # (m, T_q)
        counts = np.zeros((m, v))
        for c in cols:
            counts[:, c] = rng.multinomial(c.size, np.full(c.size, 1.0 / c.size), size=m)
        weighted = (rows @ data) * counts  # (2, m, V)
        block = weighted @ onehot / (t_q * sizes)  # (2, m, G)
        rates[start : start + m] = block[0]
        means[start : start + m] = block[1]
    return rates, means


def bootstrap_cis(
    scores: ProbeScores,
    reference: str,
    *,
    seed: int,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
) -> dict[str, BootstrapCI]:
    """Seeded percentile bootstrap CIs of impact ratio and effect size for each non-reference group.

    Each replicate resamples the qualifying templates (rows) with replacement and, independently
    within each group, the names (columns) with replacement, so both sources of variation of the
    crossed design enter; all groups share a replicate's templates. The reference group stays the one
    given (not re-chosen per replicate). Deterministic for a given seed and input, whatever the column
    order within groups.

    Args:
        scores: the attribute's log-odds.
        reference: the reference group id.
        seed: seeds numpy Generator(PCG64(seed)).
        n_boot: replicates B.
        level: coverage; the interval is the ((1 - level) / 2, (1 + level) / 2) quantiles.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    scores = _canonical(scores)
    ri = scores.group_ids.index(reference)
    rates, means = _replicate_means(scores, n_boot=n_boot, seed=seed)
    q = [(1 - level) / 2, (1 + level) / 2]
    out = {}
    for gi, gid in enumerate(scores.group_ids):
        if gi == ri:
            continue
        defined = rates[:, ri] > 0
        ratios = rates[defined, gi] / rates[defined, ri]
        ir = tuple(float(x) for x in np.quantile(ratios, q)) if ratios.size else None
        es = tuple(float(x) for x in np.quantile(means[:, gi] - means[:, ri], q))
        out[gid] = BootstrapCI(ir, es, n_boot, int(n_boot - defined.sum()), level)
    return out
