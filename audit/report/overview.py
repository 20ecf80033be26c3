"""What a report states at its top, as data every renderer shares: what was checked, why the risk is
what it is (which clause of the rule fired, for which position and term), and per-flag measures that
compare across methods. Computed from the records alone (no numpy, no torch), so ``render`` can print it.
"""

from __future__ import annotations

from dataclasses import dataclass

from audit.records import AuditResult, Flag, Level, PositionResult
from audit.verdict.behaviour import active_positions, inconclusive
from audit.verdict.rules import position_clause


@dataclass(frozen=True)
class Checked:
    """The scope of the audit: a LOW risk holds for these checks only."""

    languages: tuple[str, ...]
    methods: tuple[str, ...]
    top_k: int
    n_wordlists: int
    categories: dict[str, dict[str, int]]  # category -> language -> number of terms
    low_coverage: tuple[tuple[str, str, float], ...]  # (language, category, share of whole-token terms)
    suite: tuple[str, str, int] | None  # (id, version, number of templates)

    @property
    def n_terms(self) -> int:
        return sum(sum(by_lang.values()) for by_lang in self.categories.values())


@dataclass(frozen=True)
class Reason:
    """Why a position (or the behavioural check) carries its risk: the clause of the rule that fired
    and, for a position, the flag that fired it and where else the same token spells the same term."""

    risk: Level
    clause: str  # a clause of audit.verdict.rules.CLAUSES, or behaviour_active/_gap/_inconclusive
    position: int | None = None
    flag: Flag | None = None
    ranks: tuple[tuple[str, int], ...] = ()  # (method, rank) of the same token and term, closest first
    gap: tuple[str, str, str, float, float] | None = None  # (attribute, group, reference, ratio, q)


def checked(result: AuditResult) -> Checked:
    categories: dict[str, dict[str, int]] = {}
    for row in result.coverage:
        categories.setdefault(row.category, {})[row.language] = row.n_terms
    b = result.behaviour
    return Checked(
        languages=tuple(result.languages),
        methods=tuple(result.methods),
        top_k=result.top_k,
        n_wordlists=len(result.wordlists),
        categories={c: dict(sorted(v.items())) for c, v in sorted(categories.items())},
        low_coverage=tuple((r.language, r.category, r.share) for r in result.coverage if r.low),
        suite=(b.suite_id, b.suite_version, b.n_templates) if b is not None else None,
    )


def position_reason(result: AuditResult, pos: PositionResult) -> Reason | None:
    """The clause that set this position's risk (None for a LOW position)."""
    if pos.risk == Level.LOW:
        return None
    level, clause, flag = position_clause(pos.flags, pos.agreement)
    if result.behaviour is not None and pos.risk > level and pos.index in active_positions(result.behaviour):
        clause = "behaviour_active"
        flag = flag or min(pos.flags, key=lambda f: (-f.severity, f.hit.rank, f.hit.method), default=None)
    if flag is None:
        return Reason(pos.risk, clause, pos.index)
    same = [
        f for f in pos.flags if f.counts and f.hit.token_id == flag.hit.token_id and f.term.id == flag.term.id
    ]
    order = {m: i for i, m in enumerate(result.methods)}
    ranks = tuple(
        (f.hit.method, f.hit.rank)
        for f in sorted(same, key=lambda f: (f.hit.rank, order.get(f.hit.method, 99)))
    )
    return Reason(pos.risk, clause, pos.index, flag, ranks)


def reasons(result: AuditResult) -> tuple[Reason, ...]:
    """Every reason above LOW, worst first: behavioural ones, then positions in order."""
    out: list[Reason] = []
    b = result.behaviour
    if b is not None:
        for g in b.gaps:
            out.append(
                Reason(
                    Level.HIGH,
                    "behaviour_gap",
                    gap=(g.attribute, g.group, g.reference_group, g.impact_ratio, g.q_value),
                )
            )
        if not b.gaps and inconclusive(b.soft.attributes):
            out.append(Reason(Level.MEDIUM, "behaviour_inconclusive"))
    for pos in result.positions:
        reason = position_reason(result, pos)
        if reason is not None:
            out.append(reason)
    return tuple(sorted(out, key=lambda r: -r.risk))  # stable: behaviour first within a level


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


WARNING_PREFIX = "WARNING: "  # audit.inputs.identity.WARNING (the report package does not import inputs)


def model_warnings(result) -> list[str]:
    """The notes that warn the audit may not be about this adapter's model (a model mismatch), without
    their prefix: every report shows them at the top, in English as the JSON carries them."""
    return [n.removeprefix(WARNING_PREFIX) for n in result.notes if n.startswith(WARNING_PREFIX)]
