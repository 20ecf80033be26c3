"""Evidence about the evidence: the non-inferiority bound, power by simulation and the placebo calibration,
against hand-computed and closed-form cases."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import stats

from audit.behaviour.stats.noninferiority import fieller_lower, noninferiority
from audit.behaviour.stats.placebo import placebo
from audit.behaviour.stats.power import detectable_gap


def test_noninferiority_equals_the_hand_computation():
    x = [0.9, 1.0, 0.8, 1.0]  # per-name selection rates of the group, over T = 10 templates
    y = [1.0, 1.0, 0.9, 1.0]  # of the reference
    m_g, m_r = statistics.mean(x), statistics.mean(y)  # 0.925, 0.975
    # Binomial floors: smoothed rates (37 + 1/2) / 41 and (39 + 1/2) / 41 over 4 names x 10 templates.
    floor_g, floor_r = (37.5 / 41) * (3.5 / 41) / 10, (39.5 / 41) * (1.5 / 41) / 10
    assert statistics.variance(x) > floor_g  # 0.00917 > 0.00781: the sample variance stands
    assert statistics.variance(y) < floor_r  # 0.00250 < 0.00352: the floor applies
    v_g, v_r = statistics.variance(x) / 4, floor_r / 4
    theta = 0.8
    se = math.sqrt(v_g + theta**2 * v_r)
    t = (m_g - theta * m_r) / se
    df = (v_g + theta**2 * v_r) ** 2 / (v_g**2 / 3 + (theta**2 * v_r) ** 2 / 3)
    c = stats.t.ppf(0.95, df)
    # Fieller: (m_g - rho m_r)^2 = c^2 (v_g + rho^2 v_r), the smaller root.
    qa, qb, qc = m_r**2 - c**2 * v_r, -2 * m_g * m_r, m_g**2 - c**2 * v_g
    lower = (-qb - math.sqrt(qb**2 - 4 * qa * qc)) / (2 * qa)
    got = noninferiority(x, y, n_templates=10, threshold=theta, alpha=0.05)
    assert got.p_value == pytest.approx(stats.t.sf(t, df), rel=1e-12)
    assert got.df == pytest.approx(df, rel=1e-12)
    assert got.lower_bound == pytest.approx(lower, rel=1e-12)
    assert got.passed == (got.p_value <= 0.05) == (lower >= theta)


def test_the_bound_and_the_p_value_agree_on_every_case():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n_g, n_r = rng.integers(2, 30, size=2)
        x = rng.beta(rng.uniform(1, 20), 2, size=n_g)
        y = rng.beta(rng.uniform(1, 20), 2, size=n_r)
        r = noninferiority(x, y, n_templates=int(rng.integers(1, 50)), threshold=0.8, alpha=0.05)
        assert (r.lower_bound >= 0.8) == (r.p_value <= 0.05) == r.passed or abs(r.lower_bound - 0.8) < 1e-9


def test_a_wide_interval_at_ratio_0_62_is_not_evidence_of_no_impact():
    """latam in the namebias sample: ratio about 0.62 from 8 names a group: never LOW."""
    rng = np.random.default_rng(1)
    y = np.clip(rng.normal(0.8, 0.25, 8), 0, 1)
    x = np.clip(y.mean() * 0.62 + rng.normal(0, 0.25, 8), 0, 1)
    r = noninferiority(x, y, n_templates=36, threshold=0.8, alpha=0.05)
    assert not r.passed and r.lower_bound < 0.62


def test_identical_names_over_few_templates_are_not_proof_of_equality():
    """Every name selected on each of 2 templates: the variance floor keeps the bound below the ratio."""
    r = noninferiority([1.0, 1.0], [1.0, 1.0], n_templates=2, threshold=0.8, alpha=0.05)
    assert r.lower_bound < 0.8 and not r.passed
    many = noninferiority([1.0] * 24, [1.0] * 24, n_templates=36, threshold=0.8, alpha=0.05)
    assert many.passed and 0.8 < many.lower_bound <= 1.0


def test_no_bound_without_a_significantly_positive_reference_rate():
    assert fieller_lower(0.5, 0.01, 0.01, 0.01, 2.0) == 0.0
    assert (
        noninferiority([0.0, 0.1], [0.0, 0.05], n_templates=10, threshold=0.8, alpha=0.05).lower_bound == 0.0
    )


def test_power_has_the_closed_form_answer_without_variance():
    """Every name's log-odds 2.0 on every template: a shift below 2 keeps every decision positive (ratio
    1), a shift of 2 or more turns every one negative (ratio 0) and 8 + 8 names separate perfectly (exact
    p = 2 / C(16, 8) < 0.05): the detectable shift is 2 logits, the detectable ratio 0."""
    lo = np.full((12, 8), 2.0)
    power = detectable_gap(lo, 8, threshold=0.8, alpha=0.05, seed=(0,), n_sims=20)
    assert power.detectable_shift == pytest.approx(2.0, abs=12.0 / 2**10)
    assert power.detectable_ratio == 0.0 and power.power_at_max == 1.0


def test_power_is_none_when_the_names_cannot_reach_significance():
    """2 + 2 names: the smallest attainable p is 2 / C(4, 2) = 1/3, so no shift is ever detected."""
    power = detectable_gap(np.full((12, 2), 2.0), 2, threshold=0.8, alpha=0.05, seed=(0,), n_sims=20)
    assert power.detectable_shift is None and power.detectable_ratio is None and power.power_at_max == 0.0


def test_more_names_detect_smaller_gaps():
    rng = np.random.default_rng(3)
    small = detectable_gap(rng.normal(1.0, 1.0, (12, 6)), 6, threshold=0.8, alpha=0.05, seed=(0,), n_sims=40)
    large = detectable_gap(
        rng.normal(1.0, 1.0, (12, 24)), 24, threshold=0.8, alpha=0.05, seed=(0,), n_sims=40
    )
    assert small.detectable_shift is not None and large.detectable_shift is not None
    assert large.detectable_shift < small.detectable_shift


def test_power_is_seeded():
    lo = np.random.default_rng(4).normal(1.0, 1.0, (12, 10))
    a = detectable_gap(lo, 10, threshold=0.8, alpha=0.05, seed=(7, 1), n_sims=20)
    assert a == detectable_gap(lo, 10, threshold=0.8, alpha=0.05, seed=(7, 1), n_sims=20)


def test_placebo_rate_is_zero_for_identical_names_and_nominal_for_exchangeable_ones():
    same = placebo([np.ones(8), np.ones(6)], alpha=0.05, seed=(0,), n_splits=20)
    assert (same.n_tests, same.n_false_alarms, same.rate) == (40, 0, 0.0)
    assert same.split_sizes == ((3, 3), (4, 4))
    rng = np.random.default_rng(5)
    noise = placebo([rng.normal(size=24) for _ in range(5)], alpha=0.05, seed=(0,), n_splits=100)
    assert noise.n_tests == 500
    assert noise.mc_error == pytest.approx(math.sqrt(0.05 * 0.95 / 500))
    assert noise.rate <= 0.05 + 2 * noise.mc_error and not noise.anticonservative


def test_placebo_skips_groups_with_too_few_names():
    r = placebo([np.ones(3)], alpha=0.05, seed=(0,))
    assert r.n_tests == 0 and r.rate is None and not r.anticonservative


def _scores(columns, groups, group_ids, labels, reference=None):
    from audit.behaviour.stats import ProbeScores, qualifying_from_labels

    labels = np.array(labels, dtype=np.int8)
    return ProbeScores(
        lo=np.array(columns, dtype=np.float64).T,
        groups=np.array(groups),
        group_ids=group_ids,
        qualifying=qualifying_from_labels(labels),
        labels=labels,
        reference=reference,
    )


def test_group_evidence_tests_each_group_on_its_per_name_rates_over_the_qualifying_templates():
    from audit.behaviour.stats.evidence import group_evidence, name_rates

    # 5 templates, the last labelled negative (not qualifying): its log-odds must not count.
    labels = [1, 1, 1, 1, -1]
    ref = [[1, 1, 1, 1, -9], [1, 1, 1, -1, -9], [1, 1, 1, 1, -9]]  # rates 1, 0.75, 1
    a = [[1, -1, 1, -1, 9], [1, 1, -1, -1, 9], [-1, -1, 1, 1, 9]]  # rates 0.5, 0.5, 0.5
    b = [[1, 1, 1, 1, 9], [1, 1, 1, 1, 9]]  # rates 1, 1
    scores = _scores(ref + a + b, [0, 0, 0, 1, 1, 1, 2, 2], ("ref", "a", "b"), labels, reference="ref")
    assert name_rates(scores).tolist() == [1, 0.75, 1, 0.5, 0.5, 0.5, 1, 1]
    found = group_evidence(scores, "ref", threshold=0.8, alpha=0.05, seed=0, with_power=False)
    assert [e.group for e in found] == ["a", "b"]
    assert all(e.power is None for e in found)
    ref_rates = np.array([1, 0.75, 1])
    for e, rates in zip(found, ([0.5] * 3, [1.0] * 2)):
        direct = noninferiority(np.array(rates), ref_rates, n_templates=4, threshold=0.8, alpha=0.05)
        assert e.noninferiority == direct
    assert not found[0].noninferiority.passed  # a = 0.5 / 0.917: a gap, certainly not cleared


def test_group_evidence_needs_two_names_a_side_and_computes_power_only_when_asked():
    from audit.behaviour.stats.evidence import group_evidence

    lo = [[2, 2, 2, 2], [2, 2, 2, 2], [2, 2, 2, 2], [2, 2, 2, 2], [-2, 2, 2, 2]]
    scores = _scores(lo, [0, 0, 0, 0, 1], ("ref", "solo"), [1, 1, 1, 1], reference="ref")
    (e,) = group_evidence(scores, "ref", threshold=0.8, alpha=0.05, seed=0, with_power=True)
    assert e.noninferiority is None  # one name: no variance, no bound (the rule reads it inconclusive)
    assert e.power is not None and e.power.n_sims > 0


def test_the_below_threshold_p_is_the_lower_tail_of_the_hand_statistic():
    """The sequential plan's confirmation of an interim gap (H0: ratio >= 0.8)."""
    from audit.behaviour.stats.noninferiority import below_threshold_p

    x = [0.0, 0.5, 0.1, 0.4]  # the group's per-name rates over T = 10 templates
    y = [1.0, 1.0, 0.9, 1.0]  # the reference's
    m_g, m_r = statistics.mean(x), statistics.mean(y)  # 0.25, 0.975
    v_g = statistics.variance(x) / 4  # 0.0567 / 4: above its binomial floor (10.5/41)(30.5/41)/10 = 0.019
    v_r = (39.5 / 41) * (1.5 / 41) / 10 / 4  # the reference's floor (its sample variance 0.0025 is below)
    assert statistics.variance(x) > (10.5 / 41) * (30.5 / 41) / 10
    theta = 0.8
    t = (m_g - theta * m_r) / math.sqrt(v_g + theta**2 * v_r)
    df = (v_g + theta**2 * v_r) ** 2 / (v_g**2 / 3 + (theta**2 * v_r) ** 2 / 3)
    got = below_threshold_p(x, y, n_templates=10, threshold=theta)
    assert got == pytest.approx(stats.t.cdf(t, df), rel=1e-9)
    # ratio 0.26 over 4 names (df about 3): below the last look's 0.045, not the first looks' 0.0025
    assert 0.0025 < got < 0.045
    # a ratio near the threshold (0.79) is far from confirmed
    near = below_threshold_p([0.7, 0.8, 0.75, 0.85], y, n_templates=10, threshold=theta)
    assert near > 0.3
