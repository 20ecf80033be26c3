"""HTML rendering: Python computes every string, number and coordinate; templates only
loop and print. Autoescape is on for every template and nothing derived from tokens or files is
marked safe (token strings can contain HTML).
"""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from audit.records import AuditResult, Flag, PositionResult
from audit.report.behaviour_view import behaviour_view, flag_status, reading_faithfulness
from audit.report.i18n import strings
from audit.report.load import canonical

HEAT_LOW, HEAT_HIGH = (247, 251, 255), (8, 48, 107)
MAP_SIZE, MAP_PAD = 180, 14


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
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.00"


def _pct(value: float, lang: str) -> str:
    """A share as a percentage, with the decimal comma in Spanish."""
    text = f"{100 * value:.1f} %"
    return text.replace(".", ",") if lang == "es" else text


def _category(result: AuditResult, category: str, lang: str) -> str:
    return result.category_labels.get(category, {}).get(lang, category)


def _shown(token: str) -> str:
    """A token as a reader should see it: surrounding spaces made visible, nothing else changed."""
    return token.strip() or repr(token)


def flag_order(flag: Flag) -> tuple:
    hit = flag.hit
    return (-flag.severity, hit.position, hit.rank, hit.method, hit.term_id)


def explain(result: AuditResult, flag: Flag, position: PositionResult, lang: str) -> str:
    """One sentence per flag, generated from the data."""
    t = strings(lang)
    hit, evidence = flag.hit, flag.evidence
    fields = {
        "pos": hit.position,
        "method": hit.method,
        "token": _shown(hit.token),
        "term": flag.term.lemma,
        "category": _category(result, flag.term.category, lang),
        "lang": flag.term.language,
        "reading": _shown(position.projections[hit.method].token),
        "rank": hit.rank,
        "gap": f"{hit.gap_to_top1:.3g}",
    }
    text = t["explain_top1" if hit.is_top1 else "explain_near"].format(**fields)
    if hit.partial:
        text += t["explain_partial"]
    if evidence.null_hits is not None and evidence.q_value is not None:
        total = result.methodology.null_size
        text += t["explain_null"].format(count=evidence.null_hits, total=total, q=f"{evidence.q_value:.2g}")
    else:
        text += "."
    return text


def _heat_colour(value: float) -> str:
    rgb = [round(lo + (hi - lo) * value) for lo, hi in zip(HEAT_LOW, HEAT_HIGH)]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def heatmap(result: AuditResult, cell: int = 22, label_w: int = 90, head_h: int = 70) -> dict:
    """SVG geometry of the position x method agreement heatmap: for each cell, the share of the other
    agreement methods whose top-1 equals this method's top-1."""
    methods = list(result.methods)
    others = list(result.agreement_methods)
    rects = []
    for row, pos in enumerate(result.positions):
        for col, method in enumerate(methods):
            peers = [m for m in others if m != method]
            same = sum(pos.projections[m].token_id == pos.projections[method].token_id for m in peers)
            value = same / len(peers) if peers else 1.0
            rects.append(
                {
                    "x": label_w + col * cell,
                    "y": head_h + row * cell,
                    "fill": _heat_colour(value),
                    "title": f"{pos.index} / {method}: {_shown(pos.projections[method].token)} ({value:.2f})",
                }
            )
    return {
        "width": label_w + cell * len(methods) + 4,
        "height": head_h + cell * len(result.positions) + 4,
        "cell": cell,
        "side": cell - 1,
        "rects": rects,
        "cols": [
            {"x": label_w + i * cell + cell // 2, "y": head_h - 6, "label": m} for i, m in enumerate(methods)
        ],
        "rows": [
            {"x": label_w - 6, "y": head_h + i * cell + cell * 2 // 3, "label": str(p.index)}
            for i, p in enumerate(result.positions)
        ],
    }


def position_map(pos: PositionResult) -> dict:
    """SVG geometry of one position's neighbourhood map, scaled into a MAP_SIZE square."""
    points = pos.map_points
    if not points:
        return {"size": MAP_SIZE, "points": []}
    xs, ys = [p.x for p in points], [p.y for p in points]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 1e-9)
    scale = (MAP_SIZE - 2 * MAP_PAD) / span

    def place(value: float, low: float) -> float:
        return round(MAP_PAD + (value - low) * scale, 1)

    out = []
    for p in points:
        kind = "prompt" if p.token_id < 0 else ("sensitive" if p.sensitive else "neighbour")
        cx, cy = place(p.x, min(xs)), place(p.y, min(ys))
        out.append(
            {
                "cx": cx,
                "cy": cy,
                "lx": round(cx + 6, 1),
                "ly": round(cy + 3, 1),
                "kind": kind,
                "label": _shown(p.token),
            }
        )
    out.sort(key=lambda p: ("neighbour", "sensitive", "prompt").index(p["kind"]))  # prompt drawn last
    return {"size": MAP_SIZE, "points": out}


def view_model(result: AuditResult, lang: str = "en") -> dict:
    t = strings(lang)
    methods = list(result.methods)
    s = result.summary
    readings = []
    for pos in result.positions:
        tokens = {pos.projections[m].token_id for m in result.agreement_methods}
        readings.append(
            {
                "index": pos.index,
                "segment": "" if pos.segment == "prompt" else pos.segment,
                "cells": [{"token": pos.projections[m].token, "differs": len(tokens) > 1} for m in methods],
                "agreement": _fmt(pos.agreement, 2),
                "off_manifold": _fmt(pos.off_manifold, 2),
                "risk": pos.risk.label,
                "risk_label": t[f"risk_{pos.risk.label}"],
            }
        )
    flags = sorted(((f, p) for p in result.positions for f in p.flags), key=lambda fp: flag_order(fp[0]))
    flag_rows = [
        {
            "severity": f.severity.label,
            "severity_label": t[f"severity_{f.severity.label}"],
            "position": f.hit.position,
            "method": f.hit.method,
            "rank": f.hit.rank,
            "token": f.hit.token,
            "term": f.term.lemma,
            "category": _category(result, f.term.category, lang),
            "language": f.term.language,
            "q_value": _fmt(f.evidence.q_value, 3),
            "explanation": explain(result, f, p, lang),
            "status": flag_status(result.behaviour, f.hit.position, lang) if result.behaviour else "",
        }
        for f, p in flags
    ]
    suppressed = [
        {
            "position": f.hit.position,
            "method": f.hit.method,
            "token": f.hit.token,
            "term": f.term.lemma,
            "reason": f.hit.suppressed,
        }
        for p in result.positions
        for f in p.suppressed
    ]
    neighbours = [
        {
            "title": t["position_n"].format(pos=pos.index),
            "risk": pos.risk.label,
            "map": position_map(pos),
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
            "category": _category(result, r.category, lang),
            "share": _pct(r.share, lang),
            "covered": f"{r.n_covered}/{r.n_terms}",
            "missing": ", ".join(r.missing[:40]) + (" ..." if len(r.missing) > 40 else ""),
            "low": r.low,
        }
        for r in result.coverage
    ]
    model = result.model
    return {
        "lang": lang,
        "t": t,
        "b": behaviour_view(result.behaviour, lang) if result.behaviour else None,
        "risk": s.risk.label,
        "risk_badge": t["risk_label"].format(risk=t[f"risk_{s.risk.label}"]),
        "verdict": s.verdict[lang],
        "numbers": [
            (t["positions"], str(len(result.positions))),
            (t["methods"], str(len(methods))),
            (t["flags"], str(s.n_flags)),
            (t["suppressed_n"], str(s.n_suppressed)),
            (t["mean_agreement"], _fmt(s.mean_agreement, 2)),
        ],
        "by_severity": [(t[f"severity_{k}"], k, v) for k, v in s.flags_by_severity.items()],
        "by_category": [(_category(result, k, lang), v) for k, v in s.flags_by_category.items()],
        "inputs": [
            (
                t["prompt"],
                f"{result.prompt.path} ({result.prompt.format}, {result.prompt.n_tokens} x "
                f"{result.prompt.dim}) sha256 {result.prompt.sha256}",
            ),
            (
                t["model"],
                f"{model.spec} ({model.model_type}, {model.vocab_size} x {model.dim}) sha256 {model.sha256}",
            ),
            (
                t["wordlists"],
                t["bundle_files"].format(version=result.wordlist_bundle, n=len(result.wordlists)),
            ),
        ],
        "methods": methods,
        "readings": readings,
        "projected": [
            {
                "method": m,
                "text": result.projected_text[m],
                "f1": _fmt(result.waywardness[m]["prompt_f1"], 2) if result.waywardness else None,
                "faithfulness": reading_faithfulness(result.behaviour, m, lang) if result.behaviour else None,
            }
            for m in methods
        ],
        "reference": result.reference_text,
        "heatmap": heatmap(result),
        "flags": flag_rows,
        "suppressed": suppressed,
        "passes": t["passes_text"].format(
            n=sum(1 for p in result.positions if not p.flags), total=len(result.positions)
        ),
        "neighbours": neighbours,
        "coverage": coverage,
        "method_notes": [(m.name, m.description[lang]) for m in result.methodology.methods],
        "null_text": result.methodology.null_model[lang],
        "rule_text": result.methodology.risk_rule[lang],
        "notes": list(result.notes) if lang == "en" else [],
        "repro": [
            (t["tool"], f"prompt-audit {result.tool_version}"),
            (t["prompt"], f"sha256 {result.prompt.sha256}"),
            (t["embedding_sha"], model.sha256),
            (
                t["wordlists"],
                f"{result.wordlist_bundle}: "
                + ", ".join(f"{w.id} {w.sha256[:12]}" for w in result.wordlists),
            ),
            (
                t["config"],
                f"methods={','.join(methods)} top_k={result.top_k} "
                f"languages={','.join(result.languages)} seed={result.seed} fail_on={result.fail_on} "
                f"centered_components={result.centered_components}",
            ),
        ],
    }


def render_html(result: AuditResult, lang: str = "en") -> str:
    """The HTML report, from the result as its JSON keeps it (so ``render`` reproduces it)."""
    return environment().get_template("report.html.j2").render(**view_model(canonical(result), lang))
