"""The found reading (``--faithful-reading``) in the HTML and Markdown reports: its text and columns
beside the projections', where it differs from the nearest-token reading, its flags, its disparities and
what the search cost, computed in Python from the record (templates only print)."""

from __future__ import annotations

from audit.records import BehaviourResult
from audit.report.format import fmt as _num
from audit.report.format import sig as _p
from audit.report.i18n import strings


def found_view(b: BehaviourResult, lang: str) -> dict | None:
    """The view of ``b.found``; None when the search was not asked for."""
    f = b.found
    if f is None:
        return None
    t = strings(lang)
    s = f.search
    best = max(b.readings, key=lambda r: (r.agreement, -r.kl)) if b.readings else None
    return {
        "intro": t["b_found_intro"].format(threshold=_num(100 * b.min_agreement, 0, lang)),
        "text": f.text,
        "agreement": _num(f.agreement, 3, lang),
        "kl": _num(f.kl, 4, lang),
        "accuracy": _num(f.accuracy, 3, lang),
        "faithful": t["b_faithful"] if f.faithful else t["b_unfaithful"],
        "ok": f.faithful,
        "versus": t["b_found_versus"].format(
            methods=", ".join(best.methods), agreement=_num(best.agreement, 3, lang)
        )
        if best
        else "",
        "not_improved": ""
        if s.improved
        else t["b_found_not_improved"].format(methods=", ".join(s.start_methods)),
        "changes": [
            t["b_found_change"].format(position=c.position, nearest=c.nearest, token=c.token)
            for c in f.changes
        ],
        "changes_title": t["b_found_changes"].format(methods=", ".join(f.nearest_methods)),
        "flags": [
            t["b_found_flag"].format(
                position=g.position, token=g.token, lemma=g.lemma, category=g.category, language=g.language
            )
            + (f" ({t['b_found_allowed']}: {g.suppressed})" if g.suppressed else "")
            for g in f.flags
        ],
        "rows": [
            {
                "attribute": a.id,
                "group": g.id,
                "selection_rate": _num(g.selection_rate, 3, lang),
                "impact_ratio": t["b_reference_row"] if g.is_reference else _num(g.impact_ratio, 2, lang),
                "q": "" if g.is_reference else _p(g.q_value, lang),
            }
            for a in f.attributes
            for g in a.groups
        ],
        "cost": t["b_found_cost"].format(
            screened=s.screened,
            evaluated=s.evaluated,
            sample=s.sample_size,
            gradients=s.gradients,
            gradient_size=s.gradient_size,
            runs=_num(s.suite_runs, 2, lang),
            budget=_num(s.budget_runs, 1, lang),
            stopped=t[f"b_found_stopped_{s.stopped}"],
        ),
        "method": s.method,
    }
