"""The diff's view model: every string and number its Markdown, HTML and terminal forms print, from an
:class:`audit.report.diff.AuditDiff` and the shared string catalogue (:func:`audit.report.i18n.diff_strings`).
"""

from __future__ import annotations

from typing import Any

from audit.records import Flag, Gap, Level
from audit.report.diff import AuditDiff, FlagChange
from audit.report.i18n import diff_strings

FLAG_COLUMNS = ("severity", "position", "method", "rank", "token", "term", "category", "language", "q")
GAP_COLUMNS = ("attribute", "group", "reference_group", "impact_ratio", "q", "in_base_model")


def _shown(token: str | None, t: dict[str, str]) -> str:
    """A token as a reader should see it: surrounding spaces dropped, a blank one shown quoted."""
    if token is None:
        return t["missing"]
    return token.strip() or repr(token)


def _q(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2g}"


def _risk(level: Level | None, t: dict[str, str]) -> str:
    return t["not_run"] if level is None else t[f"risk_{level.label}"]


def diff_view(d: AuditDiff, lang: str = "en", *, categories: dict[str, dict[str, str]] | None = None) -> dict:
    """Every string the diff's Markdown and HTML print. ``categories``: category -> language -> label."""
    t = diff_strings(lang)
    labels = categories or {}

    def flag_row(f: Flag) -> dict[str, Any]:
        return {
            "severity": t[f"severity_{f.severity.label}"],
            "severity_key": f.severity.label,
            "position": str(f.hit.position),
            "method": f.hit.method,
            "rank": str(f.hit.rank),
            "token": _shown(f.hit.token, t),
            "term": f.term.lemma,
            "category": labels.get(f.term.category, {}).get(lang, f.term.category),
            "language": f.term.language,
            "q": _q(f.evidence.q_value),
            "note": "" if f.counts else t["report_only"],
        }

    def change_row(c: FlagChange) -> dict[str, Any]:
        row = flag_row(c.new)
        old, new = c.old.hit.rank, c.new.hit.rank
        row["rank"] = f"{old} → {new}" if old != new else str(new)
        if c.old.severity != c.new.severity:
            row["severity"] = f"{t['severity_' + c.old.severity.label]} → {row['severity']}"
        return row

    def gap_row(g: Gap, before: Gap | None = None) -> dict[str, str]:
        ratio = f"{g.impact_ratio:.3f}"
        if before is not None and f"{before.impact_ratio:.3f}" != ratio:
            ratio = f"{before.impact_ratio:.3f} → {ratio}"
        return {
            "attribute": g.attribute,
            "group": g.group,
            "reference_group": g.reference_group,
            "impact_ratio": ratio,
            "q": _q(g.q_value),
            "in_base_model": t["yes" if g.in_base_model else "no"],
        }

    old, new = d.old, d.new
    headline = (
        t["risk_changed"].format(old=_risk(old.risk, t), new=_risk(new.risk, t))
        if old.risk != new.risk
        else t["risk_same"].format(risk=_risk(new.risk, t))
    )
    gaps_count = {"old": "-", "new": "-"}
    open_count = {"old": "-", "new": "-"}
    for side, record in (("old", old), ("new", new)):
        if record.behaviour_risk is not None:
            gaps_count[side] = str(len(record.gaps))
            open_count[side] = ", ".join(f"{u.group} ({u.attribute})" for u in record.unresolved) or "0"
    one_side = {"old_only": ("old", old), "new_only": ("new", new)}.get(d.behaviour)
    flag_sections = [
        {"title": t["appeared"], "rows": [flag_row(f) for f in d.appeared], "css": "added"},
        {"title": t["disappeared"], "rows": [flag_row(f) for f in d.disappeared], "css": "removed"},
        {"title": t["changed"], "rows": [change_row(c) for c in d.changed], "css": "changed"},
    ]
    gap_sections = [
        {"title": t["gaps_opened"], "rows": [gap_row(g) for g in d.gaps_opened]},
        {"title": t["gaps_closed"], "rows": [gap_row(g) for g in d.gaps_closed]},
        {"title": t["gaps_kept"], "rows": [gap_row(n, o) for o, n in d.gaps_kept]},
    ]
    if one_side:
        side, record = one_side
        gap_sections.append(
            {"title": t["gaps_of"].format(side=t[side]), "rows": [gap_row(g) for g in record.gaps]}
        )
    return {
        "t": t,
        "lang": lang,
        "headline": headline,
        "risk_old": old.risk.label,
        "risk_new": new.risk.label,
        "risk_old_label": _risk(old.risk, t),
        "risk_new_label": _risk(new.risk, t),
        "has_changes": d.has_changes,
        "summary": t["summary"].format(
            appeared=len(d.appeared),
            disappeared=len(d.disappeared),
            changed=len(d.changed),
            readings=len(d.readings),
            opened=len(d.gaps_opened),
            closed=len(d.gaps_closed),
        ),
        "sides": [
            (t["audit"], old.label, new.label),
            (
                t["prompt"],
                f"{old.prompt} ({old.prompt_sha256[:12]})",
                f"{new.prompt} ({new.prompt_sha256[:12]})",
            ),
            (t["risk"], _risk(old.risk, t), _risk(new.risk, t)),
            (t["flags"], str(old.n_flags), str(new.n_flags)),
            (t["behaviour_risk"], _risk(old.behaviour_risk, t), _risk(new.behaviour_risk, t)),
            (t["gaps"], gaps_count["old"], gaps_count["new"]),
            (t["unresolved"], open_count["old"], open_count["new"]),
        ],
        "flag_sections": flag_sections,
        "flag_columns": _column_titles(t, FLAG_COLUMNS),
        "flag_keys": FLAG_COLUMNS,
        "readings": [
            {
                "method": r.method,
                "old": t["not_run_text"] if r.old_text is None else r.old_text,
                "new": t["not_run_text"] if r.new_text is None else r.new_text,
                "positions": "; ".join(
                    f"{c.position}: {_shown(c.old, t)} → {_shown(c.new, t)}" for c in r.tokens
                ),
            }
            for r in d.readings
        ],
        "behaviour_status": t[f"b_{d.behaviour}"],
        "behaviour_compared": d.behaviour == "both",
        "gap_sections": gap_sections,
        "gap_columns": _column_titles(t, GAP_COLUMNS),
        "gap_keys": GAP_COLUMNS,
        "gaps_moved": bool(d.gaps_opened or d.gaps_closed),
        "verdicts": [
            (t["old"], old.verdict.get(lang, old.verdict.get("en", ""))),
            (t["new"], new.verdict.get(lang, new.verdict.get("en", ""))),
        ],
        "context": [(t[c.field], c.old, c.new) for c in d.context],
    }


def _column_titles(t: dict[str, str], columns: tuple[str, ...]) -> list[str]:
    return [t["q_value"] if c == "q" else t[c] for c in columns]
