"""The input of every statistic (ProbeScores), its canonical column order, per-group summaries and the
reference group; the settings and test descriptions shared by the other modules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import expit

MAX_EXACT = 20000  # enumerate every assignment up to this many, else Monte Carlo
N_PERM = 9999  # Monte Carlo permutations: the smallest p is then 1 / 10000
N_BOOT = 2000
LEVEL = 0.95
MIN_RENDERINGS = 50  # our floor for a group's qualifying renderings (a convention, not a standard)
MIN_SHARE = 0.02  # NYC Local Law 144 lets audits exclude categories under 2% of the data
ALPHA = 0.05
MIN_AGREEMENT = 0.8  # a projected text agreeing on fewer decisions is an unfaithful reading
TIE_TOL = 1e-9
_CHUNK_ELEMENTS = 1 << 22  # bounds the memory of vectorised bootstrap / permutation blocks (float64)

NAME_PERMUTATION_TEST = (
    "two-sided permutation test over names: group labels are shuffled across the names of the two "
    "groups; statistic = difference of the groups' means of per-name mean log-odds over the "
    "qualifying templates; exact when there are at most max_exact assignments, else seeded Monte "
    "Carlo with p = (1 + #{|stat| >= |observed|}) / (B + 1); conditional on the templates"
)
BOOTSTRAP_CI = (
    "percentile bootstrap: qualifying templates resampled with replacement and, independently within "
    "each group, names resampled with replacement; reference group fixed"
)
QVALUE_FAMILY = "all group-vs-reference comparisons of all attributes and conditions in this report"
ABLATION_TESTS = {
    "exchange": (
        "two-sided paired permutation test of the change in the gap: per name, the change in mean "
        "log-odds (ablated minus original, same templates); group labels shuffled across the names of "
        "the two groups; statistic = difference of the groups' mean changes"
    ),
    "sign_flip": (
        "two-sided paired sign-flip test of the change in the gap: per name, the change in mean "
        "log-odds (ablated minus original, same templates); with/without swapped within each name "
        "(the sign of its change flipped); statistic = difference of the groups' mean changes"
    ),
}


# --- input -----------------------------------------------------------------------------------------


def log_odds(lp_pos: np.ndarray, lp_neg: np.ndarray) -> np.ndarray:
    """Log-odds of the positive answer (logits): summed log-probs of positive minus negative."""
    return np.asarray(lp_pos, dtype=np.float64) - np.asarray(lp_neg, dtype=np.float64)


def p_positive(lo: np.ndarray) -> np.ndarray:
    """P(positive) renormalised over the two answers: sigmoid(log-odds)."""
    return expit(np.asarray(lo, dtype=np.float64))


def qualifying_from_labels(labels: np.ndarray) -> np.ndarray:
    """(T,) bool: templates labelled positive, or every template when none is labelled.

    Templates labelled only negative give no qualifying template (ProbeScores then refuses them).
    """
    labels = np.asarray(labels)
    return labels > 0 if (labels != 0).any() else np.ones(labels.shape, dtype=bool)


@dataclass(frozen=True, eq=False)
class ProbeScores:
    """The log-odds of one attribute under one condition (soft prompt, text prompt, no prompt, ablation).

    Attributes:
        lo: (T, V) float64 log-odds, a row per template, a column per value (all groups' names).
        groups: (V,) int, the index into ``group_ids`` of each column.
        group_ids: (G,) group names in suite order.
        qualifying: (T,) bool, the templates the group statistics are computed over.
        labels: (T,) int8, +1 positive, -1 negative, 0 unlabelled.
        reference: the suite's reference group, or None (then the highest selection rate).
    """

    lo: np.ndarray
    groups: np.ndarray
    group_ids: tuple[str, ...]
    qualifying: np.ndarray
    labels: np.ndarray
    reference: str | None = None

    def __post_init__(self) -> None:
        lo = np.asarray(self.lo, dtype=np.float64)
        if lo.ndim != 2 or lo.shape[0] == 0 or lo.shape[1] == 0:
            raise ValueError(f"lo must be (n_templates, n_values) with both > 0, got shape {lo.shape}")
        if not np.isfinite(lo).all():
            raise ValueError("lo has non-finite log-odds: check the model run (NaN/inf log-probs)")
        t, v = lo.shape
        groups = np.asarray(self.groups)
        if groups.shape != (v,) or not np.issubdtype(groups.dtype, np.integer):
            raise ValueError(
                f"groups must be ({v},) int (one per column of lo), got {groups.shape} {groups.dtype}"
            )
        group_ids = tuple(self.group_ids)
        if len(set(group_ids)) != len(group_ids):
            raise ValueError(f"group_ids must be unique, got {group_ids}")
        present = np.bincount(groups, minlength=len(group_ids)) if groups.size and groups.min() >= 0 else None
        if present is None or present.size != len(group_ids) or (present == 0).any():
            raise ValueError(
                f"groups must index 0..{len(group_ids) - 1} and every group needs at least one value; "
                f"got indices {sorted(set(groups.tolist()))} for {len(group_ids)} groups"
            )
        qualifying = np.asarray(self.qualifying)
        if qualifying.shape != (t,) or qualifying.dtype != bool or not qualifying.any():
            raise ValueError(
                f"qualifying must be ({t},) bool with at least one True, got {qualifying.shape} "
                f"{qualifying.dtype} with {int(np.count_nonzero(qualifying))} True: a suite with "
                "labels needs at least one template labelled positive"
            )
        labels = np.asarray(self.labels)
        if labels.shape != (t,) or not np.isin(labels, (-1, 0, 1)).all():
            raise ValueError(f"labels must be ({t},) with values in {{-1, 0, 1}}, got {labels.shape}")
        if self.reference is not None and self.reference not in group_ids:
            raise ValueError(f"reference group {self.reference!r} is not one of {group_ids}")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "groups", groups.astype(np.int64))
        object.__setattr__(self, "group_ids", group_ids)
        object.__setattr__(self, "labels", labels.astype(np.int8))

    @property
    def lo_qualifying(self) -> np.ndarray:
        """(T_q, V) log-odds of the qualifying templates."""
        return self.lo[self.qualifying]


def _canonical_order(*matrices: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(V,) column order: by group, then lexicographically by the columns' values.

    Identical columns are interchangeable, so any result computed in this order is the same for
    every order of the columns within their groups (including seeded resampling of names).
    """
    keys = [m[::-1] for m in reversed(matrices)]  # np.lexsort: the last key is the primary one
    return np.lexsort(np.vstack([*keys, groups[None, :]]))


def _canonical(scores: ProbeScores) -> ProbeScores:
    order = _canonical_order(scores.lo, groups=scores.groups)
    return replace(scores, lo=scores.lo[:, order], groups=scores.groups[order])


# --- per-group rates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupSummary:
    """A group's decisions over the qualifying renderings.

    Attributes:
        group: group id.
        n: qualifying renderings (qualifying templates x the group's names).
        n_names: the group's values (columns).
        share: n / all qualifying renderings of the attribute.
        selection_rate: share of the n renderings decided positive (lo > 0), in [0, 1].
        mean_p_positive: mean of sigmoid(lo), P(positive) renormalised over the two answers.
        mean_log_odds: mean log-odds (logits) = mean of the per-name means.
    """

    group: str
    n: int
    n_names: int
    share: float
    selection_rate: float
    mean_p_positive: float
    mean_log_odds: float


def summarise_groups(scores: ProbeScores) -> tuple[GroupSummary, ...]:
    """Per-group n, selection rate, mean P(positive) and mean log-odds, in ``group_ids`` order."""
    scores = _canonical(scores)
    lo = scores.lo_qualifying
    total = lo.size
    out = []
    for gi, gid in enumerate(scores.group_ids):
        x = lo[:, scores.groups == gi]
        out.append(
            GroupSummary(
                group=gid,
                n=int(x.size),
                n_names=int(x.shape[1]),
                share=x.size / total,
                selection_rate=float(np.count_nonzero(x > 0) / x.size),
                mean_p_positive=float(p_positive(x).mean()),
                mean_log_odds=float(x.mean(axis=0).mean()),
            )
        )
    return tuple(out)


def reference_group(summaries: Sequence[GroupSummary], reference: str | None = None) -> str:
    """The given reference group, else the highest selection rate (ties: first in order)."""
    if reference is not None:
        if reference not in {s.group for s in summaries}:
            raise ValueError(f"reference group {reference!r} is not one of {[s.group for s in summaries]}")
        return reference
    rates = [s.selection_rate for s in summaries]
    return summaries[int(np.argmax(rates))].group  # argmax returns the first maximum


def impact_ratio(rate: float, reference_rate: float) -> float | None:
    """Selection-rate ratio group / reference (four-fifths rule: adverse impact when < 0.8).

    None when the reference rate is 0: the ratio is undefined (x/0), also when both rates are 0.
    """
    return None if reference_rate == 0 else rate / reference_rate


def name_means(scores: ProbeScores) -> np.ndarray:
    """(V,) each column's mean log-odds over the qualifying templates (logits)."""
    return scores.lo_qualifying.mean(axis=0)
