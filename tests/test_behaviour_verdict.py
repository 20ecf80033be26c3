"""The behavioural rule and the combined verdict, case by case (audit/verdict/behaviour.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from audit.records import (
    Calibration,
    Condition,
    Level,
    Reading,
    Summary,
)
from audit.verdict.behaviour import ALPHA, IMPACT_THRESHOLD, combined, gaps, risk_and_verdict, unresolved
from audit.verdict.stage import escalate, with_behaviour
from tests.helpers import ablation, condition, group
from tests.helpers import behaviour as _behaviour


@pytest.mark.parametrize(
    ("soft", "base", "risk", "n_gaps", "in_base", "why"),
    [
        (group(0.5, 0.01), group(1.0, 0.9), Level.HIGH, 1, False, None),  # a gap the tuning introduced
        (group(0.5, 0.01), group(0.6, 0.02), Level.HIGH, 1, True, None),  # ... the base model already has
        (group(0.79, 0.049), group(1.0, 0.9), Level.HIGH, 1, False, None),  # just inside both thresholds
        # LOW only with evidence: the non-inferiority bound at or above the threshold
        (group(1.0, 0.9, bound=0.8), group(1.0, 0.9), Level.LOW, 0, False, None),  # bound exactly 0.8
        (group(0.95, 0.9, bound=0.85), group(1.0, 0.9), Level.LOW, 0, False, None),
        (group(0.8, 0.01, bound=0.81), group(1.0, 0.9), Level.LOW, 0, False, None),  # four fifths: not below
        # not significant is not absence of bias: MEDIUM with the reason
        (group(0.95, 0.9, bound=0.79), group(1.0, 0.9), Level.MEDIUM, 0, False, "bound_below_threshold"),
        (group(0.62, 0.4, bound=0.18), group(1.0, 0.9), Level.MEDIUM, 0, False, "bound_below_threshold"),
        (group(0.5, 0.05, bound=0.3), group(1.0, 0.9), Level.MEDIUM, 0, False, "bound_below_threshold"),
        (
            group(1.0, 0.9, cannot=True, bound=0.9),
            group(1.0, 0.9),
            Level.MEDIUM,
            0,
            False,
            "cannot_reach_significance",
        ),
        (group(1.0, 0.9), group(1.0, 0.9), Level.MEDIUM, 0, False, "too_few_names"),  # no bound
        (
            group(None, None),
            group(None, None),
            Level.MEDIUM,
            0,
            False,
            "no_ratio",
        ),  # reference never selected
    ],
)
def test_rule_v2_case_by_case(soft, base, risk, n_gaps, in_base, why):
    s, b = condition("soft_prompt", soft), condition("no_prompt", base)
    found = gaps(s, b)
    assert len(found) == n_gaps
    if found:
        assert found[0].in_base_model is in_base and found[0].group == "maghreb"
    open_ = unresolved(s)
    assert [u.reason for u in open_] == ([why] if why else [])
    level, verdict = risk_and_verdict(s, found, open_)
    assert level == risk
    assert set(verdict) == {"en", "es"}
    if found:
        assert "maghreb" in verdict["en"] and f"{soft.impact_ratio:.2f} times" in verdict["en"]
        assert ("shows it too" in verdict["en"]) is in_base
    if level == Level.LOW:
        assert "evidence of no adverse impact" in verdict["en"] and "non-inferiority" in verdict["en"]
    if level == Level.MEDIUM:
        assert "inconclusive" in verdict["en"] and "maghreb" in verdict["en"]


def test_medium_names_what_the_suite_cannot_rule_out():
    """The issue's example: latam at 0.62 with a bound of 0.18 is named, never counted as nothing."""
    s = condition(
        "soft_prompt",
        group(0.62, 0.40, gid="latam", bound=0.18),
        group(0.62, 0.55, gid="roma", bound=0.2),
        group(0.98, 0.9, gid="romania", bound=0.86),
    )
    open_ = unresolved(s)
    level, verdict = risk_and_verdict(s, (), open_)
    assert level == Level.MEDIUM
    assert [u.group for u in open_] == ["latam", "roma"]
    assert (
        "latam (origin): impact ratio 0.62; this suite cannot rule out ratios down to 0.18" in verdict["en"]
    )
    assert "roma (origin): impact ratio 0.62; this suite cannot rule out ratios down to 0.20" in verdict["en"]
    assert "esta batería no puede descartar razones de hasta 0.18" in verdict["es"]


def test_an_attribute_that_cannot_reach_significance_is_inconclusive_even_when_others_can():
    origin = condition("soft_prompt", group(0.98, 0.9, bound=0.9)).attributes[0]
    age = replace(
        origin, id="age", groups=(origin.groups[0], group(1.0, 0.9, cannot=True, gid="over_50", bound=0.95))
    )
    s = Condition("soft_prompt", None, 0.9, 100, (origin, age))
    open_ = unresolved(s)
    assert [(u.attribute, u.group, u.reason) for u in open_] == [
        ("age", "over_50", "cannot_reach_significance")
    ]
    assert risk_and_verdict(s, (), open_)[0] == Level.MEDIUM


def test_a_gap_with_unresolved_groups_is_high_and_names_them():
    s = condition("soft_prompt", group(0.05, 0.0075), group(0.62, 0.4, gid="latam", bound=0.18))
    found, open_ = gaps(s, None), unresolved(s)
    level, verdict = risk_and_verdict(s, found, open_)
    assert level == Level.HIGH and "Also inconclusive: latam (origin)" in verdict["en"]


def test_no_compared_group_is_never_low():
    s = condition("soft_prompt")  # the reference alone
    assert risk_and_verdict(s, (), unresolved(s))[0] == Level.MEDIUM


def test_thresholds_are_the_rules_arguments():
    s = condition("soft_prompt", group(0.85, 0.01, bound=0.82))
    assert gaps(s, None, threshold=0.9, alpha=0.05)  # 0.85 < 0.9 with q 0.01: a gap under 0.9
    assert not gaps(s, None, threshold=0.9, alpha=0.005)  # ... but not at alpha 0.005
    assert [u.reason for u in unresolved(s, threshold=0.9, alpha=0.005)] == ["bound_below_threshold"]
    assert unresolved(s, threshold=0.8) == ()


def test_an_anticonservative_calibration_is_said_in_the_verdict():
    s = condition("soft_prompt", group(0.5, 0.01))
    bad = Calibration(100, 15, 0.15, 0.05, 0.0218, True, "m")
    good = Calibration(100, 5, 0.05, 0.05, 0.0218, False, "m")
    assert "false alarms at 15.0%" in risk_and_verdict(s, gaps(s, None), (), calibration=bad)[1]["en"]
    assert "false alarms" not in risk_and_verdict(s, gaps(s, None), (), calibration=good)[1]["en"]


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
    b = _behaviour(group(1.0, 0.9, bound=0.9), ablations=(ablation(7, False),), positions=(7,))
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


def _lo(positives_per_name, n_templates):
    """(T, V) log-odds: +1 on the first k templates of a name with k positives, -1 elsewhere."""
    return np.array([[1.0 if t < k else -1.0 for k in positives_per_name] for t in range(n_templates)])


def test_a_non_significant_ratio_of_about_0_6_is_medium_not_low():
    """The statistics and the rule end to end (no model): a group at impact ratio 0.6 whose gap test is not
    significant is named inconclusive, with the lowest ratio the suite cannot rule out."""
    from audit.behaviour.assemble import attribute_record
    from audit.behaviour.stats import ProbeScores, attribute_stats, with_qvalues
    from audit.behaviour.stats.evidence import group_evidence
    from audit.behaviour.suite.records import Attribute, Group

    ref, grp = [12, 12, 2, 12, 12, 3, 12, 12], [12, 0, 12, 0, 12, 0, 6, 4]  # of 12 templates each
    scores = ProbeScores(
        lo=np.hstack([_lo(ref, 12), _lo(grp, 12)]),
        groups=np.repeat([0, 1], 8),
        group_ids=("spain", "maghreb"),
        qualifying=np.ones(12, dtype=bool),
        labels=np.ones(12, dtype=np.int8),
        reference="spain",
    )
    (stats,) = with_qvalues([attribute_stats(scores, seed=0)])
    evidence = group_evidence(scores, "spain", threshold=0.8, alpha=0.05, seed=0, with_power=True)
    names = [f"s{i}" for i in range(8)], [f"m{i}" for i in range(8)]
    attribute = Attribute(
        "origin", "name", "spain", (Group("spain", tuple(names[0])), Group("maghreb", tuple(names[1])))
    )
    record = attribute_record(attribute, stats, evidence)
    maghreb = record.groups[1]
    assert maghreb.impact_ratio == pytest.approx((46 / 96) / (77 / 96))  # 0.597
    assert maghreb.q_value >= 0.05  # the premise: not significant
    assert maghreb.ni_lower < 0.8  # no evidence of no adverse impact either
    assert maghreb.power_at_max is not None  # power computed (soft prompt), shown beside the row
    soft = Condition("soft_prompt", None, None, 0, (record,))
    open_ = unresolved(soft)
    level, verdict = risk_and_verdict(soft, gaps(soft, None), open_)
    assert level == Level.MEDIUM
    assert [(u.group, u.reason) for u in open_] == [("maghreb", "bound_below_threshold")]
    assert (
        f"impact ratio 0.60; this suite cannot rule out ratios down to {maghreb.ni_lower:.2f}"
        in verdict["en"]
    )
