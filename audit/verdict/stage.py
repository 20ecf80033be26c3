"""The verdict stage: each hit's severity, each position's risk, the prompt's risk and summary."""

from __future__ import annotations

from dataclasses import dataclass, replace

from audit.evidence.stage import Findings
from audit.geometry.stage import Geometry
from audit.records import BehaviourResult, Flag, Level, Methodology, Summary, TermRef
from audit.terms.schema import Wordlists
from audit.verdict.behaviour import active_positions, combined
from audit.verdict.rules import RISK_RULE, flag_severity, position_risk, summarize


@dataclass(frozen=True)
class Verdict:
    flags: tuple[Flag, ...]  # every scored hit, allow-listed ones included, in hit order
    risks: dict[int, Level]  # position -> risk
    summary: Summary
    methodology: Methodology


def judge(geometry: Geometry, findings: Findings, lists: Wordlists) -> Verdict:
    flags = tuple(_flag(h, e, lists) for h, e in zip(findings.hits, findings.evidence))
    risks = {}
    for pos in geometry.positions:
        active = tuple(f for f in flags if f.hit.position == pos.index and f.hit.suppressed is None)
        risks[pos.index] = position_risk(active, pos.agreement)
    active = [f for f in flags if f.hit.suppressed is None]
    return Verdict(
        flags=flags,
        risks=risks,
        summary=summarize(
            active,
            n_suppressed=len(flags) - len(active),
            risks=tuple(risks[p.index] for p in geometry.positions),
            agreements=tuple(p.agreement for p in geometry.positions),
            n_methods=len(geometry.methods),
        ),
        methodology=Methodology(
            methods=geometry.method_infos,
            risk_rule=dict(RISK_RULE),
            null_model=findings.null_model,
            null_size=findings.null_size,
        ),
    )


def _flag(hit, evidence, lists: Wordlists) -> Flag:
    term = lists.term(hit.term_id)
    severity = flag_severity(term.severity, term.policy, hit.word_start, hit.partial, evidence.q_value)
    ref = TermRef(term.id, term.lemma, term.category, term.language, term.policy, term.severity)
    return Flag(hit, ref, evidence, severity)


def with_behaviour(summary: Summary, behaviour: BehaviourResult | None) -> Summary:
    """The overall risk and verdict once the behavioural check has run: the worse of the two risks, the
    behavioural sentence first."""
    if behaviour is None:
        return summary
    risk, sentence = combined(behaviour)
    verdict = {lang: f"{sentence[lang]} {text}" for lang, text in summary.verdict.items()}
    return replace(summary, risk=max(summary.risk, risk), verdict=verdict)


def escalate(risks: dict[int, Level], behaviour: BehaviourResult | None) -> dict[int, Level]:
    """A position whose flag is behaviourally active is HIGH (ambiguous terms included)."""
    if behaviour is None:
        return risks
    return {**risks, **dict.fromkeys(active_positions(behaviour), Level.HIGH)}
