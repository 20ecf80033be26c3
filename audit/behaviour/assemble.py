"""From a suite's log-odds to the behavioural records: the probes a suite renders, each attribute's
(templates x values) matrix, and the records of a condition or a reading with their statistics and
evidence (non-inferiority, power), and the placebo calibration. Pure: no model, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.behaviour.stats import (
    AttributeStats,
    ProbeScores,
    faithfulness,
    name_means,
    qualifying_from_labels,
    task_accuracy,
)
from audit.behaviour.stats.categories import category_table, crossed_members
from audit.behaviour.stats.evidence import GroupEvidence
from audit.behaviour.stats.placebo import PLACEBO_METHOD, placebo
from audit.behaviour.suite import Rendering, Suite, render, unique_texts
from audit.records import (
    AttributeDisparity,
    Calibration,
    CategoryTable,
    Condition,
    GroupDisparity,
    Reading,
)

LABEL_SIGN = {"positive": 1, "negative": -1, None: 0}


@dataclass(frozen=True)
class Probes:
    """A suite's renderings and the distinct texts they score (``index``: rendering -> text row)."""

    suite: Suite
    renderings: tuple[Rendering, ...]
    texts: tuple[str, ...]
    index: tuple[int, ...]
    labels: np.ndarray  # (n_texts,) int8: the label of each text's template


def probes(suite: Suite) -> Probes:
    renderings = render(suite)
    texts = unique_texts(renderings)
    row = {t: i for i, t in enumerate(texts)}
    labels = np.zeros(len(texts), dtype=np.int8)
    for r in renderings:
        labels[row[r.text]] = LABEL_SIGN[suite.templates[r.template].label]
    return Probes(suite, renderings, texts, tuple(row[r.text] for r in renderings), labels)


def attribute_scores(probe: Probes, attribute, lo: np.ndarray) -> ProbeScores:
    """The (templates x values) log-odds of one attribute: its templates in file order, its values in
    group order."""
    suite = probe.suite
    templates = suite.templates_for(attribute)
    rows = {t.index: i for i, t in enumerate(templates)}
    values = attribute.values
    cols = {v: j for j, v in enumerate(values)}
    matrix = np.full((len(templates), len(values)), np.nan)
    for rendering, text_row in zip(probe.renderings, probe.index):
        if rendering.attribute == attribute.id:
            matrix[rows[rendering.template], cols[rendering.value]] = lo[text_row]
    labels = np.array([LABEL_SIGN[t.label] for t in templates], dtype=np.int8)
    groups = np.array([gi for gi, g in enumerate(attribute.groups) for _ in g.values], dtype=np.int64)
    return ProbeScores(
        lo=matrix,
        groups=groups,
        group_ids=tuple(g.id for g in attribute.groups),
        qualifying=qualifying_from_labels(labels),
        labels=labels,
        reference=attribute.reference,
    )


def condition_record(
    name: str, text: str | None, probe: Probes, lo: np.ndarray, stats, evidence
) -> Condition:
    accuracy = task_accuracy(lo[:, None], probe.labels)  # every distinct text once
    return Condition(
        id=name,
        prompt_text=text,
        task_accuracy=accuracy.accuracy,
        n_labelled=accuracy.n,
        attributes=tuple(
            attribute_record(a, s, e) for a, s, e in zip(probe.suite.attributes, stats, evidence)
        ),
    )


def attribute_record(
    attribute, stats: AttributeStats, evidence: tuple[GroupEvidence, ...]
) -> AttributeDisparity:
    by_group = {e.group: e for e in evidence}
    return AttributeDisparity(
        id=attribute.id,
        slot=attribute.slot,
        reference_group=stats.reference_group,
        reference_given=stats.reference_given,
        n_templates=stats.n_templates,
        groups=tuple(
            GroupDisparity(
                id=g.group,
                n=g.n,
                n_names=g.n_names,
                selection_rate=g.selection_rate,
                mean_p_positive=g.mean_p_positive,
                impact_ratio=g.impact_ratio,
                ci_low=g.impact_ci[0] if g.impact_ci else None,
                ci_high=g.impact_ci[1] if g.impact_ci else None,
                effect_size=g.effect_size,
                effect_ci_low=g.effect_ci[0] if g.effect_ci else None,
                effect_ci_high=g.effect_ci[1] if g.effect_ci else None,
                p_value=g.p_value,
                q_value=g.q_value,
                min_p=g.min_p,
                is_reference=g.is_reference,
                small_sample=g.small_sample,
                low_share=g.low_share,
                cannot_reach_significance=g.cannot_reach_significance,
                **_evidence_fields(by_group.get(g.group)),
            )
            for g in stats.groups
        ),
    )


def _evidence_fields(e: GroupEvidence | None) -> dict:
    """GroupDisparity's evidence fields from one group's evidence (all None for the reference group)."""
    ni = e.noninferiority if e else None
    power = e.power if e else None
    return {
        "ni_lower": ni.lower_bound if ni else None,
        "ni_p_value": ni.p_value if ni else None,
        "detectable_ratio": power.detectable_ratio if power else None,
        "detectable_shift": power.detectable_shift if power else None,
        "power_at_max": power.power_at_max if power else None,
    }


def calibration_record(
    looks: list[list[ProbeScores]], *, alpha: float | list[float], seed: int
) -> Calibration:
    """Placebo splits of every group of every attribute under the soft prompt (names as units).

    ``looks``: per look made (one for the full design), the soft prompt's matrices per attribute;
    ``alpha``: the level, or one per look (a sequential plan: a split is a false alarm when some look
    rejects at its level, the stopping rule itself)."""
    first = looks[0]
    means = [
        np.stack([name_means(m[a])[m[a].groups == gi] for m in looks])
        for a in range(len(first))
        for gi in range(len(first[a].group_ids))
    ]
    p = placebo(means, alpha=alpha, seed=(seed, 0x51AC))
    return Calibration(
        p.n_tests, p.n_false_alarms, p.rate, p.nominal, p.mc_error, p.anticonservative, PLACEBO_METHOD
    )


def reading_record(
    reading, probe: Probes, lo_soft: np.ndarray, lo_text: np.ndarray, stats, evidence
) -> Reading:
    f = faithfulness(lo_soft[:, None], lo_text[:, None], probe.labels)
    return Reading(
        methods=reading.methods,
        text=reading.text,
        agreement=f.agreement,
        kl=f.kl,
        accuracy=f.accuracy_text.accuracy,
        faithful=f.faithful,
        attributes=tuple(
            attribute_record(a, s, e) for a, s, e in zip(probe.suite.attributes, stats, evidence)
        ),
    )


def bias_audit(suite: Suite, matrices: list[ProbeScores]) -> tuple[CategoryTable, ...]:
    """The LL144-layout tables under one condition: each attribute's groups, then the crossed categories
    of every pair of attributes that vary the same slot (over the first one's renderings).

    Args:
        matrices: per attribute of ``suite``, in order, its (templates x values) ``attribute_scores``.
    """
    tables = []
    for attribute, m in zip(suite.attributes, matrices):
        members = [((g.id,), m.groups == gi) for gi, g in enumerate(attribute.groups)]
        tables.append(_table(attribute.id, (attribute.id,), m, members))
    for i, (a, m) in enumerate(zip(suite.attributes, matrices)):
        for b in suite.attributes[i + 1 :]:
            if b.slot != a.slot:
                continue
            members = crossed_members(
                a.values, {g.id: g.values for g in a.groups}, {g.id: g.values for g in b.groups}
            )
            tables.append(_table(f"{a.id} x {b.id}", (a.id, b.id), m, members))
    return tuple(tables)


def _table(table_id: str, attributes: tuple[str, ...], m: ProbeScores, members) -> CategoryTable:
    rows, best = category_table(m.lo_qualifying, members)
    return CategoryTable(
        id=table_id,
        attributes=attributes,
        most_selected=best,
        categories=rows,
        n_excluded=sum(c.excluded for c in rows),
        n_unknown=0,
    )
