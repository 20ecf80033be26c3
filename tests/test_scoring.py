"""The documented risk rule, case by case (audit/verdict/rules.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from audit.records import Evidence, Flag, Hit, Risk, Severity, TermRef
from audit.verdict.rules import flag_severity, position_risk

H, M, L = Severity.HIGH, Severity.MEDIUM, Severity.LOW


@pytest.mark.parametrize(
    ("term", "policy", "word_start", "partial", "q", "expected"),
    [
        (H, "count", True, False, 0.01, H),
        (H, "downweight", True, False, 0.01, M),  # benign senses (colour 'blanco')
        (H, "count", False, False, 0.01, M),  # sub-word piece
        (H, "count", True, True, 0.01, M),  # partial multi-token match
        (H, "count", True, False, 0.2, M),  # not significant
        (H, "downweight", False, True, 0.2, L),  # floors at low
        (H, "report_only", True, False, 0.001, L),  # listed, never more than low
        (M, "count", True, False, None, M),  # no null model run: no significance penalty
    ],
)
def test_flag_severity(term, policy, word_start, partial, q, expected):
    assert flag_severity(term, policy, word_start, partial, q) == expected


HIT = Hit(
    position=0,
    method="l2",
    rank=1,
    token_id=1,
    token="x",
    term_id="es.race_ethnicity.x",
    score=1.0,
    gap_to_top1=0.0,
    word_start=True,
    partial=False,
)
TERM = TermRef("es.race_ethnicity.x", "x", "race_ethnicity", "es", "count", H)


def flag(rank: int = 1, severity: Severity = M, policy: str = "count", suppressed: str | None = None) -> Flag:
    hit = replace(HIT, rank=rank, suppressed=suppressed)
    return Flag(hit, replace(TERM, policy=policy), Evidence(0.01, 0.01, 4), severity)


@pytest.mark.parametrize(
    ("changes", "agreement", "expected"),
    [
        ({}, 1.0, Risk.HIGH),  # a medium flag that is the reading itself
        ({"rank": 2}, 1.0, Risk.MEDIUM),  # next to the reading, methods agree
        ({"rank": 2}, 0.6, Risk.HIGH),  # ... but the methods disagree here
        ({"rank": 3, "severity": H}, 1.0, Risk.HIGH),  # high within top 3
        ({"rank": 4, "severity": H}, 1.0, Risk.MEDIUM),
        ({"severity": L}, 1.0, Risk.MEDIUM),  # a low flag that is the reading
        ({"severity": L, "rank": 5}, 0.2, Risk.LOW),
        ({"policy": "report_only", "severity": L}, 0.2, Risk.LOW),  # never raises risk
        ({"suppressed": "allow-listed"}, 0.2, Risk.LOW),
    ],
)
def test_position_risk(changes, agreement, expected):
    assert position_risk((flag(**changes),), agreement) == expected


def test_no_flags_is_low():
    assert position_risk((), 0.0) == Risk.LOW
