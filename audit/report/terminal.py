"""The terminal summary that every scan prints."""

from __future__ import annotations

from audit.records import AuditResult
from audit.report.html import flag_order


def render_terminal(result: AuditResult, outputs: dict[str, str] | None = None) -> str:
    s = result.summary
    lines = [
        f"prompt-audit {result.tool_version}: {result.prompt.path} "
        f"({result.prompt.n_tokens} x {result.prompt.dim}) on {result.model.spec}",
        f"RISK: {s.risk.label.upper()}  {s.verdict['en']}",
        f"flags: {s.n_flags} (high {s.flags_by_severity.get('high', 0)}, medium "
        f"{s.flags_by_severity.get('medium', 0)}, low {s.flags_by_severity.get('low', 0)}); "
        f"suppressed by allow-list: {s.n_suppressed}; mean top-1 agreement {s.mean_agreement:.2f}",
    ]
    width = max(len(m) for m in result.methods)
    for method in result.methods:
        f1 = ""
        if result.waywardness:
            f1 = f"  (F1 vs reference {result.waywardness[method]['prompt_f1']:.2f})"
        lines.append(f"  {method:<{width}}  {result.projected_text[method]!r}{f1}")
    worst = sorted((f for p in result.positions for f in p.flags), key=flag_order)[:5]
    for flag in worst:
        hit, term = flag.hit, flag.term
        lines.append(
            f"  [{flag.severity.label}] position {hit.position}: {hit.token.strip()!r} = {term.lemma!r} "
            f"({term.category}, {term.language}) rank {hit.rank} under {hit.method}"
        )
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
    low = [r for r in result.coverage if r.low]
    if low:
        listed = ", ".join(f"{r.language}/{r.category} {100 * r.share:.0f}%" for r in low)
        lines.append(
            f"  warning: {len(low)} wordlist categories have < 50% of their terms as whole tokens in this "
            f"vocabulary (hits on the rest can only be partial): {listed}"
        )
    for label, path in (outputs or {}).items():
        lines.append(f"  {label}: {path}")
    return "\n".join(lines) + "\n"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _q(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2g}"
