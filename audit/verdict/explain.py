"""What a report states at its top, computed once in the verdict stage and stored on the records: what
was checked (:func:`checked`, ``AuditResult.checked``) and why the risk is what it is (:func:`reasons`,
``Summary.reasons``: which clause of the rule fired, for which position and term). Plain Python."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from audit.records import (
    AuditResult,
    BehaviourResult,
    Checked,
    CoverageRow,
    Level,
    LowCoverage,
    MethodRank,
    PositionResult,
    Reason,
    SuiteRef,
    Summary,
    WordlistInfo,
)
from audit.verdict.behaviour import active_positions
from audit.verdict.rules import position_clause


def checked(
    languages: Sequence[str],
    methods: Sequence[str],
    top_k: int,
    wordlists: Sequence[WordlistInfo],
    coverage: Sequence[CoverageRow],
    behaviour: BehaviourResult | None,
) -> Checked:
    """The scope of the audit: a LOW risk holds for these checks only."""
    categories: dict[str, dict[str, int]] = {}
    for row in coverage:
        categories.setdefault(row.category, {})[row.language] = row.n_terms
    return Checked(
        languages=tuple(languages),
        methods=tuple(methods),
        top_k=top_k,
        n_wordlists=len(wordlists),
        n_terms=sum(row.n_terms for row in coverage),
        categories={c: dict(sorted(v.items())) for c, v in sorted(categories.items())},
        low_coverage=tuple(LowCoverage(r.language, r.category, r.share) for r in coverage if r.low),
        suite=(
            SuiteRef(behaviour.suite_id, behaviour.suite_version, behaviour.n_templates)
            if behaviour is not None
            else None
        ),
    )


def position_reason(
    pos: PositionResult, methods: Sequence[str], behaviour: BehaviourResult | None
) -> Reason | None:
    """The clause that set this position's risk (None for a LOW position)."""
    if pos.risk == Level.LOW:
        return None
    level, clause, flag = position_clause(pos.flags, pos.agreement)
    if behaviour is not None and pos.risk > level and pos.index in active_positions(behaviour):
        clause = "behaviour_active"
        flag = flag or min(pos.flags, key=lambda f: (-f.severity, f.hit.rank, f.hit.method), default=None)
    if flag is None:
        return Reason(pos.risk, clause, pos.index)
    same = [
        f for f in pos.flags if f.counts and f.hit.token_id == flag.hit.token_id and f.term.id == flag.term.id
    ]
    order = {m: i for i, m in enumerate(methods)}
    ranks = tuple(
        MethodRank(f.hit.method, f.hit.rank)
        for f in sorted(same, key=lambda f: (f.hit.rank, order.get(f.hit.method, 99)))
    )
    return Reason(pos.risk, clause, pos.index, flag, ranks)


def reasons(
    positions: Sequence[PositionResult], methods: Sequence[str], behaviour: BehaviourResult | None
) -> tuple[Reason, ...]:
    """Every reason above LOW, worst first: behavioural ones, then positions in order."""
    out: list[Reason] = []
    if behaviour is not None:
        out += [Reason(Level.HIGH, "behaviour_gap", gap=g) for g in behaviour.gaps]
        out += [Reason(Level.MEDIUM, "behaviour_inconclusive", unresolved=u) for u in behaviour.unresolved]
        if not behaviour.gaps and not behaviour.unresolved and behaviour.risk >= Level.MEDIUM:
            out.append(Reason(Level.MEDIUM, "behaviour_inconclusive"))  # nothing compared at all
    for pos in positions:
        reason = position_reason(pos, methods, behaviour)
        if reason is not None:
            out.append(reason)
    return tuple(sorted(out, key=lambda r: -r.risk))  # stable: behaviour first within a level


def with_reasons(
    summary: Summary,
    positions: Sequence[PositionResult],
    methods: Sequence[str],
    behaviour: BehaviourResult | None,
) -> Summary:
    return replace(summary, reasons=reasons(positions, methods, behaviour))


def explained(result: AuditResult) -> AuditResult:
    """``result`` with its reasons and scope recomputed from its records (after an edit of its positions,
    behaviour or summary)."""
    return replace(
        result,
        summary=with_reasons(result.summary, result.positions, result.methods, result.behaviour),
        checked=checked(
            result.languages,
            result.methods,
            result.top_k,
            result.wordlists,
            result.coverage,
            result.behaviour,
        ),
    )
