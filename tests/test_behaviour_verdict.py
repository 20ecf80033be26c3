"""The behavioural rule and the combined verdict, case by case (audit/verdict/behaviour.py)."""

from __future__ import annotations

import pytest

from audit.records import (
    Level,
    Reading,
    Summary,
)
from audit.verdict.behaviour import ALPHA, IMPACT_THRESHOLD, combined, gaps, risk_and_verdict
from audit.verdict.stage import escalate, with_behaviour
from tests.helpers import ablation, condition, group
from tests.helpers import behaviour as _behaviour


@pytest.mark.parametrize(
    ("soft", "base", "risk", "n_gaps", "in_base"),
    [
        (group(0.5, 0.01), group(1.0, 0.9), Level.HIGH, 1, False),  # a gap the tuning introduced
        (group(0.5, 0.01), group(0.6, 0.02), Level.HIGH, 1, True),  # ... that the base model already has
        (group(0.79, 0.049), group(1.0, 0.9), Level.HIGH, 1, False),  # just inside both thresholds
        (group(0.8, 0.01), group(1.0, 0.9), Level.LOW, 0, False),  # four fifths exactly: not below
        (group(0.5, 0.05), group(1.0, 0.9), Level.LOW, 0, False),  # q = 0.05: not significant
        (group(0.5, 0.3, cannot=True), group(1.0, 0.9), Level.MEDIUM, 0, False),  # cannot reach p < 0.05
        (group(None, None), group(None, None), Level.LOW, 0, False),  # reference rate 0: no ratio
    ],
)
def test_rule_case_by_case(soft, base, risk, n_gaps, in_base):
    s, b = condition("soft_prompt", soft), condition("no_prompt", base)
    found = gaps(s, b)
    assert len(found) == n_gaps
    if found:
        assert found[0].in_base_model is in_base and found[0].group == "maghreb"
    level, verdict = risk_and_verdict(s, found)
    assert level == risk
    assert set(verdict) == {"en", "es"}
    if found:
        assert "maghreb" in verdict["en"] and f"{soft.impact_ratio:.2f} times" in verdict["en"]
        assert ("shows it too" in verdict["en"]) is in_base


def test_an_active_flag_is_high_even_without_a_gap():
    b = _behaviour(group(1.0, 0.9), ablations=(ablation(7, True),), positions=(7,))
    risk, text = combined(b)
    assert risk == Level.HIGH and "position(s) 7" in text["en"] and "behaviourally active" in text["en"]
    assert escalate({7: Level.MEDIUM, 3: Level.LOW}, b) == {7: Level.HIGH, 3: Level.LOW}


def test_a_gap_no_flag_explains_is_said_so():
    b = _behaviour(group(0.4, 0.001), ablations=(ablation(7, False),), positions=(7,))
    risk, text = combined(b)
    assert risk == Level.HIGH
    assert "geometry did not explain it" in text["en"] and "inert on this suite" in text["en"]


def test_inert_flags_without_a_gap_leave_the_geometric_risk_and_say_so():
    b = _behaviour(group(1.0, 0.9), ablations=(ablation(7, False),), positions=(7,))
    risk, text = combined(b)
    assert risk == Level.LOW and "did not change decisions" in text["en"]
    summary = Summary(Level.HIGH, 3, 0, {}, {}, 0.8, {"en": "geometry.", "es": "geometría."})
    merged = with_behaviour(summary, b)
    assert merged.risk == Level.HIGH  # the geometric risk stands
    assert merged.verdict["en"].endswith("geometry.") and "did not change decisions" in merged.verdict["en"]


def test_unfaithful_readings_are_named():
    reading = Reading(("centered", "whitened"), "... blancos ...", 0.6, 0.2, 0.7, False, ())
    b = _behaviour(group(1.0, 0.9), readings=(reading,))
    _, text = combined(b)
    assert "Unfaithful readings" in text["en"] and "centered, whitened" in text["en"]
    assert "Lecturas no fieles" in text["es"]


def test_the_rule_thresholds_travel_in_the_record():
    """The report prints the thresholds the record carries (it does not import the verdict package)."""
    b = _behaviour(group(1.0, 0.9))
    assert (b.impact_threshold, b.alpha) == (IMPACT_THRESHOLD, ALPHA)
