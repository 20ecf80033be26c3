"""The behavioural section of the HTML and Markdown reports: tables, the impact-ratio chart and the
conditions side by side, computed in Python from the records (templates only print)."""

from __future__ import annotations

from audit.records import BehaviourResult, GroupDisparity
from audit.report.figures import chart
from audit.report.format import fmt as _num
from audit.report.format import sig as _p
from audit.report.found_view import found_view
from audit.report.i18n import strings
from audit.report.ll144 import summary_view


def _ci(low: float | None, high: float | None, lang: str) -> str:
    if low is None or high is None:
        return strings(lang)["b_na"]
    return f"[{_num(low, 2, lang)}, {_num(high, 2, lang)}]"


def _detectable(g: GroupDisparity, lang: str) -> str:
    """The impact ratio detected with the target power; blank where not computed."""
    if g.power_at_max is None:
        return ""
    if g.detectable_ratio is None:
        return strings(lang)["b_undetectable"].format(power=_num(100 * g.power_at_max, 0, lang))
    return _num(g.detectable_ratio, 2, lang)


def _status(g: GroupDisparity, state: str | None, lang: str) -> str:
    """The rule's outcome for a compared group: gap, cleared or unresolved (with why)."""
    t = strings(lang)
    if g.is_reference:
        return ""
    if state == "gap":
        return t["b_status_gap"]
    if state is None:
        return t["b_status_clear"]
    return t["b_status_open"].format(why=t[f"b_open_{state}"])


def _group_row(g: GroupDisparity, state: str | None, alpha: float, lang: str) -> dict:
    """One group's row; ``state``: "gap" (the rule flags it), an Unresolved reason, or None (cleared)."""
    t = strings(lang)
    marks = [t["b_small"]] if g.small_sample or g.low_share else []
    if g.cannot_reach_significance:
        marks.append(t["b_cannot"].format(alpha=_num(alpha, 2, lang)))
    return {
        "group": g.id,
        "n": str(g.n),
        "selection_rate": _num(g.selection_rate, 3, lang),
        "mean_p": _num(g.mean_p_positive, 3, lang),
        "impact_ratio": t["b_reference_row"] if g.is_reference else _num(g.impact_ratio, 2, lang),
        "ci": "" if g.is_reference else _ci(g.ci_low, g.ci_high, lang),
        "effect": "" if g.is_reference else _num(g.effect_size, 2, lang),
        "p": "" if g.is_reference else _p(g.p_value, lang),
        "q": "" if g.is_reference else _p(g.q_value, lang),
        "bound": "" if g.is_reference or g.ni_lower is None else _num(g.ni_lower, 2, lang),
        "detectable": "" if g.is_reference else _detectable(g, lang),
        "status": _status(g, state, lang),
        "marks": "; ".join(marks),
        "flagged": state == "gap",
        "open": state not in (None, "gap") and not g.is_reference,
    }


def behaviour_view(b: BehaviourResult, lang: str) -> dict:
    t = strings(lang)
    attributes = []
    states = {(u.attribute, u.group): u.reason for u in b.unresolved}
    states.update({(g.attribute, g.group): "gap" for g in b.gaps})
    for a in b.soft.attributes:
        reference = (
            a.reference_group
            if a.reference_given
            else t["b_reference_auto"].format(reference=a.reference_group)
        )
        attributes.append(
            {
                "title": t["b_attribute"].format(attribute=a.id, slot=a.slot, reference=reference),
                "rows": [_group_row(g, states.get((a.id, g.id)), b.alpha, lang) for g in a.groups],
                "chart": chart(a, b.impact_threshold),
            }
        )
    side = []
    for index, a in enumerate(b.soft.attributes):
        cells = []
        for g in a.groups:
            row = [g.id]
            for c in b.conditions:
                other = c.attributes[index].groups
                match = next(x for x in other if x.id == g.id)
                if match.is_reference:
                    row.append(t["b_reference_row"])
                else:
                    row.append(f"{_num(match.impact_ratio, 2, lang)} (q {_p(match.q_value, lang)})")
            cells.append(row)
        side.append({"attribute": a.id, "rows": cells})
    return {
        "verdict": b.verdict[lang],
        "risk": b.risk.label,
        "suite": f"{b.suite_id} {b.suite_version} (sha256 {b.suite_sha256})",
        "probes": t["b_probes"].format(
            n_templates=b.n_templates,
            n_renderings=b.n_renderings,
            n_texts=b.n_texts,
            pos=repr(b.answers[0]),
            neg=repr(b.answers[1]),
        ),
        "conditions": [
            {
                "label": t[f"b_{c.id}"],
                "text": c.prompt_text or "",
                "accuracy": _num(c.task_accuracy, 3, lang) + f" (n {c.n_labelled})",
            }
            for c in b.conditions
        ],
        "condition_labels": [t[f"b_{c.id}"] for c in b.conditions],
        "attributes": attributes,
        "side": side,
        "test": b.test,
        "ci_method": b.ci_method,
        "family": b.family,
        "rule": b.rule[lang],
        "evidence": evidence_rows(b, lang),
        "sequential": sequential_text(b, lang) if b.sequential is not None else "",
        "ll144": summary_view(b, lang),
        "ablations": ablation_rows(b, lang),
        "ablation_test": b.ablation_test,
        "skipped": t["b_skipped"].format(positions=", ".join(str(p) for p in b.skipped_positions))
        if b.skipped_positions
        else "",
        "readings": [
            {
                "methods": ", ".join(r.methods),
                "text": r.text,
                "agreement": _num(r.agreement, 3, lang),
                "kl": _num(r.kl, 4, lang),
                "accuracy": _num(r.accuracy, 3, lang),
                "faithful": t["b_faithful"] if r.faithful else t["b_unfaithful"],
                "ok": r.faithful,
            }
            for r in b.readings
        ],
        "found": found_view(b, lang),
        "readings_intro": t["b_readings_intro"].format(
            threshold=_num(100 * b.min_agreement, 0, lang), accuracy=_num(b.soft.task_accuracy, 3, lang)
        ),
    }


def reading_faithfulness(b: BehaviourResult, method: str, lang: str) -> dict | None:
    """The faithfulness cell of a method's reading: agreement with the soft prompt, KL, verdict."""
    t = strings(lang)
    reading = next((r for r in b.readings if method in r.methods), None)
    if reading is None:
        return None
    verdict = t["b_faithful"] if reading.faithful else t["b_unfaithful"]
    share = _num(100 * reading.agreement, 1, lang)
    label = f"{verdict}: {share} % {t['b_same_decisions']}, KL {_num(reading.kl, 3, lang)}"
    return {"label": label, "faithful": reading.faithful}


def flag_status(b: BehaviourResult, position: int, lang: str) -> str:
    """active / inert / not tested, with the largest measured change in a group's selection rate."""
    t = strings(lang)
    mine = [a for a in b.ablations if a.position == position]
    if not mine:
        return t["b_not_tested"]
    change = max((abs(g.delta_selection_rate) for a in mine for g in a.groups), default=0.0)
    word = t["b_active"] if any(a.active for a in mine) else t["b_inert"]
    return f"{word} ({t['b_max_change']} {_num(100 * change, 1, lang)} pp)"


def ablation_rows(b: BehaviourResult, lang: str) -> list[dict]:
    t = strings(lang)
    rows = []
    for a in b.ablations:
        replacement = t["b_mean"] if a.replacement == "mean" else f"{t['b_best_reading']} {a.token!r}"
        changes = "; ".join(
            f"{g.id} {_num(g.selection_rate, 2, lang)} ({'+' if g.delta_selection_rate >= 0 else ''}"
            f"{_num(g.delta_selection_rate, 2, lang)})"
            + ("" if g.is_reference else f", IR {_num(g.impact_ratio, 2, lang)}")
            for g in a.groups
        )
        rows.append(
            {
                "position": str(a.position),
                "replacement": replacement,
                "attribute": a.attribute,
                "changes": changes,
                "p": _p(a.p_value, lang),
                "q": _p(a.q_value, lang),
                "status": t["b_active"] if a.active else t["b_inert"],
                "active": a.active,
            }
        )
    return rows


def evidence_rows(b: BehaviourResult, lang: str) -> list[tuple[str, str]]:
    """How LOW is shown, what the suite could detect and the placebo calibration: (label, text) rows."""
    t = strings(lang)
    rows = [
        (t["b_ni_test"], b.noninferiority_test),
        (t["b_power_method"], b.power_method),
    ]
    c = b.calibration
    if c is not None:
        if c.rate is None:
            text = t["b_calibration_none"]
        else:
            text = t["b_calibration"].format(
                rate=_num(100 * c.rate, 1, lang),
                hits=c.n_false_alarms,
                n=c.n_tests,
                nominal=_num(100 * c.nominal, 0, lang),
                error=_num(100 * c.mc_error, 1, lang),
                verdict=t["b_anticonservative"] if c.anticonservative else t["b_calibrated"],
            )
        rows.append((t["b_calibration_title"], f"{text} {c.method}"))
    if b.sequential is not None:
        rows.append((t["b_sequential_title"], sequential_text(b, lang)))
    return rows


def sequential_text(b: BehaviourResult, lang: str) -> str:
    """Where a --sequential run stopped, what it read and the levels it spent, in one paragraph."""
    t, s = strings(lang), b.sequential
    last = s.looks[-1]
    if s.stopped_early:
        where = t["b_sequential_stopped"].format(
            look=len(s.looks),
            planned=s.n_looks_planned,
            risk=t[f"risk_{last.risk.label}"],
            templates=last.n_templates,
            templates_full=s.n_templates_full,
            renderings=last.n_renderings,
            renderings_full=s.n_renderings_full,
        )
    else:
        where = t["b_sequential_full"].format(
            planned=s.n_looks_planned,
            templates_full=s.n_templates_full,
            renderings_full=s.n_renderings_full,
            alpha=_p(last.alpha, lang),
        )
    spent = t["b_sequential_spent"].format(
        levels=", ".join(_p(look.alpha, lang) for look in s.looks),
        spent=_p(s.alpha_spent, lang),
        alpha=_p(b.alpha, lang),
    )
    return f"{where} {spent} {s.method}"
