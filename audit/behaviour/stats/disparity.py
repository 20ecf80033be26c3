"""Disparity statistics of one attribute (rates, impact ratios, effect sizes, CIs, p-values, flags)
and the Benjamini-Hochberg q-values over a whole report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.stats import false_discovery_control

from audit.behaviour.stats.bootstrap import bootstrap_cis
from audit.behaviour.stats.permutation import name_permutation_test
from audit.behaviour.stats.scores import (
    ALPHA,
    BOOTSTRAP_CI,
    LEVEL,
    MAX_EXACT,
    MIN_RENDERINGS,
    MIN_SHARE,
    N_BOOT,
    N_PERM,
    NAME_PERMUTATION_TEST,
    QVALUE_FAMILY,
    ProbeScores,
    _canonical,
    impact_ratio,
    name_means,
    reference_group,
    summarise_groups,
)


@dataclass(frozen=True)
class GroupResult:
    """One group of an attribute under one condition, compared with the reference group.

    The reference group's own comparison fields are None (effect_size 0, impact_ratio 1 or None).

    Attributes:
        group, n, n_names, share, selection_rate, mean_p_positive, mean_log_odds: see GroupSummary.
        is_reference: whether this is the reference group.
        impact_ratio: selection_rate / reference selection_rate; None when the reference rate is 0.
        effect_size: mean log-odds minus the reference's (logits).
        impact_ci, effect_ci: percentile bootstrap intervals (BOOTSTRAP_CI).
        n_undefined_boot: bootstrap replicates without an impact ratio (reference rate 0 there).
        p_value: NAME_PERMUTATION_TEST of the effect size.
        min_p: the smallest p the test can give with these numbers of names.
        exact: whether the permutation test enumerated every assignment.
        q_value: Benjamini-Hochberg q over QVALUE_FAMILY; None until ``with_qvalues``.
        small_sample: n below the floor (AttributeStats.min_n).
        low_share: share of renderings below AttributeStats.min_share (2%).
        cannot_reach_significance: min_p >= alpha: too few names for p < alpha whatever the data.
    """

    group: str
    n: int
    n_names: int
    share: float
    selection_rate: float
    mean_p_positive: float
    mean_log_odds: float
    is_reference: bool
    impact_ratio: float | None
    effect_size: float
    impact_ci: tuple[float, float] | None
    effect_ci: tuple[float, float] | None
    n_undefined_boot: int | None
    p_value: float | None
    min_p: float | None
    exact: bool | None
    q_value: float | None
    small_sample: bool
    low_share: bool
    cannot_reach_significance: bool


@dataclass(frozen=True)
class AttributeStats:
    """Disparity statistics of one attribute under one condition.

    Attributes:
        reference_group: the reference group id.
        reference_given: True when the suite named it, False when chosen as the highest rate.
        groups: one GroupResult per group, in suite order.
        n_templates: qualifying templates.
        seed, n_boot, n_perm, max_exact, level: the resampling settings.
        min_n, min_share, alpha: the floors behind the small-sample flags.
        test, ci_method: how p-values and intervals were computed.
        family: the q-value family, once q-values are assigned.
    """

    reference_group: str
    reference_given: bool
    groups: tuple[GroupResult, ...]
    n_templates: int
    seed: int
    n_boot: int
    n_perm: int
    max_exact: int
    level: float
    min_n: int
    min_share: float
    alpha: float
    test: str = NAME_PERMUTATION_TEST
    ci_method: str = BOOTSTRAP_CI
    family: str | None = None


def attribute_stats(
    scores: ProbeScores,
    *,
    seed: int,
    n_boot: int = N_BOOT,
    n_perm: int = N_PERM,
    max_exact: int = MAX_EXACT,
    level: float = LEVEL,
    min_n: int = MIN_RENDERINGS,
    min_share: float = MIN_SHARE,
    alpha: float = ALPHA,
) -> AttributeStats:
    """Rates, impact ratios, effect sizes, bootstrap CIs, permutation p-values and flags of an attribute.

    The Monte Carlo permutations of the group at suite index i use the stream (seed, i); the bootstrap
    uses Generator(PCG64(seed)). q-values are assigned over the report with ``with_qvalues``.
    """
    scores = _canonical(scores)
    summaries = summarise_groups(scores)
    ref = reference_group(summaries, scores.reference)
    ri = scores.group_ids.index(ref)
    ref_sum = summaries[ri]
    cis = bootstrap_cis(scores, ref, seed=seed, n_boot=n_boot, level=level)
    means = name_means(scores)
    results = []
    for gi, s in enumerate(summaries):
        test = None
        if gi != ri:
            test = name_permutation_test(
                means[scores.groups == gi],
                means[scores.groups == ri],
                seed=(seed, gi),
                n_perm=n_perm,
                max_exact=max_exact,
            )
        ci = cis.get(s.group)
        results.append(
            GroupResult(
                group=s.group,
                n=s.n,
                n_names=s.n_names,
                share=s.share,
                selection_rate=s.selection_rate,
                mean_p_positive=s.mean_p_positive,
                mean_log_odds=s.mean_log_odds,
                is_reference=gi == ri,
                impact_ratio=impact_ratio(s.selection_rate, ref_sum.selection_rate),
                effect_size=s.mean_log_odds - ref_sum.mean_log_odds,
                impact_ci=ci.impact_ratio if ci else None,
                effect_ci=ci.effect_size if ci else None,
                n_undefined_boot=ci.n_undefined if ci else None,
                p_value=test.p_value if test else None,
                min_p=test.min_p if test else None,
                exact=test.exact if test else None,
                q_value=None,
                small_sample=s.n < min_n,
                low_share=s.share < min_share,
                cannot_reach_significance=bool(test and test.min_p >= alpha),
            )
        )
    return AttributeStats(
        reference_group=ref,
        reference_given=scores.reference is not None,
        groups=tuple(results),
        n_templates=int(scores.qualifying.sum()),
        seed=seed,
        n_boot=n_boot,
        n_perm=n_perm,
        max_exact=max_exact,
        level=level,
        min_n=min_n,
        min_share=min_share,
        alpha=alpha,
    )


# --- q-values --------------------------------------------------------------------------------------


def bh_qvalues(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg q-values (scipy.stats.false_discovery_control, method "bh").

    The family is the non-None entries; None entries (no test, e.g. the reference group) stay None.
    """
    present = [i for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    if present:
        ps = np.array([p_values[i] for i in present], dtype=np.float64)
        if ((ps < 0) | (ps > 1) | np.isnan(ps)).any():
            raise ValueError(f"p-values must lie in [0, 1], got {ps.tolist()}")
        for i, q in zip(present, false_discovery_control(ps, method="bh")):
            out[i] = float(q)
    return out


def with_qvalues(report: Sequence[AttributeStats]) -> tuple[AttributeStats, ...]:
    """The same results with BH q-values over QVALUE_FAMILY: every group-vs-reference comparison
    of every attribute and condition passed in (pass the whole report at once)."""
    p = [g.p_value for a in report for g in a.groups]
    q = iter(bh_qvalues(p))
    return tuple(
        replace(a, groups=tuple(replace(g, q_value=next(q)) for g in a.groups), family=QVALUE_FAMILY)
        for a in report
    )
