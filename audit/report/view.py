"""The view model of the audit report: every string, number and coordinate the HTML report prints, and
the parts the Markdown summary and the terminal share (why, what was checked, low coverage). Computed in
Python from the records alone; templates only loop and print."""

from __future__ import annotations

from audit.records import AuditResult, Level, PositionResult, Reason
from audit.report.behaviour_view import behaviour_view, reading_faithfulness
from audit.report.figures import heatmap, position_map
from audit.report.flags_view import family_size, flag_groups
from audit.report.format import category_label, fmt, integer, pct, shown, sig, where
from audit.report.i18n import strings
from audit.report.tokens import codepoints, escape_invisible, quoted, visible

MAX_WHY = 3  # positions named next to the badge; the rest are counted
WARNING_PREFIX = "WARNING: "  # audit.inputs.identity.WARNING (the report package does not import inputs)


def model_warnings(result: AuditResult) -> list[str]:
    """The notes that warn the audit may not be about this adapter's model (a model mismatch), without
    their prefix: every report shows them at the top, in English as the JSON carries them."""
    return [n.removeprefix(WARNING_PREFIX) for n in result.notes if n.startswith(WARNING_PREFIX)]


# ---------------------------------------------------------------------------------------------
# The top of the report: why, what was checked, low coverage


def _g(value: float | None, lang: str) -> str:
    """A threshold as written (0.8, 0.05), decimal comma in Spanish."""
    if value is None:
        return strings(lang)["b_na"]
    return f"{value:g}".replace(".", ",") if lang == "es" else f"{value:g}"


def _reason_text(result: AuditResult, reason: Reason, lang: str) -> str:
    t = strings(lang)
    b = result.behaviour
    clause = t[f"clause_{reason.clause}"].format(
        threshold=_g(b.impact_threshold if b else None, lang), alpha=_g(b.alpha if b else None, lang)
    )
    if reason.gap is not None:
        gap = reason.gap
        return t["why_gap"].format(
            group=gap.group,
            attribute=gap.attribute,
            reference=gap.reference_group,
            ratio=fmt(gap.impact_ratio, 2, lang),
            q=sig(gap.q_value, lang),
            clause=clause,
        )
    if reason.unresolved is not None:
        u = reason.unresolved
        return t["why_unresolved"].format(
            group=u.group,
            attribute=u.attribute,
            ratio=fmt(u.impact_ratio, 2, lang),
            why=t[f"b_open_{u.reason}"],
            clause=clause,
        )
    if reason.clause == "behaviour_inconclusive":
        return t["why_inconclusive"].format(clause=clause)
    if reason.flag is None:
        return t["why_position_bare"].format(pos=reason.position, clause=clause)
    flag = reason.flag
    return t["why_position"].format(
        pos=reason.position,
        token=f"'{shown(flag.hit.token)}'",
        term=flag.term.lemma,
        category=category_label(result, flag.term.category, lang),
        lang=flag.term.language,
        severity=t[f"severity_{flag.severity.label}"],
        where=where([(r.method, r.rank) for r in reason.ranks], result, t),
        clause=clause,
    )


def why(result: AuditResult, lang: str) -> dict:
    """Next to the badge: which clause of the rule fired, for which position and term."""
    t = strings(lang)
    risk = result.summary.risk
    top = [r for r in result.summary.reasons if r.risk == risk]
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
    c = result.checked
    suite = (
        t["checked_suite"].format(suite=f"{c.suite.id} {c.suite.version}", n=c.suite.n_templates)
        if c.suite
        else t["checked_no_suite"]
    )
    low = {(r.language, r.category) for r in c.low_coverage}
    languages = [lg for lg in c.languages if any(lg in v for v in c.categories.values())] or list(c.languages)
    return {
        "lines": [
            t["checked_languages"].format(languages=", ".join(c.languages)),
            t["checked_terms"].format(n=integer(c.n_terms, lang), c=len(c.categories), w=c.n_wordlists),
            t["checked_methods"].format(n=len(c.methods), methods=", ".join(c.methods)),
            t["checked_k"].format(k=c.top_k),
            suite,
        ],
        "languages": languages,
        "categories": [
            {
                "label": category_label(result, category, lang),
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
    for row in result.checked.low_coverage:
        by_lang.setdefault(row.language, []).append(category_label(result, row.category, lang))
    if not by_lang:
        return ""
    return t["low_coverage_line"].format(list="; ".join(f"{lg}: {', '.join(v)}" for lg, v in by_lang.items()))


def risk_badge(result: AuditResult, lang: str) -> str:
    t = strings(lang)
    risk = result.summary.risk
    return t["risk_label_low"] if risk == Level.LOW else t["risk_label"].format(risk=t[f"risk_{risk.label}"])


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
                    "score": fmt(n.score, 3, lang),
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
                "agreement": fmt(pos.agreement, 2, lang),
                "off_manifold": fmt(pos.off_manifold, 2, lang),
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
            "category": category_label(result, r.category, lang),
            "share": pct(r.share, lang),
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
            (t["mean_agreement"], fmt(s.mean_agreement, 2, lang)),
        ],
        "by_severity": [
            (t[f"severity_{level.label}"], level.label, s.flags_by_severity.get(level.label, 0))
            for level in sorted(Level, reverse=True)
            if level.label in s.flags_by_severity
        ],
        "by_category": [(category_label(result, k, lang), v) for k, v in s.flags_by_category.items()],
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
                "f1": fmt(result.waywardness[m]["prompt_f1"], 2, lang) if result.waywardness else None,
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
