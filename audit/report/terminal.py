"""The terminal summary that every scan prints (English): what was checked, the risk and why, low
coverage, the readings, the worst flags grouped by position and term, the behavioural check."""

from __future__ import annotations

from audit.records import AuditResult
from audit.report.flags_view import flag_groups
from audit.report.view import checked_view, low_coverage_text, model_warnings, why

MAX_GROUPS = 5


def render_terminal(result: AuditResult, outputs: dict[str, str] | None = None) -> str:
    s = result.summary
    risk = s.risk.label.upper() + (" for these checks" if s.risk.label == "low" else "")
    reason = why(result, "en")
    lines = [
        f"prompt-audit {result.tool_version}: {result.prompt.path} "
        f"({result.prompt.n_tokens} x {result.prompt.dim}) on {result.model.spec}",
        "checked: " + "; ".join(checked_view(result, "en")["lines"]),
        f"RISK: {risk}  {s.verdict['en']}",
        *(f"  {reason['head']} {item}" for item in reason["lines"]),
    ]
    lines += [f"  WARNING: {w}" for w in model_warnings(result)]
    low = low_coverage_text(result, "en")
    if low:
        lines.append(f"  warning: {low}")
    lines.append(
        f"flags: {s.n_flags} (high {s.flags_by_severity.get('high', 0)}, medium "
        f"{s.flags_by_severity.get('medium', 0)}, low {s.flags_by_severity.get('low', 0)}); "
        f"suppressed by allow-list: {s.n_suppressed}; mean top-1 agreement {s.mean_agreement:.2f}"
    )
    width = max(len(m) for m in result.methods)
    for method in result.methods:
        f1 = ""
        if result.waywardness:
            f1 = f"  (F1 vs reference {result.waywardness[method]['prompt_f1']:.2f})"
        lines.append(f"  {method:<{width}}  {result.projected_text[method]!r}{f1}")
    groups = flag_groups(result, "en")
    for group in groups[:MAX_GROUPS]:
        lines.append(f"  [{group['severity']}] {group['sentence']}")
    if len(groups) > MAX_GROUPS:
        lines.append(f"  ... and {len(groups) - MAX_GROUPS} more (see the HTML or JSON report)")
    if result.behaviour is not None:
        b = result.behaviour
        lines.append(
            f"  behaviour ({b.suite_id} {b.suite_version}, {b.n_texts} texts x "
            f"{len(b.conditions)} conditions):"
        )
        for a in b.soft.attributes:
            rates = ", ".join(
                f"{g.id} {g.selection_rate:.2f}"
                + ("" if g.is_reference else f" (IR {_ratio(g.impact_ratio)}, q {_q(g.q_value)})")
                for g in a.groups
            )
            lines.append(f"    {a.id} (reference {a.reference_group}): {rates}")
    for label, path in (outputs or {}).items():
        lines.append(f"  {label}: {path}")
    return "\n".join(lines) + "\n"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _q(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2g}"
