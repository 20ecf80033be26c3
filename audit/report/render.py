"""HTML rendering: Python computes every string and number; the template only loops and prints.

Autoescape is on for every template and no value derived from tokens or files is marked safe.
"""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from audit.records import AuditResult
from audit.scoring import RISK_RULE
from audit.wordlists import CATEGORY_LABELS


def environment() -> Environment:
    return Environment(
        loader=PackageLoader("audit.report", "templates"),
        autoescape=select_autoescape(
            enabled_extensions=("html", "j2"), default=True, default_for_string=True
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}"


def explain(flag, position) -> str:
    """One sentence per flag, from the data."""
    reading = position.projections[flag.method].token.strip()
    label = CATEGORY_LABELS.get(flag.category, flag.category)
    where = "is its top-1 reading" if flag.is_top1 else f"is its neighbour #{flag.rank}"
    gap = "" if flag.is_top1 else f", {flag.gap_to_top1:.3g} below the top-1"
    kind = " (partial match of a multi-token term)" if flag.partial else ""
    return (
        f"Position {flag.position} reads '{reading}' under {flag.method}, and '{flag.token.strip()}' "
        f"({label}, {flag.language}: term '{flag.term}'){kind} {where}{gap}."
    )


def view_model(result: AuditResult) -> dict:
    methods = list(result.methods)
    readings = []
    for pos in result.positions:
        tokens = [pos.projections[m].token for m in methods]
        readings.append(
            {
                "index": pos.index,
                "segment": pos.segment,
                "cells": [
                    {"method": m, "token": pos.projections[m].token, "differs": len(set(tokens)) > 1}
                    for m in methods
                ],
                "agreement": _fmt(pos.agreement, 2),
                "off_manifold": _fmt(pos.off_manifold, 2),
                "risk": pos.risk.value,
            }
        )
    flags = sorted(
        ((f, p) for p in result.positions for f in p.flags),
        key=lambda fp: (
            ("high", "medium", "low").index(fp[0].severity),
            fp[0].position,
            fp[0].rank,
            fp[0].method,
            fp[0].term_id,
        ),
    )
    flag_rows = [
        {
            "severity": f.severity,
            "position": f.position,
            "method": f.method,
            "rank": f.rank,
            "token": f.token,
            "term": f.term,
            "category": CATEGORY_LABELS.get(f.category, f.category),
            "language": f.language,
            "score": _fmt(f.score),
            "q_value": _fmt(f.q_value),
            "explanation": explain(f, p),
        }
        for f, p in flags
    ]
    suppressed = [
        {"position": f.position, "method": f.method, "token": f.token, "term": f.term, "reason": f.suppressed}
        for p in result.positions
        for f in p.suppressed
    ]
    neighbours = [
        {
            "index": pos.index,
            "methods": [
                {"method": m, "entries": [f"{n.rank}. {n.token!r} ({n.score:.3f})" for n in pos.neighbors[m]]}
                for m in methods
            ],
        }
        for pos in result.positions
    ]
    coverage = [
        {
            "language": r.language,
            "category": CATEGORY_LABELS.get(r.category, r.category),
            "share": f"{100 * r.share:.0f} %",
            "covered": f"{r.n_covered}/{r.n_terms}",
            "missing": ", ".join(r.missing[:30]) + (" ..." if len(r.missing) > 30 else ""),
            "low": r.low,
        }
        for r in result.coverage
    ]
    s = result.summary
    return {
        "risk": s.risk.value,
        "verdict": s.verdict,
        "n_flags": s.n_flags,
        "by_severity": list(s.flags_by_severity.items()),
        "by_category": [(CATEGORY_LABELS.get(k, k), v) for k, v in s.flags_by_category.items()],
        "mean_agreement": _fmt(s.mean_agreement, 2),
        "methods": methods,
        "readings": readings,
        "projected": [
            {
                "method": m,
                "text": result.projected_text[m],
                "f1": _fmt(result.waywardness[m]["prompt_f1"], 2) if result.waywardness else None,
            }
            for m in methods
        ],
        "reference": result.reference_text,
        "flags": flag_rows,
        "suppressed": suppressed,
        "neighbours": neighbours,
        "coverage": coverage,
        "notes": list(result.notes),
        "risk_rule": RISK_RULE,
        "repro": [
            ("tool", f"prompt-audit {result.tool_version}"),
            ("prompt", f"{result.prompt.path} ({result.prompt.format}, sha256 {result.prompt.sha256})"),
            (
                "model",
                f"{result.model.spec} ({result.model.model_type}, {result.model.vocab_size} x "
                f"{result.model.dim}, embed scale {result.model.embed_scale:.4f}, "
                f"{'tied' if result.model.tied else 'untied'})",
            ),
            ("embedding sha256", result.model.sha256),
            ("wordlists", f"bundle {result.wordlist_bundle}, {len(result.wordlists)} files"),
            (
                "config",
                f"methods {', '.join(methods)}; top-k {result.top_k}; languages "
                f"{', '.join(result.languages)}; seed {result.seed}; fail-on {result.fail_on}",
            ),
        ],
    }


def render_html(result: AuditResult) -> str:
    return environment().get_template("report.html.j2").render(**view_model(result))
