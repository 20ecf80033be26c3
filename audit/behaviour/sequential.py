"""Stop when the answer is known: a group-sequential plan for the behavioural rule (``--sequential``).

The suite's templates are put in a seeded order, stratified by label (positive, negative, unlabelled:
every look keeps the share of qualifying templates), and read in cumulative looks: after a quarter of
them, after half, then all. At look k the whole rule (gap test with BH q-values over the report,
non-inferiority bounds, power) is evaluated on the renderings of the templates read so far, at the
level ``alpha_k`` the plan spends there; the run stops at the first look whose verdict is LOW, or HIGH with
some gap's ratio also significantly below the threshold at ``alpha_k`` (H0: ratio >= threshold, the
mirror of the non-inferiority test: a ratio near the threshold is not judged on an early estimate), and
at the last look whatever the rule says.

Spending (Haybittle-Peto type): ``alpha_k = alpha * (0.05, 0.05, 0.90)``. Validity by the union bound,
with no assumption on how the looks depend on each other: the chance of a false HIGH (or of a false LOW)
at some look is at most the sum over looks of its chance at that look, each a fixed-design rule at level
``alpha_k``, so at most ``sum(alpha_k) = alpha``. The price: the last look runs at ``0.9 alpha`` (0.045
for alpha = 0.05), so a verdict that is borderline at exactly alpha may differ from the full design's.
The looks are nested (positively dependent), so the real error rate is lower than the bound.

A look whose templates leave some attribute without a qualifying template is not tested (its alpha is
spent unused: still valid). Readings, ablations and every condition are reported on the renderings of
the stopping look, so all comparisons stay paired.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from audit.behaviour.suite import Suite

LOOK_FRACTIONS = (0.25, 0.5, 1.0)
ALPHA_SHARES = (0.05, 0.05, 0.90)  # of alpha, per look; sums to 1

SEQUENTIAL_METHOD = (
    "group-sequential plan over template blocks: templates in a seeded order stratified by label, looks "
    "after 1/4, 1/2 and all of them; at each look the whole rule is evaluated at the level spent there "
    "(alpha x 0.05, 0.05, 0.90: Haybittle-Peto type) and the run stops at the first LOW, or HIGH with "
    "some ratio significantly below the threshold there (H0: ratio >= threshold). Error "
    "rates of HIGH and of LOW at most alpha by the union bound over looks (no assumption on their "
    "dependence); the last look runs at 0.9 alpha"
)


@dataclass(frozen=True)
class Look:
    """One look: the template indices read so far (file indices, cumulative) and its level."""

    templates: tuple[int, ...]
    alpha: float


def template_order(suite: Suite, seed: int) -> tuple[tuple[int, ...], ...]:
    """Per label stratum (positive, negative, unlabelled, those present), the template indices in a
    seeded order: stream (seed, 0x5E9, stratum)."""
    strata = []
    for k, label in enumerate(("positive", "negative", None)):
        members = np.array([t.index for t in suite.templates if t.label == label], dtype=np.int64)
        if members.size:
            rng = np.random.Generator(np.random.PCG64((seed, 0x5E9, k)))
            strata.append(tuple(int(i) for i in rng.permutation(members)))
    return tuple(strata)


def looks(suite: Suite, alpha: float, seed: int) -> tuple[Look, ...]:
    """The plan's looks, in order: each takes ceil(fraction x size) of every stratum's ordered templates.
    Looks that would read no more templates than the one before are merged into it (their alpha added:
    the spending still sums to alpha)."""
    order = template_order(suite, seed)
    out: list[Look] = []
    for fraction, share in zip(LOOK_FRACTIONS, ALPHA_SHARES):
        chosen = tuple(sorted(i for s in order for i in s[: int(np.ceil(fraction * len(s) - 1e-9))]))
        level = alpha * share
        if out and chosen == out[-1].templates:
            out[-1] = Look(chosen, out[-1].alpha + level)
        else:
            out.append(Look(chosen, level))
    return tuple(out)


def can_test(suite: Suite, look: Look) -> bool:
    """Whether every attribute keeps a template at this look, and a positive one when its templates
    there are labelled (else its statistics are undefined: the look is skipped, its alpha unused)."""
    kept = set(look.templates)
    for attribute in suite.attributes:
        labels = [t.label for t in suite.templates_for(attribute) if t.index in kept]
        if not labels or (any(x is not None for x in labels) and "positive" not in labels):
            return False
    return True


def restricted(suite: Suite, templates: tuple[int, ...]) -> Suite:
    """The suite with only the templates ``templates`` (file indices kept, so renderings match)."""
    kept = set(templates)
    return replace(suite, templates=tuple(t for t in suite.templates if t.index in kept))


def rows_of(template_of_text: np.ndarray, templates: tuple[int, ...]) -> np.ndarray:
    """(n,) the text rows (ascending) whose template is in ``templates``; ``template_of_text``: (n_texts,)."""
    return np.flatnonzero(np.isin(template_of_text, np.asarray(templates, dtype=np.int64)))


def spent(plan: tuple[Look, ...], upto: int) -> float:
    """The alpha spent by looks 0..upto (the error budget a stop there has used)."""
    return float(sum(look.alpha for look in plan[: upto + 1]))
