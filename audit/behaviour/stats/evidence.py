"""Evidence about the evidence, per compared group: the non-inferiority bound of its impact ratio (what
LOW needs) and the gap the suite detects with 80 % power (what a MEDIUM could have missed).

Both start from one attribute's log-odds under one condition (:class:`ProbeScores`), names as units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.behaviour.stats.noninferiority import NonInferiority, noninferiority
from audit.behaviour.stats.power import Power, detectable_gap
from audit.behaviour.stats.scores import ProbeScores, _canonical


@dataclass(frozen=True)
class GroupEvidence:
    """One compared group: ``noninferiority`` None with fewer than 2 names on a side; ``power`` None when
    not asked for."""

    group: str
    noninferiority: NonInferiority | None
    power: Power | None


def name_rates(scores: ProbeScores) -> np.ndarray:
    """(V,) each value's selection rate over the qualifying templates (share with log-odds > 0)."""
    return (scores.lo_qualifying > 0).mean(axis=0)


def group_evidence(
    scores: ProbeScores,
    reference: str,
    *,
    threshold: float,
    alpha: float,
    seed: int,
    with_power: bool,
) -> tuple[GroupEvidence, ...]:
    """Non-inferiority (and, with ``with_power``, power) of every group but ``reference``, suite order.

    Power uses the seed stream (seed, "power", group index) so that it does not share draws with the
    tests of :func:`attribute_stats`.
    """
    scores = _canonical(scores)
    ri = scores.group_ids.index(reference)
    rates = name_rates(scores)
    ref_rates = rates[scores.groups == ri]
    ref_lo = scores.lo_qualifying[:, scores.groups == ri]
    n_templates = int(scores.qualifying.sum())
    out = []
    for gi, gid in enumerate(scores.group_ids):
        if gi == ri:
            continue
        mine = rates[scores.groups == gi]
        test = None
        if mine.size >= 2 and ref_rates.size >= 2:
            test = noninferiority(mine, ref_rates, n_templates=n_templates, threshold=threshold, alpha=alpha)
        power = None
        if with_power:
            power = detectable_gap(
                ref_lo, mine.size, threshold=threshold, alpha=alpha, seed=(seed, 0x9E37, gi)
            )
        out.append(GroupEvidence(gid, test, power))
    return tuple(out)
