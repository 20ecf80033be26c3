"""The terminal summary that every scan prints."""

from __future__ import annotations

from audit.records import AuditResult


def render_terminal(result: AuditResult, outputs: dict[str, str] | None = None) -> str:
    s = result.summary
    lines = [
        f"prompt-audit {result.tool_version}: {result.prompt.path} "
        f"({result.prompt.n_tokens} x {result.prompt.dim}) on {result.model.spec}",
        f"RISK: {s.risk.value.upper()}  {s.verdict}",
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
    worst = sorted(
        (f for p in result.positions for f in p.flags),
        key=lambda f: (("high", "medium", "low").index(f.severity), f.position, f.rank, f.method, f.term_id),
    )[:5]
    for flag in worst:
        lines.append(
            f"  [{flag.severity}] position {flag.position}: {flag.token.strip()!r} = {flag.term!r} "
            f"({flag.category}, {flag.language}) rank {flag.rank} under {flag.method}"
        )
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
