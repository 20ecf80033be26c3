"""Is the test's false-alarm rate what it claims, on this run's own log-odds? Placebo comparisons.

Within one group the names share the group, so no real gap separates two random halves of them: a split
of a group's names into two pseudo-groups is a placebo comparison. Each of ``n_splits`` seeded splits of
every group with at least 4 names goes through the same name permutation test as the real comparisons;
the observed false-alarm rate is the share with p < alpha, reported against the nominal alpha with its
Monte Carlo error sqrt(alpha (1 - alpha) / n). Ties in the log-odds, skewed distributions and few names
all show up here. The rate is per test, before the Benjamini-Hochberg correction (which only lowers it).
A rate above alpha by more than twice its Monte Carlo error marks the test as anti-conservative here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from audit.behaviour.stats.permutation import _rng, name_permutation_test

N_SPLITS = 100
PLACEBO_N_PERM = 999
MIN_NAMES = 4

PLACEBO_METHOD = (
    f"placebo comparisons: each group's names (groups with at least {MIN_NAMES}) split at random into two "
    f"halves, {N_SPLITS} seeded splits per group, each half against the other through the same name "
    f"permutation test ({PLACEBO_N_PERM} permutations); false-alarm rate = share with p < alpha, per test "
    "before the BH correction; anti-conservative when above alpha by more than twice its Monte Carlo error"
)


@dataclass(frozen=True)
class Placebo:
    """The placebo calibration of one run.

    Attributes:
        n_tests: placebo comparisons run.
        n_false_alarms: those with p < alpha.
        rate: n_false_alarms / n_tests (None when no group had enough names).
        nominal: alpha.
        mc_error: sqrt(alpha (1 - alpha) / n_tests), the Monte Carlo error of the rate at the nominal level.
        anticonservative: rate > nominal + 2 * mc_error.
        split_sizes: the distinct (half, other half) sizes used.
    """

    n_tests: int
    n_false_alarms: int
    rate: float | None
    nominal: float
    mc_error: float | None
    anticonservative: bool
    split_sizes: tuple[tuple[int, int], ...]


def placebo(
    name_means: Sequence[np.ndarray],
    *,
    alpha: float | Sequence[float],
    seed: tuple[int, ...],
    n_splits: int = N_SPLITS,
    n_perm: int = PLACEBO_N_PERM,
) -> Placebo:
    """Placebo false-alarm rate over the groups given.

    Args:
        name_means: per group, (n_names,) each name's mean log-odds over the qualifying templates; or,
            for a sequential plan, (n_looks, n_names): the same names' means at each look.
        alpha: the level; for a sequential plan one level per look. A split is then a false alarm when
            some look has p < its level (the plan's own stopping rule), and ``nominal`` is their sum.
        seed: the run's stream, e.g. (config seed, condition index); group k uses (*seed, k).
    """
    levels = (alpha,) if np.ndim(alpha) == 0 else tuple(alpha)
    nominal = float(sum(levels))
    n_tests = hits = 0
    sizes = set()
    for k, values in enumerate(name_means):
        values = np.atleast_2d(np.asarray(values, dtype=np.float64))
        if values.shape[0] != len(levels):
            raise ValueError(f"group {k}: {values.shape[0]} looks of name means for {len(levels)} levels")
        # canonical: order within a group is free; by the last look, then the earlier ones
        values = values[:, np.lexsort(values)]
        n = values.shape[1]
        if n < MIN_NAMES:
            continue
        rng = _rng((*seed, k))
        half = n // 2
        sizes.add((half, n - half))
        for split in range(n_splits):
            order = rng.permutation(n)
            alarm = False
            for j, (look, level) in enumerate(zip(values, levels)):
                stream = (*seed, k, split) if len(levels) == 1 else (*seed, k, split, j)
                test = name_permutation_test(
                    look[order[:half]], look[order[half:]], seed=stream, n_perm=n_perm
                )
                alarm = alarm or test.p_value < level
            n_tests += 1
            hits += alarm
    if n_tests == 0:
        return Placebo(0, 0, None, nominal, None, False, ())
    rate = hits / n_tests
    error = math.sqrt(nominal * (1 - nominal) / n_tests)
    return Placebo(n_tests, int(hits), rate, nominal, error, rate > nominal + 2 * error, tuple(sorted(sizes)))
