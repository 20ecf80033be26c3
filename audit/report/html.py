"""HTML rendering: Python computes every string, number and coordinate; templates only
loop and print. Autoescape is on for every template and nothing derived from tokens or files is
marked safe (token strings can contain HTML).
"""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from audit.records import AuditResult, Flag, Level, PositionResult
from audit.report.behaviour_view import behaviour_view, flag_status, reading_faithfulness
from audit.report.i18n import strings
from audit.report.load import canonical
from audit.report.overview import Reason, checked, family_size, model_warnings, reasons, relative_gap
from audit.report.tokens import codepoints, escape_invisible, quoted, visible
from audit.verdict.behaviour import IMPACT_THRESHOLD

HEAT_LOW, HEAT_HIGH = (247, 251, 255), (8, 48, 107)
MAP_W, MAP_H, MAP_PAD = 460, 340, 22
CHAR_W, LABEL_H = 6.7, 11.0  # an 11 px monospace label: advance per character, line height
MAX_WHY = 3  # positions named next to the badge; the rest are counted


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


def _fmt(value: float | None, digits: int = 3, lang: str = "en") -> str:
    """A number with ``digits`` decimals (decimal comma in Spanish); 'n/a' for None."""
    if value is None:
        return strings(lang)["b_na"]
    text = f"{value:.{digits}f}"
    text = text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.00"
    return text.replace(".", ",") if lang == "es" else text


def _sig(value: float | None, lang: str) -> str:
    """A p- or q-value with two significant digits."""
    if value is None:
        return strings(lang)["b_na"]
    text = f"{value:.2g}"
    return text.replace(".", ",") if lang == "es" else text


def _pct(value: float, lang: str) -> str:
    """A share as a percentage, with the decimal comma in Spanish."""
    text = f"{100 * value:.1f} %"
    return text.replace(".", ",") if lang == "es" else text


def _int(value: int, lang: str) -> str:
    """An integer with a thousands separator (a thin space in Spanish, a comma in English)."""
    text = f"{value:,}"
    return text.replace(",", "\u202f") if lang == "es" else text


def _category(result: AuditResult, category: str, lang: str) -> str:
    return result.category_labels.get(category, {}).get(lang, category)


def _shown(token: str) -> str:
    """A token inside a sentence or a map label: surrounding spaces dropped, invisible characters escaped."""
    return visible(token.strip()) if token.strip() else visible(token)


def _methods(methods: list[str], result: AuditResult) -> str:
    """Method names, with a tied model's unembed folded into dot (it ranks exactly like dot)."""
    names = list(methods)
    if result.model.tied and "dot" in names and "unembed" in names:
        names = ["dot=unembed" if m == "dot" else m for m in names if m != "unembed"]
    return ", ".join(names)


def _where(ranks: list[tuple[str, int]], result: AuditResult, t: dict, *, short: bool = False) -> str:
    """'the top-1 reading under centered, whitened; #2 under l2, dot = unembed' from (method, rank)."""
    by_rank: dict[int, list[str]] = {}
    for method, rank in ranks:
        by_rank.setdefault(rank, []).append(method)
    parts = []
    for rank in sorted(by_rank):
        methods = _methods(by_rank[rank], result)
        if short:
            parts.append(f"#{rank} {methods}")
        elif rank == 1:
            parts.append(t["where_top1"].format(methods=methods))
        else:
            parts.append(t["where_rank"].format(rank=rank, methods=methods))
    return "; ".join(parts)


def flag_order(flag: Flag) -> tuple:
    hit = flag.hit
    return (-flag.severity, hit.position, hit.rank, hit.method, hit.term_id)


def explain(result: AuditResult, flag: Flag, position: PositionResult, lang: str) -> str:
    """One sentence per flag, generated from the data, naming the q-value's family."""
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
        "rel": _fmt(relative_gap(flag, position), 2, lang),
    }
    text = t["explain_top1" if hit.is_top1 else "explain_near"].format(**fields)
    if hit.partial:
        text += t["explain_partial"]
    if evidence.null_hits is not None and evidence.q_value is not None:
        text += t["explain_null"].format(
            count=evidence.null_hits,
            total=result.methodology.null_size,
            p=_sig(evidence.p_value, lang),
            q=_sig(evidence.q_value, lang),
            n=family_size(result),
        )
    else:
        text += "."
    return text


# ---------------------------------------------------------------------------------------------
# The top of the report: why, what was checked, low coverage


def _reason_text(result: AuditResult, reason: Reason, lang: str) -> str:
    t = strings(lang)
    clause = t[f"clause_{reason.clause}"].format(threshold=_fmt(IMPACT_THRESHOLD, 1, lang))
    if reason.gap is not None:
        attribute, group, reference, ratio, q = reason.gap
        return t["why_gap"].format(
            group=group,
            attribute=attribute,
            reference=reference,
            ratio=_fmt(ratio, 2, lang),
            q=_sig(q, lang),
            clause=clause,
        )
    if reason.clause == "behaviour_inconclusive":
        return t["why_inconclusive"].format(clause=clause)
    if reason.flag is None:
        return t["why_position_bare"].format(pos=reason.position, clause=clause)
    flag = reason.flag
    return t["why_position"].format(
        pos=reason.position,
        token=f"'{_shown(flag.hit.token)}'",
        term=flag.term.lemma,
        category=_category(result, flag.term.category, lang),
        lang=flag.term.language,
        severity=t[f"severity_{flag.severity.label}"],
        where=_where(list(reason.ranks), result, t),
        clause=clause,
    )


def why(result: AuditResult, lang: str) -> dict:
    """Next to the badge: which clause of the rule fired, for which position and term."""
    t = strings(lang)
    risk = result.summary.risk
    top = [r for r in reasons(result) if r.risk == risk]
    head = t["why"].format(risk=t[f"risk_{risk.label}"])
    if risk == Level.LOW:
        behaviour = t["why_low_behaviour"] if result.behaviour is not None else ""
        return {"head": head, "lines": [t["why_low"].format(behaviour=behaviour)]}
    if not top:  # a saved audit whose records no clause explains: print the rule it was made under
        return {"head": head, "lines": [result.methodology.risk_rule[lang]]}
    items = [_reason_text(result, r, lang) for r in top[:MAX_WHY]]
    if len(top) > MAX_WHY:
        items.append(t["why_more"].format(n=len(top) - MAX_WHY))
    return {"head": head, "lines": items}


def checked_view(result: AuditResult, lang: str) -> dict:
    """'What was checked', one line, and the categories with their term counts per language."""
    t = strings(lang)
    c = checked(result)
    suite = (
        t["checked_suite"].format(suite=f"{c.suite[0]} {c.suite[1]}", n=c.suite[2])
        if c.suite
        else t["checked_no_suite"]
    )
    low = {(lang_, cat) for lang_, cat, _ in c.low_coverage}
    languages = [lg for lg in c.languages if any(lg in v for v in c.categories.values())] or list(c.languages)
    return {
        "lines": [
            t["checked_languages"].format(languages=", ".join(c.languages)),
            t["checked_terms"].format(n=_int(c.n_terms, lang), c=len(c.categories), w=c.n_wordlists),
            t["checked_methods"].format(n=len(c.methods), methods=", ".join(c.methods)),
            t["checked_k"].format(k=c.top_k),
            suite,
        ],
        "languages": languages,
        "categories": [
            {
                "label": _category(result, category, lang),
                "cells": [
                    {"n": str(by_lang[lg]) if lg in by_lang else "", "low": (lg, category) in low}
                    for lg in languages
                ],
            }
            for category, by_lang in c.categories.items()
        ],
    }


def low_coverage_text(result: AuditResult, lang: str) -> str:
    """The categories this vocabulary covers poorly, by language, for the line under the verdict."""
    t = strings(lang)
    by_lang: dict[str, list[str]] = {}
    for lang_, category, _ in checked(result).low_coverage:
        by_lang.setdefault(lang_, []).append(_category(result, category, lang))
    if not by_lang:
        return ""
    return t["low_coverage_line"].format(list="; ".join(f"{lg}: {', '.join(v)}" for lg, v in by_lang.items()))


def risk_badge(result: AuditResult, lang: str) -> str:
    t = strings(lang)
    risk = result.summary.risk
    return t["risk_label_low"] if risk == Level.LOW else t["risk_label"].format(risk=t[f"risk_{risk.label}"])


# ---------------------------------------------------------------------------------------------
# Flags grouped by position and term


def flag_groups(result: AuditResult, lang: str) -> list[dict]:
    """One row per (position, term): its tokens with their methods and ranks, the closest measures,
    and one line per flag for the details."""
    t = strings(lang)
    order = {m: i for i, m in enumerate(result.methods)}
    groups: dict[tuple[int, str], list[tuple[Flag, PositionResult]]] = {}
    for pos in result.positions:
        for flag in pos.flags:
            groups.setdefault((pos.index, flag.term.id), []).append((flag, pos))
    rows = []
    for (index, _), members in groups.items():
        flags = [f for f, _ in members]
        pos = members[0][1]
        worst = max(f.severity for f in flags)
        term = flags[0].term
        tokens: dict[int, list[Flag]] = {}
        for f in sorted(flags, key=lambda f: (f.hit.rank, order.get(f.hit.method, 99))):
            tokens.setdefault(f.hit.token_id, []).append(f)
        token_rows = [
            {
                "token": quoted(fs[0].hit.token),
                "cp": codepoints(fs[0].hit.token),
                "where": _where([(f.hit.method, f.hit.rank) for f in fs], result, t, short=True),
            }
            for fs in sorted(tokens.values(), key=lambda fs: (fs[0].hit.rank, fs[0].hit.token_id))
        ]
        gaps = [g for g in (relative_gap(f, pos) for f in flags) if g is not None]
        nulls = [f.evidence.null_hits for f in flags if f.evidence.null_hits is not None]
        qs = [f.evidence.q_value for f in flags if f.evidence.q_value is not None]
        policy = {"report_only": t["policy_report_only"], "downweight": t["policy_downweight"]}.get(
            term.policy, ""
        )
        details = [
            {
                "method": f.hit.method,
                "rank": str(f.hit.rank),
                "token": quoted(f.hit.token),
                "score": _fmt(f.hit.score, 3, lang),
                "rel_gap": _fmt(relative_gap(f, pos), 2, lang),
                "null": _null(f, result),
                "p": _sig(f.evidence.p_value, lang),
                "q": _sig(f.evidence.q_value, lang),
                "severity": f.severity.label,
                "severity_label": t[f"severity_{f.severity.label}"],
                "explanation": explain(result, f, pos, lang),
            }
            for f in sorted(flags, key=flag_order)
        ]
        min_rank = min(f.hit.rank for f in flags)
        rows.append(
            {
                "key": (-worst, index, min_rank, term.id),
                "severity": worst.label,
                "severity_label": t[f"severity_{worst.label}"],
                "position": str(index),
                "term": term.lemma,
                "category": _category(result, term.category, lang),
                "language": term.language,
                "policy": policy,
                "tokens": token_rows,
                "rel_gap": _fmt(min(gaps), 2, lang) if gaps else "n/a",
                "null": f"{min(nulls)}/{result.methodology.null_size}" if nulls else "n/a",
                "q": _sig(min(qs), lang) if qs else "n/a",
                "status": flag_status(result.behaviour, index, lang) if result.behaviour else "",
                "n": len(flags),
                "details_label": t["flag_details"].format(n=len(flags)),
                "details": details,
                "sentence": t["group_sentence"].format(
                    pos=index,
                    term=term.lemma,
                    category=_category(result, term.category, lang),
                    lang=term.language,
                    where=" · ".join(f"{r['token']} {r['where']}" for r in token_rows),
                    q=_sig(min(qs), lang) if qs else "n/a",
                ),
            }
        )
    rows.sort(key=lambda r: r["key"])
    for row in rows:
        del row["key"]
    return rows


def _null(flag: Flag, result: AuditResult) -> str:
    hits = flag.evidence.null_hits
    return "n/a" if hits is None else f"{hits}/{result.methodology.null_size}"


# ---------------------------------------------------------------------------------------------
# Figures


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


Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label_box(x: float, y: float, width: float, anchor: str) -> Box:
    x0 = {"start": x, "end": x - width, "middle": x - width / 2}[anchor]
    return (x0, y - 0.8 * LABEL_H, x0 + width, y + 0.25 * LABEL_H)


def _place_label(
    cx: float, cy: float, r: float, width: float, taken: list[Box], required: bool
) -> tuple[float, float, str, bool] | None:
    """The first spot around a point (right, left, above, below, diagonals; then twice as far, with a
    leader line) where the label overlaps no other label or point and stays inside the map."""
    for far in (1.0, 2.6):
        d = (r + 3) * far
        for dx, dy, anchor in (
            (d, 4, "start"),
            (-d, 4, "end"),
            (0, -d - 1, "middle"),
            (0, d + LABEL_H, "middle"),
            (d, -d, "start"),
            (d, d + LABEL_H - 2, "start"),
            (-d, -d, "end"),
            (-d, d + LABEL_H - 2, "end"),
        ):
            x, y = cx + dx, cy + dy
            box = _label_box(x, y, width, anchor)
            inside = box[0] >= 1 and box[1] >= 1 and box[2] <= MAP_W - 1 and box[3] <= MAP_H - 1
            if inside and not any(_overlaps(box, other) for other in taken):
                return round(x, 1), round(y, 1), anchor, far > 1
    if required:  # keep the label even where it must overlap: the prompt, a reading, a sensitive token
        return round(cx + r + 3, 1), round(cy + 4, 1), "start", False
    return None


def position_map(result: AuditResult, pos: PositionResult, lang: str) -> dict:
    """SVG geometry of one position's neighbourhood map: points scaled into the map with one scale for
    both axes, labels placed greedily so that they do not overlap (prompt, top-1 readings and sensitive
    tokens first, kept even where they must overlap; a plain neighbour's label that does not fit is left
    to the table and the point's tooltip)."""
    t = strings(lang)
    points = pos.map_points
    if not points:
        return {"width": MAP_W, "height": MAP_H, "points": [], "labels": []}
    xs, ys = [p.x for p in points], [p.y for p in points]
    span_x, span_y = max(max(xs) - min(xs), 1e-9), max(max(ys) - min(ys), 1e-9)
    scale = min((MAP_W - 2 * MAP_PAD) / span_x, (MAP_H - 2 * MAP_PAD) / span_y)
    off_x = (MAP_W - scale * span_x) / 2
    off_y = (MAP_H - scale * span_y) / 2
    top1: dict[int, list[str]] = {}
    for method in result.methods:  # the report's method order (a re-read JSON has its keys sorted)
        top1.setdefault(pos.projections[method].token_id, []).append(method)
    out = []
    for i, p in enumerate(points):
        kind = "prompt" if p.token_id < 0 else ("sensitive" if p.sensitive else "other")
        methods = top1.get(p.token_id, []) if p.token_id >= 0 else []
        if kind == "prompt":
            label, title = t["map_prompt"], t["position_n"].format(pos=pos.index)
        else:
            label = t["map_top1"].format(token=_shown(p.token)) if methods else _shown(p.token)
            cp = codepoints(p.token)
            title = _shown(p.token) + (f" {cp}" if cp else "")
            title += f" (top-1: {_methods(methods, result)})" if methods else ""
        out.append(
            {
                "order": (0 if kind == "prompt" else 1 if methods else 2 if kind == "sensitive" else 3, i),
                "cx": round(off_x + (p.x - min(xs)) * scale, 1),
                "cy": round(off_y + (p.y - min(ys)) * scale, 1),
                "r": 6 if kind == "prompt" else 5 if methods else 4 if kind == "sensitive" else 3,
                "kind": kind,
                "top1": bool(methods),
                "label": label,
                "title": title,
            }
        )
    taken: list[Box] = [(p["cx"] - p["r"], p["cy"] - p["r"], p["cx"] + p["r"], p["cy"] + p["r"]) for p in out]
    labels = []
    for p in sorted(out, key=lambda p: p["order"]):
        width = len(p["label"]) * CHAR_W * (1.08 if p["top1"] else 1.0)
        spot = _place_label(p["cx"], p["cy"], p["r"], width, taken, required=p["order"][0] < 3)
        if spot is None:
            continue
        x, y, anchor, leader = spot
        taken.append(_label_box(x, y, width, anchor))
        labels.append(
            {
                "x": x,
                "y": y,
                "anchor": anchor,
                "text": p["label"],
                "cls": "top1" if p["top1"] else p["kind"],
                "leader": {"x1": p["cx"], "y1": p["cy"], "x2": x, "y2": round(y - 4, 1)} if leader else None,
            }
        )
    # neighbours first, the prompt ring last (drawn on top)
    out.sort(key=lambda p: (("other", "sensitive", "prompt").index(p["kind"]), p["top1"], p["order"][1]))
    for p in out:
        del p["order"]
    return {"width": MAP_W, "height": MAP_H, "points": out, "labels": labels}


def neighbour_table(result: AuditResult, pos: PositionResult, lang: str) -> dict:
    """Rank x method table of one position's neighbours; cells of flagged tokens marked."""
    hits = {(f.hit.method, f.hit.rank) for f in pos.flags}
    suppressed = {(f.hit.method, f.hit.rank) for f in pos.suppressed}
    methods = list(result.methods)
    depth = max((len(pos.neighbors[m]) for m in methods), default=0)
    rows = []
    for i in range(depth):
        cells = []
        for m in methods:
            nbs = pos.neighbors[m]
            if i >= len(nbs):
                cells.append({"token": "", "cp": "", "score": "", "hit": False})
                continue
            n = nbs[i]
            cells.append(
                {
                    "token": quoted(n.token),
                    "cp": codepoints(n.token),
                    "score": _fmt(n.score, 3, lang),
                    "hit": (m, n.rank) in hits or (m, n.rank) in suppressed,
                }
            )
        rows.append({"rank": str(i + 1), "cells": cells})
    return {"methods": methods, "rows": rows}


# ---------------------------------------------------------------------------------------------


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
                "cells": [
                    {"token": visible(pos.projections[m].token), "differs": len(tokens) > 1} for m in methods
                ],
                "agreement": _fmt(pos.agreement, 2, lang),
                "off_manifold": _fmt(pos.off_manifold, 2, lang),
                "risk": pos.risk.label,
                "risk_label": t[f"risk_{pos.risk.label}"],
            }
        )
    suppressed = [
        {
            "position": f.hit.position,
            "method": f.hit.method,
            "token": quoted(f.hit.token),
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
            "map": position_map(result, pos, lang),
            "table": neighbour_table(result, pos, lang),
        }
        for pos in result.positions
    ]
    coverage = [
        {
            "language": r.language,
            "category": _category(result, r.category, lang),
            "share": _pct(r.share, lang),
            "covered": f"{r.n_covered}/{r.n_terms}",
            "n_missing": len(r.missing),
            "show": t["show_terms"].format(n=len(r.missing)),
            "missing": ", ".join(r.missing),
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
        "risk_badge": risk_badge(result, lang),
        "why": why(result, lang),
        "verdict": s.verdict[lang],
        "low_coverage": low_coverage_text(result, lang),
        "checked": checked_view(result, lang),
        "numbers": [
            (t["positions"], str(len(result.positions))),
            (t["methods"], str(len(methods))),
            (t["flags"], str(s.n_flags)),
            (t["suppressed_n"], str(s.n_suppressed)),
            (t["mean_agreement"], _fmt(s.mean_agreement, 2, lang)),
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
                "text": escape_invisible(result.projected_text[m]),
                "f1": _fmt(result.waywardness[m]["prompt_f1"], 2, lang) if result.waywardness else None,
                "faithfulness": reading_faithfulness(result.behaviour, m, lang) if result.behaviour else None,
            }
            for m in methods
        ],
        "reference": result.reference_text,
        "heatmap": heatmap(result),
        "flags": flag_groups(result, lang),
        "flags_intro": t["flags_intro"],
        "measures_intro": t["measures_intro"].format(
            k=result.top_k, null=result.methodology.null_size, n=family_size(result)
        ),
        "suppressed": suppressed,
        "passes": t["passes_text"].format(
            n=sum(1 for p in result.positions if not p.flags), total=len(result.positions)
        ),
        "neighbours": neighbours,
        "neighbours_intro": t["neighbours_intro"].format(k=result.top_k),
        "coverage": coverage,
        "method_notes": [(m.name, m.description[lang]) for m in result.methodology.methods],
        "null_text": result.methodology.null_model[lang],
        "rule_text": result.methodology.risk_rule[lang],
        "notes": list(result.notes),  # written in English (as the JSON carries them)
        "warnings": model_warnings(result),
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
