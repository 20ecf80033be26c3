"""Task accuracy, the faithfulness of a projected text to its soft prompt, and position ablations."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy.special import expit

from audit.behaviour.stats.permutation import name_permutation_test, sign_flip_test
from audit.behaviour.stats.scores import (
    ABLATION_TESTS,
    MAX_EXACT,
    MIN_AGREEMENT,
    N_PERM,
    ProbeScores,
    _canonical_order,
    impact_ratio,
    name_means,
    reference_group,
    summarise_groups,
)


@dataclass(frozen=True)
class TaskAccuracy:
    """Share of labelled renderings decided as labelled (+1: lo > 0, -1: lo <= 0).

    Attributes:
        accuracy: in [0, 1]; None when no template is labelled.
        n: labelled renderings (labelled templates x values).
    """

    accuracy: float | None
    n: int


def _check_lo(lo: np.ndarray, labels: np.ndarray | None = None, name: str = "lo") -> np.ndarray:
    lo = np.asarray(lo, dtype=np.float64)
    if lo.ndim != 2:
        raise ValueError(f"{name} must be (n_templates, n_values), got shape {lo.shape}")
    if labels is not None and np.shape(labels) != (lo.shape[0],):
        raise ValueError(
            f"labels must be ({lo.shape[0]},) (one per template of {name}), got {np.shape(labels)}"
        )
    return lo


def task_accuracy(lo: np.ndarray, labels: np.ndarray) -> TaskAccuracy:
    """Task accuracy over the labelled templates, every value.

    Args:
        lo: (T, V) log-odds.
        labels: (T,) +1 positive, -1 negative, 0 unlabelled (left out).
    """
    lo = _check_lo(lo, labels)
    labels = np.asarray(labels)
    x = lo[labels != 0]
    if x.size == 0:
        return TaskAccuracy(None, 0)
    want = (labels[labels != 0] > 0)[:, None]
    return TaskAccuracy(float(np.count_nonzero((x > 0) == want) / x.size), int(x.size))


def bernoulli_kl(lo_p: np.ndarray, lo_q: np.ndarray) -> np.ndarray:
    """KL(P || Q) in nats between two-outcome answer distributions given by their log-odds.

    With p = sigmoid(a), q = sigmoid(b):
    KL = p log(p/q) + (1-p) log((1-p)/(1-q)) = softplus(-b) - softplus(-a) + sigmoid(-a) (b - a),
    computed with logaddexp so large |log-odds| neither overflow nor lose the result; clipped at 0.
    """
    a = np.asarray(lo_p, dtype=np.float64)
    b = np.asarray(lo_q, dtype=np.float64)
    kl = np.logaddexp(0.0, -b) - np.logaddexp(0.0, -a) + expit(-a) * (b - a)
    return np.maximum(kl, 0.0)


@dataclass(frozen=True)
class Faithfulness:
    """A projected text run as a plain prompt vs the soft prompt, on the same renderings.

    Attributes:
        agreement: share of renderings (all templates x values) with the same decision, in [0, 1].
        kl: mean KL(P_soft || P_text) of the two-answer distribution, nats per rendering.
        accuracy_soft, accuracy_text: task accuracy of each on the labelled templates.
        n: renderings compared.
        faithful: agreement >= min_agreement.
        min_agreement: the threshold used.
    """

    agreement: float
    kl: float
    accuracy_soft: TaskAccuracy
    accuracy_text: TaskAccuracy
    n: int
    faithful: bool
    min_agreement: float


def faithfulness(
    lo_soft: np.ndarray, lo_text: np.ndarray, labels: np.ndarray, *, min_agreement: float = MIN_AGREEMENT
) -> Faithfulness:
    """Decision agreement, mean Bernoulli KL and accuracies of a text prompt vs the soft prompt.

    Args:
        lo_soft: (T, V) log-odds with the soft prompt.
        lo_text: (T, V) log-odds with the text prompt, same renderings in the same order.
        labels: (T,) template labels.
    """
    soft = _check_lo(lo_soft, labels, "lo_soft")
    text = _check_lo(lo_text, labels, "lo_text")
    if soft.shape != text.shape:
        raise ValueError(f"lo_soft {soft.shape} and lo_text {text.shape} must cover the same renderings")
    agreement = float(np.count_nonzero((soft > 0) == (text > 0)) / soft.size)
    return Faithfulness(
        agreement=agreement,
        kl=float(bernoulli_kl(soft, text).mean()),
        accuracy_soft=task_accuracy(soft, labels),
        accuracy_text=task_accuracy(text, labels),
        n=int(soft.size),
        faithful=agreement >= min_agreement,
        min_agreement=min_agreement,
    )


# --- ablation --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AblationGroup:
    """How replacing one prompt position changes a group's decisions (ablated minus original).

    Attributes:
        group: group id.
        is_reference: whether this is the reference group.
        selection_rate: (original, ablated) selection rates.
        delta_selection_rate: ablated minus original selection rate.
        impact_ratio: (original, ablated) impact ratios, None where undefined.
        delta_impact_ratio: ablated minus original; None when either is None.
        delta_effect: the change in the effect size vs the reference (logits): the change in the gap.
        p_value: AblationStats.test of delta_effect; None for the reference group.
        min_p: the smallest p that test can give with these numbers of names.
        exact: whether it enumerated every assignment.
    """

    group: str
    is_reference: bool
    selection_rate: tuple[float, float]
    delta_selection_rate: float
    impact_ratio: tuple[float | None, float | None]
    delta_impact_ratio: float | None
    delta_effect: float
    p_value: float | None
    min_p: float | None
    exact: bool | None


@dataclass(frozen=True)
class AblationStats:
    """One ablation of one attribute.

    Attributes:
        reference_group: the original condition's reference group, used for both conditions.
        groups: one AblationGroup per group, in suite order.
        p_value: Bonferroni-adjusted smallest group p (min(1, k * min p) over the k comparisons): the
            family is this attribute's group-vs-reference comparisons under this ablation.
        method: "exchange" or "sign_flip".
        test: what the per-group p-values test (ABLATION_TESTS[method]).
    """

    reference_group: str
    groups: tuple[AblationGroup, ...]
    p_value: float | None
    method: str
    test: str


def ablation_stats(
    original: ProbeScores,
    ablated: ProbeScores,
    *,
    seed: int,
    method: Literal["exchange", "sign_flip"] = "exchange",
    n_perm: int = N_PERM,
    max_exact: int = MAX_EXACT,
) -> AblationStats:
    """Per group, the change in selection rate, impact ratio and gap when a prompt position is replaced.

    The pairing is per name: d_j = (mean log-odds of name j over the qualifying templates, ablated)
    minus (the same, original); the change in the gap is mean_g(d) - mean_ref(d), which equals the
    ablated effect size minus the original one. Template effects cancel within d_j.

    ``method="exchange"`` (default) shuffles group labels across the names of the two groups, keeping
    each name's d_j: it tests "the change is the same, in distribution, for the group's names and
    the reference's" (no group x ablation interaction) and is exact under that null. It does not test
    whether the ablation changes decisions at all: a shift common to every name (which replacing a
    vector by the vocabulary mean often causes) leaves it unaffected.

    ``method="sign_flip"`` swaps with/without within each name (flips the sign of d_j): its null is
    "the ablation changes no name" (each d_j symmetric about 0), which is stronger than "the gap does
    not change". It is valid for the gap, with finer resolution (min p = 2 / 2^n vs 2 / C(n, n_g)),
    but a common shift widens its null distribution, so it loses power when the ablation moves every
    name; it too says nothing about a common shift by itself (the statistic cancels it).

    Neither generalises over templates (both condition on the qualifying templates).

    Args:
        original: (T, V) log-odds with the prompt as trained.
        ablated: the same renderings with one position replaced (same groups, labels, qualifying).
        seed: Monte Carlo seed; the group at suite index i uses the stream (seed, i).
        method: "exchange" or "sign_flip".
    """
    if method not in ABLATION_TESTS:
        raise ValueError(f"method must be one of {sorted(ABLATION_TESTS)}, got {method!r}")
    if (
        original.lo.shape != ablated.lo.shape
        or original.group_ids != ablated.group_ids
        or not np.array_equal(original.groups, ablated.groups)
        or not np.array_equal(original.qualifying, ablated.qualifying)
    ):
        raise ValueError(
            f"original {original.lo.shape} and ablated {ablated.lo.shape} must be the same renderings "
            "(same shape, groups, group_ids and qualifying templates)"
        )
    order = _canonical_order(original.lo, ablated.lo, groups=original.groups)
    original = replace(original, lo=original.lo[:, order], groups=original.groups[order])
    ablated = replace(ablated, lo=ablated.lo[:, order], groups=ablated.groups[order])
    before, after = summarise_groups(original), summarise_groups(ablated)
    ref = reference_group(before, original.reference)
    ri = original.group_ids.index(ref)
    d = name_means(ablated) - name_means(original)
    test_fn = name_permutation_test if method == "exchange" else sign_flip_test
    groups = []
    for gi, (b, a) in enumerate(zip(before, after)):
        ir_b = impact_ratio(b.selection_rate, before[ri].selection_rate)
        ir_a = impact_ratio(a.selection_rate, after[ri].selection_rate)
        test = None
        if gi != ri:
            test = test_fn(
                d[original.groups == gi],
                d[original.groups == ri],
                seed=(seed, gi),
                n_perm=n_perm,
                max_exact=max_exact,
            )
        groups.append(
            AblationGroup(
                group=b.group,
                is_reference=gi == ri,
                selection_rate=(b.selection_rate, a.selection_rate),
                delta_selection_rate=a.selection_rate - b.selection_rate,
                impact_ratio=(ir_b, ir_a),
                delta_impact_ratio=None if ir_a is None or ir_b is None else ir_a - ir_b,
                delta_effect=(a.mean_log_odds - after[ri].mean_log_odds)
                - (b.mean_log_odds - before[ri].mean_log_odds),
                p_value=test.p_value if test else None,
                min_p=test.min_p if test else None,
                exact=test.exact if test else None,
            )
        )
    ps = [g.p_value for g in groups if g.p_value is not None]
    p_any = min(1.0, len(ps) * min(ps)) if ps else None
    return AblationStats(ref, tuple(groups), p_any, method, ABLATION_TESTS[method])
