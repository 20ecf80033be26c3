"""The flags as the reports show them: one sentence per flag, flags grouped by position and term, and the
measures that compare across methods (relative gap, the q-value's family). From the records alone."""

from __future__ import annotations

from audit.records import AuditResult, Flag, PositionResult
from audit.report.behaviour_view import flag_status
from audit.report.format import category_label, fmt, shown, sig, where
from audit.report.i18n import strings
from audit.report.tokens import codepoints, quoted


def relative_gap(flag: Flag, pos: PositionResult) -> float | None:
    """How far below the method's top-1 the flagged token is, as a share of the top-1's lead over the
    k-th neighbour: 0 = tied with the top-1, 1 = as far as the k-th. Unitless, so methods compare."""
    neighbours = pos.neighbors.get(flag.hit.method, ())
    if len(neighbours) < 2:
        return None
    spread = neighbours[0].score - neighbours[-1].score
    if spread <= 0:
        return None
    return min(max(flag.hit.gap_to_top1 / spread, 0.0), 1.0)


def family_size(result: AuditResult) -> int:
    """The number of p-values the report's q-values were corrected over (its counted flags)."""
    return sum(1 for p in result.positions for f in p.flags if f.evidence.q_value is not None)


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
        "token": shown(hit.token),
        "term": flag.term.lemma,
        "category": category_label(result, flag.term.category, lang),
        "lang": flag.term.language,
        "reading": shown(position.projections[hit.method].token),
        "rank": hit.rank,
        "rel": fmt(relative_gap(flag, position), 2, lang),
    }
    text = t["explain_top1" if hit.is_top1 else "explain_near"].format(**fields)
    if hit.partial:
        text += t["explain_partial"]
    if evidence.null_hits is not None and evidence.q_value is not None:
        text += t["explain_null"].format(
            count=evidence.null_hits,
            total=result.methodology.null_size,
            p=sig(evidence.p_value, lang),
            q=sig(evidence.q_value, lang),
            n=family_size(result),
        )
    else:
        text += "."
    return text


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
                "where": where([(f.hit.method, f.hit.rank) for f in fs], result, t, short=True),
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
                "score": fmt(f.hit.score, 3, lang),
                "rel_gap": fmt(relative_gap(f, pos), 2, lang),
                "null": _null(f, result),
                "p": sig(f.evidence.p_value, lang),
                "q": sig(f.evidence.q_value, lang),
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
                "category": category_label(result, term.category, lang),
                "language": term.language,
                "policy": policy,
                "tokens": token_rows,
                "rel_gap": fmt(min(gaps), 2, lang) if gaps else "n/a",
                "null": f"{min(nulls)}/{result.methodology.null_size}" if nulls else "n/a",
                "q": sig(min(qs), lang) if qs else "n/a",
                "status": flag_status(result.behaviour, index, lang) if result.behaviour else "",
                "n": len(flags),
                "details_label": t["flag_details"].format(n=len(flags)),
                "details": details,
                "sentence": t["group_sentence"].format(
                    pos=index,
                    term=term.lemma,
                    category=category_label(result, term.category, lang),
                    lang=term.language,
                    where=" · ".join(f"{r['token']} {r['where']}" for r in token_rows),
                    q=sig(min(qs), lang) if qs else "n/a",
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
