"""What a suite could have detected: the smallest gap found with 80 % power, from the run's own log-odds.

No extra forward passes: a simulated comparison takes the reference group's measured log-odds (its names
x the qualifying templates, so the suite's own name and template variation), resamples names with
replacement for a pseudo-group of the compared group's size and for a pseudo-reference of the reference's
size, lowers the pseudo-group's log-odds by a shift ``delta`` (logits, a uniform gap in the model's
preference), and runs the rule's HIGH test on it: impact ratio below the threshold and the name
permutation test's p below alpha. Power(delta) is the share of ``n_sims`` seeded simulations detected;
the detectable shift is the smallest delta with power >= the target, found by bisection with common random
numbers (the same resampled names and permutation streams at every delta), and the detectable impact ratio
is the simulations' mean ratio at that shift.

Power is computed at the nominal alpha before the Benjamini-Hochberg correction over the report: with the
correction the real power is lower, so the figure is optimistic, and it holds for a gap of this form (a
shift on the logit scale), not for every possible pattern of discrimination.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.behaviour.stats.permutation import _rng, name_permutation_test

POWER_TARGET = 0.8
N_SIMS = 200
POWER_N_PERM = 999  # Monte Carlo permutations per simulated test (the smallest p is then 0.001)
MAX_SHIFT = 12.0  # logits: a shift beyond this turns any decision around
BISECTION_STEPS = 10

POWER_METHOD = (
    f"seeded simulation from this run's log-odds: names of the reference group resampled with replacement "
    f"into a pseudo-group (the compared group's size) and a pseudo-reference, the pseudo-group's log-odds "
    f"lowered by a shift; detected when its impact ratio is below the threshold and the name permutation "
    f"test gives p < alpha (before the BH correction, so optimistic); {N_SIMS} simulations per shift, "
    f"{POWER_N_PERM} permutations per test; the detectable shift is the smallest with "
    f"{POWER_TARGET:.0%} power"
)


@dataclass(frozen=True)
class Power:
    """What the suite detects for one comparison with ``target`` power.

    Attributes:
        detectable_shift: the smallest uniform log-odds gap (logits) detected with ``target`` power, or
            None when even a shift of MAX_SHIFT is not (the comparison cannot detect any gap).
        detectable_ratio: the mean impact ratio of the simulations at that shift (None with it).
        power_at_max: the power at MAX_SHIFT.
        n_sims: simulations per shift.
    """

    detectable_shift: float | None
    detectable_ratio: float | None
    power_at_max: float
    n_sims: int


def _draws(n_ref: int, n_group: int, n_sims: int, seed) -> tuple[np.ndarray, np.ndarray]:
    rng = _rng(seed)
    return rng.integers(0, n_ref, size=(n_sims, n_group)), rng.integers(0, n_ref, size=(n_sims, n_ref))


def _detected(
    reference_lo: np.ndarray,
    group_cols: np.ndarray,
    ref_cols: np.ndarray,
    shift: float,
    *,
    threshold: float,
    alpha: float,
    seed,
    n_perm: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(n_sims,) bool detected and (n_sims,) float impact ratio (NaN when undefined) at ``shift``."""
    hits = np.zeros(len(group_cols), dtype=bool)
    ratios = np.full(len(group_cols), np.nan)
    for s, (g, r) in enumerate(zip(group_cols, ref_cols)):
        group = reference_lo[:, g] - shift
        ref = reference_lo[:, r]
        rate_r = np.count_nonzero(ref > 0) / ref.size
        if rate_r == 0:
            continue
        ratio = (np.count_nonzero(group > 0) / group.size) / rate_r
        ratios[s] = ratio
        if ratio >= threshold:
            continue
        test = name_permutation_test(group.mean(axis=0), ref.mean(axis=0), seed=(*seed, s), n_perm=n_perm)
        hits[s] = test.p_value < alpha
    return hits, ratios


def detectable_gap(
    reference_lo: np.ndarray,
    n_group: int,
    *,
    threshold: float,
    alpha: float,
    seed: tuple[int, ...],
    target: float = POWER_TARGET,
    n_sims: int = N_SIMS,
    n_perm: int = POWER_N_PERM,
    max_shift: float = MAX_SHIFT,
    steps: int = BISECTION_STEPS,
) -> Power:
    """The smallest gap one comparison detects with ``target`` power (module docstring).

    Args:
        reference_lo: (T_q, n_ref) the reference group's log-odds over the qualifying templates.
        n_group: names of the compared group.
        seed: the stream of this comparison, e.g. (config seed, attribute index, group index).
    """
    lo = np.asarray(reference_lo, dtype=np.float64)
    if lo.ndim != 2 or lo.shape[0] == 0 or lo.shape[1] == 0 or n_group < 1:
        raise ValueError(f"need (T_q, n_ref) reference log-odds and n_group >= 1; got {lo.shape}, {n_group}")
    group_cols, ref_cols = _draws(lo.shape[1], n_group, n_sims, seed)

    def run(shift: float) -> tuple[float, float]:
        hits, ratios = _detected(
            lo, group_cols, ref_cols, shift, threshold=threshold, alpha=alpha, seed=seed, n_perm=n_perm
        )
        defined = ratios[~np.isnan(ratios)]
        return float(hits.mean()), float(defined.mean()) if defined.size else float("nan")

    top, _ = run(max_shift)
    if top < target:
        return Power(None, None, top, n_sims)
    lo_s, hi_s = 0.0, max_shift
    if run(0.0)[0] >= target:  # detected without any shift: cannot happen for a valid test; kept safe
        hi_s = 0.0
    for _ in range(steps if hi_s > 0 else 0):
        mid = (lo_s + hi_s) / 2
        if run(mid)[0] >= target:
            hi_s = mid
        else:
            lo_s = mid
    _, ratio = run(hi_s)
    return Power(hi_s, None if np.isnan(ratio) else ratio, top, n_sims)
