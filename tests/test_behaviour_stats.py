"""Behavioural statistics against values computed by hand (in the comments) on tiny count tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from audit.behaviour import stats as bs
from audit.behaviour.stats import (
    GroupSummary,
    ProbeScores,
    ablation_stats,
    attribute_stats,
    bernoulli_kl,
    bh_qvalues,
    bootstrap_cis,
    faithfulness,
    impact_ratio,
    min_attainable_p,
    name_permutation_test,
    qualifying_from_labels,
    reference_group,
    sign_flip_test,
    summarise_groups,
    task_accuracy,
    with_qvalues,
)


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _scores(lo, sizes, ids=None, labels=None, reference=None, qualifying=None) -> ProbeScores:
    lo = np.asarray(lo, dtype=np.float64)
    labels = np.zeros(lo.shape[0], np.int8) if labels is None else np.asarray(labels, np.int8)
    ids = ids or tuple(f"g{i}" for i in range(len(sizes)))
    groups = np.repeat(np.arange(len(sizes)), sizes)
    qualifying = qualifying_from_labels(labels) if qualifying is None else np.asarray(qualifying)
    return ProbeScores(lo, groups, tuple(ids), qualifying, labels, reference)


# Two groups x two names; five templates labelled positive (qualifying) and one labelled negative.
#   A1: + + + + +    A2: + + + + -   -> A: 9/10 = 0.9, mean lo (5 + 3) / 10 = 0.8
#   B1: + + + - -    B2: + + + 0 -   -> B: 6/10 = 0.6 (lo == 0 is negative), mean lo (1 + 2) / 10 = 0.3
# The negative template (A: -1 -1, B: 5 5) is not qualifying: it only enters task accuracy.
TABLE = np.array(
    [
        [1, 1, 1, 1],
        [1, 1, 1, 1],
        [1, 1, 1, 1],
        [1, 1, -1, 0],
        [1, -1, -1, -1],
        [-1, -1, 5, 5],
    ],
    dtype=np.float64,
)
TABLE_LABELS = [1, 1, 1, 1, 1, -1]


def _table(reference=None) -> ProbeScores:
    return _scores(TABLE, [2, 2], ("A", "B"), TABLE_LABELS, reference)


def test_group_rates_impact_ratio_and_effect_by_hand():
    a, b = summarise_groups(_table())
    assert (a.n, a.n_names, a.share) == (10, 2, 0.5)
    assert a.selection_rate == pytest.approx(0.9)
    assert b.selection_rate == pytest.approx(0.6)
    assert a.mean_log_odds == pytest.approx(0.8)
    assert b.mean_log_odds == pytest.approx(0.3)
    # A: 9 renderings at lo = 1, one at -1; B: 6 at 1, 3 at -1, one at 0.
    assert a.mean_p_positive == pytest.approx((9 * sig(1) + sig(-1)) / 10)
    assert b.mean_p_positive == pytest.approx((6 * sig(1) + 3 * sig(-1) + 0.5) / 10)

    res = attribute_stats(_table(), seed=0, n_boot=50)
    ga, gb = res.groups
    assert res.reference_group == "A" and not res.reference_given  # highest rate
    assert res.n_templates == 5
    assert ga.is_reference and ga.impact_ratio == 1.0 and ga.effect_size == 0.0
    assert ga.p_value is None and ga.impact_ci is None and ga.q_value is None
    assert gb.impact_ratio == pytest.approx(0.6 / 0.9)  # 0.6667: below four fifths
    assert gb.effect_size == pytest.approx(0.3 - 0.8)


def test_given_reference_is_used():
    res = attribute_stats(_table(reference="B"), seed=0, n_boot=50)
    assert res.reference_group == "B" and res.reference_given
    ga, gb = res.groups
    assert gb.is_reference
    assert ga.impact_ratio == pytest.approx(0.9 / 0.6)  # 1.5: a given reference may be exceeded
    assert ga.effect_size == pytest.approx(0.5)


def test_reference_default_ties_take_the_first_in_order():
    def s(g, rate):
        return GroupSummary(g, 10, 2, 0.25, rate, 0.5, 0.0)

    assert reference_group([s("x", 0.5), s("y", 0.9), s("z", 0.9)]) == "y"
    assert reference_group([s("z", 0.9), s("y", 0.9), s("x", 0.5)]) == "z"
    assert reference_group([s("x", 0.5), s("y", 0.9)], "x") == "x"
    with pytest.raises(ValueError, match="not one of"):
        reference_group([s("x", 0.5)], "nope")


def test_impact_ratio_undefined_when_reference_rate_is_zero():
    assert impact_ratio(0.3, 0.0) is None
    assert impact_ratio(0.0, 0.0) is None
    assert impact_ratio(0.0, 0.5) == 0.0
    # Nobody is ever selected: the highest rate (first group) is 0, so no ratio is defined anywhere,
    # and every bootstrap replicate lacks one too.
    res = attribute_stats(_scores(-np.ones((4, 6)), [3, 3]), seed=1, n_boot=40)
    assert [g.impact_ratio for g in res.groups] == [None, None]
    g1 = res.groups[1]
    assert g1.impact_ci is None and g1.n_undefined_boot == 40
    assert g1.effect_ci == (0.0, 0.0)


def test_task_accuracy_on_labelled_templates():
    # Positive rows: A 9/10 and B 6/10 decided positive (15 correct of 20); negative row: A's -1, -1
    # correct, B's 5, 5 wrong (2 of 4). 17 / 24.
    acc = task_accuracy(TABLE, np.array(TABLE_LABELS))
    assert acc.n == 24
    assert acc.accuracy == pytest.approx(17 / 24)
    assert task_accuracy(TABLE, np.zeros(6, np.int8)) == bs.TaskAccuracy(None, 0)
    # lo == 0 counts as a negative decision: right for a negative label, wrong for a positive one.
    assert task_accuracy(np.zeros((2, 1)), np.array([-1, 1])).accuracy == 0.5


def test_qualifying_defaults_to_all_templates_when_none_is_labelled():
    assert qualifying_from_labels(np.array([0, 0, 0])).tolist() == [True, True, True]
    assert qualifying_from_labels(np.array([1, -1, 0])).tolist() == [True, False, False]
    assert qualifying_from_labels(np.array([-1, -1])).tolist() == [False, False]


# --- permutation test -----------------------------------------------------------------------------


def test_exact_permutation_most_extreme_3_vs_3():
    # Per-name means {1, 2, 3} vs {4, 5, 6}: observed 2 - 5 = -3. Over the C(6, 3) = 20 splits,
    # stat = (2 s - 21) / 3 with s the sum of the first group; |stat| >= 3 iff s <= 6 or s >= 15,
    # which only {1, 2, 3} (6) and {4, 5, 6} (15) reach: p = 2 / 20.
    r = name_permutation_test([1, 2, 3], [4, 5, 6], seed=0)
    assert r.statistic == pytest.approx(-3.0)
    assert r.exact and r.n_assignments == 20 and r.n_perm == 20
    assert r.p_value == pytest.approx(2 / 20)
    assert r.min_p == pytest.approx(2 / 20)


def test_exact_permutation_not_most_extreme():
    # {1, 2, 4} vs {3, 5, 6}: s = 7, stat = -7/3; |2 s - 21| >= 7 iff s <= 7 or s >= 14:
    # {1,2,3} = 6, {1,2,4} = 7, {3,5,6} = 14, {4,5,6} = 15 -> p = 4 / 20.
    assert name_permutation_test([1, 2, 4], [3, 5, 6], seed=0).p_value == pytest.approx(4 / 20)


def test_exact_permutation_unequal_groups():
    # {1, 2} vs {3, 4, 5}: C(5, 2) = 10 splits, stat = s/2 - (15 - s)/3 = (5 s - 30) / 6, observed
    # s = 3 -> -2.5. |5 s - 30| >= 15 iff s <= 3 or s >= 9: {1, 2} and {4, 5} -> p = 2 / 10 (two-sided:
    # the other tail counts). min p = 1 / 10 (no split mirrors another when sizes differ).
    r = name_permutation_test([1, 2], [3, 4, 5], seed=0)
    assert r.statistic == pytest.approx(-2.5)
    assert r.p_value == pytest.approx(2 / 10)
    assert r.min_p == pytest.approx(1 / 10)


def test_permutation_float_ties_are_counted():
    # Equal per-name means (up to float noise): every split is as extreme as the observed one.
    a = np.array([0.1 + 0.2, 0.3, 0.3])
    assert name_permutation_test(a, [0.3, 0.3, 0.3], seed=0).p_value == 1.0


def test_monte_carlo_permutation_is_seeded_and_close_to_exact():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=4), rng.normal(size=4) + 1.0
    exact = name_permutation_test(a, b, seed=0)
    mc = name_permutation_test(a, b, seed=7, n_perm=4999, max_exact=10)
    assert not mc.exact and mc.n_perm == 4999 and mc.n_assignments == 70
    assert mc.min_p == pytest.approx(1 / 5000)
    assert mc.p_value * 5000 == pytest.approx(round(mc.p_value * 5000))  # (1 + hits) / (B + 1)
    assert mc.p_value == pytest.approx(exact.p_value, abs=0.02)
    assert name_permutation_test(a, b, seed=7, n_perm=4999, max_exact=10) == mc
    # A fully separated 12 vs 12 split (C(24, 12) = 2.7e6 assignments, Monte Carlo): the only hit
    # is the observed one, p = 1 / (B + 1).
    big = name_permutation_test(np.arange(12.0), np.arange(12.0) + 100, seed=0, n_perm=999)
    assert not big.exact and big.p_value == pytest.approx(1 / 1000)


def test_min_attainable_p():
    assert min_attainable_p(3, 3) == pytest.approx(2 / 20)
    assert min_attainable_p(2, 3) == pytest.approx(1 / 10)
    assert min_attainable_p(1, 2) == pytest.approx(1 / 3)
    assert min_attainable_p(1, 1) == 1.0
    assert min_attainable_p(8, 8) == pytest.approx(2 / 12870)
    assert min_attainable_p(12, 12) == pytest.approx(1 / (bs.N_PERM + 1))  # C(24, 12) > 20000
    assert min_attainable_p(12, 12, n_perm=99) == pytest.approx(1 / 100)


def test_attribute_p_value_min_p_and_significance_flag():
    # Two templates; per-name means {1, 2, 3} (g1) vs {4, 5, 6} (g0, the reference): p = 2/20 = 0.1,
    # which is also the smallest p three names per group allow: it cannot reach 0.05.
    names = np.array([4.0, 5, 6, 1, 2, 3])
    lo = np.stack([names - 0.5, names + 0.5])
    res = attribute_stats(_scores(lo, [3, 3], reference="g0"), seed=0, n_boot=50)
    g = res.groups[1]
    assert g.effect_size == pytest.approx(-3.0)
    assert g.p_value == pytest.approx(0.1) and g.min_p == pytest.approx(0.1) and g.exact
    assert g.cannot_reach_significance
    assert not res.groups[0].cannot_reach_significance  # the reference has no test
    assert bs.NAME_PERMUTATION_TEST in res.test


# --- flags ----------------------------------------------------------------------------------------


def test_small_sample_and_low_share_flags():
    # 2 templates; groups of 30, 30 and 1 names: n = 60, 60, 2; shares 30/61, 30/61, 1/61 = 0.016.
    rng = np.random.default_rng(0)
    s = _scores(rng.normal(size=(2, 61)), [30, 30, 1], reference="g0")
    res = attribute_stats(s, seed=0, n_boot=20, n_perm=199)
    g0, g1, g2 = res.groups
    assert [g.n for g in res.groups] == [60, 60, 2]
    assert g2.share == pytest.approx(1 / 61)
    assert (g0.small_sample, g1.small_sample, g2.small_sample) == (False, False, True)  # floor 50
    assert (g0.low_share, g1.low_share, g2.low_share) == (False, False, True)  # under 2%
    # 1 vs 30 names: C(31, 1) = 31 splits, min p = 1/31 = 0.032 < 0.05: reachable.
    assert g2.min_p == pytest.approx(1 / 31) and not g2.cannot_reach_significance
    # 30 vs 30: Monte Carlo with 199 permutations, min p = 1/200.
    assert not g1.exact and g1.min_p == pytest.approx(1 / 200)
    assert (res.min_n, res.min_share, res.alpha) == (bs.MIN_RENDERINGS, 0.02, 0.05)
    # The floor is strict: n == min_n is not small.
    res60 = attribute_stats(s, seed=0, n_boot=20, n_perm=199, min_n=60)
    assert [g.small_sample for g in res60.groups] == [False, False, True]
    res61 = attribute_stats(s, seed=0, n_boot=20, n_perm=199, min_n=61)
    assert [g.small_sample for g in res61.groups] == [True, True, True]


# --- bootstrap ------------------------------------------------------------------------------------


def _random_scores(seed=0, t=12, sizes=(4, 5, 3)) -> ProbeScores:
    rng = np.random.default_rng(seed)
    lo = rng.normal(size=(t, sum(sizes))) + np.repeat([0.5, 0.0, -0.3], sizes)
    return _scores(lo, list(sizes), ("a", "b", "c"), reference="a")


def test_bootstrap_is_deterministic_per_seed():
    s = _random_scores()
    one = bootstrap_cis(s, "a", seed=11, n_boot=300)
    assert bootstrap_cis(s, "a", seed=11, n_boot=300) == one
    other = bootstrap_cis(s, "a", seed=12, n_boot=300)
    assert other["b"].effect_size != one["b"].effect_size
    assert other["b"].impact_ratio != one["b"].impact_ratio
    # The point estimates lie inside their intervals here.
    res = attribute_stats(s, seed=11, n_boot=300)
    for g in res.groups[1:]:
        assert g.effect_ci[0] <= g.effect_size <= g.effect_ci[1]
        assert g.impact_ci[0] <= g.impact_ratio <= g.impact_ci[1]
        assert g.impact_ci == one[g.group].impact_ratio  # attribute_stats uses the same stream


def test_bootstrap_collapses_on_zero_variance_data():
    # Every rendering of A at 2.0, of B at -0.5: rates 1 and 0, ratio 0, effect -2.5 in every replicate.
    lo = np.repeat([[2.0, 2.0, -0.5, -0.5]], 4, axis=0)
    ci = bootstrap_cis(_scores(lo, [2, 2], ("A", "B")), "A", seed=5, n_boot=200)["B"]
    assert ci.impact_ratio == (0.0, 0.0)
    assert ci.effect_size == (-2.5, -2.5)
    assert ci.n_undefined == 0 and ci.n_boot == 200 and ci.level == 0.95


def test_bootstrap_matches_explicit_resampling():
    # The vectorised replicates equal resampling rows and, within groups, columns by index with the
    # same draws (one block: rows first, then each group's column counts).
    s = _random_scores(t=7, sizes=(3, 4, 2))
    s = bs._canonical(s)
    n_boot = 25
    rates, means = bs._replicate_means(s, n_boot=n_boot, seed=3)
    rng = np.random.Generator(np.random.PCG64(3))
    lo = s.lo_qualifying
    t_q = lo.shape[0]
    rows = rng.multinomial(t_q, np.full(t_q, 1 / t_q), size=n_boot)
    cols = [np.flatnonzero(s.groups == g) for g in range(3)]
    counts = [rng.multinomial(c.size, np.full(c.size, 1 / c.size), size=n_boot) for c in cols]
    for b in range(n_boot):
        r_idx = np.repeat(np.arange(t_q), rows[b])
        for g, c in enumerate(cols):
            x = lo[np.ix_(r_idx, np.repeat(c, counts[g][b]))]
            assert rates[b, g] == pytest.approx((x > 0).mean())
            assert means[b, g] == pytest.approx(x.mean())


# --- q-values -------------------------------------------------------------------------------------


def test_bh_qvalues_by_hand():
    # Sorted p: 0.01, 0.03, 0.04, 0.2 (m = 4); p * m / rank: 0.04, 0.06, 0.0533, 0.2; running minimum
    # from the largest: 0.2, 0.0533, 0.0533, 0.04. Back in input order:
    q = bh_qvalues([0.01, 0.04, 0.03, 0.2])
    assert q == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.2])
    q = bh_qvalues([None, 0.01, 0.04, None, 0.03, 0.2])
    assert q[0] is None and q[3] is None
    assert q[1:3] + q[4:] == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.2])
    assert bh_qvalues([None, None]) == [None, None]
    with pytest.raises(ValueError):
        bh_qvalues([1.5])


def test_qvalues_over_the_whole_report():
    # Attribute 1: p = 2/20 = 0.1 (see above); attribute 2: p = 4/20 = 0.2 ({1, 2, 4} vs {3, 5, 6}).
    # Family of two: q = min(0.1 * 2 / 1, 0.2 * 2 / 2) = 0.2 for both.
    def attr(ref_means, g_means):
        lo = np.array([ref_means + g_means] * 2, dtype=np.float64)
        return attribute_stats(_scores(lo, [3, 3], reference="g0"), seed=0, n_boot=20)

    a1, a2 = attr([4, 5, 6], [1, 2, 3]), attr([3, 5, 6], [1, 2, 4])
    assert a1.groups[1].p_value == pytest.approx(0.1) and a2.groups[1].p_value == pytest.approx(0.2)
    b1, b2 = with_qvalues([a1, a2])
    assert b1.groups[0].q_value is None and b2.groups[0].q_value is None
    assert b1.groups[1].q_value == pytest.approx(0.2) and b2.groups[1].q_value == pytest.approx(0.2)
    assert b1.family == b2.family == bs.QVALUE_FAMILY
    assert "all attributes and conditions" in b1.family


# --- faithfulness ---------------------------------------------------------------------------------


def test_bernoulli_kl_by_hand():
    # p = sigmoid(ln 3) = 0.75, q = 0.5: 0.75 ln 1.5 + 0.25 ln 0.5 = 0.130812
    assert bernoulli_kl(math.log(3), 0.0) == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    assert float(bernoulli_kl(math.log(3), 0.0)) == pytest.approx(0.130812, abs=1e-6)
    # p = 0.5, q = 0.75: 0.5 ln(2/3) + 0.5 ln 2 = 0.5 ln(4/3)
    assert bernoulli_kl(0.0, math.log(3)) == pytest.approx(0.5 * math.log(4 / 3))
    assert bernoulli_kl(1.3, 1.3) == 0.0
    # Extreme log-odds stay finite: p ~ 1, q = sigmoid(-800) ~ e^-800 -> KL ~ -ln q = 800.
    assert bernoulli_kl(800.0, -800.0) == pytest.approx(800.0)
    assert bernoulli_kl(-800.0, 800.0) == pytest.approx(800.0)
    assert np.all(bernoulli_kl(np.linspace(-30, 30, 61), np.linspace(30, -30, 61)) >= 0)


def test_faithfulness_by_hand():
    soft = np.array([[1.0, -1.0], [2.0, 0.0]])
    text = np.array([[1.0, 1.0], [-2.0, 0.0]])
    f = faithfulness(soft, text, np.array([1, -1]))
    # decisions soft (+ -; + -), text (+ +; - -): same on 2 of 4.
    assert f.agreement == 0.5 and f.n == 4 and not f.faithful
    # KL(-1 || 1) = (1 - p) - p with p = sigmoid(-1): tanh(1/2); KL(2 || -2) = 2 (2 p - 1), p = sigmoid(2):
    # 2 tanh(1); the equal pairs give 0.
    assert f.kl == pytest.approx((math.tanh(0.5) + 2 * math.tanh(1.0)) / 4)
    # soft: row +1 has one positive (1 of 2), row -1 has 2 and 0 (0 is negative: 1 of 2) -> 2/4;
    # text: 1, 1 positive and -2, 0 negative -> 4/4.
    assert f.accuracy_soft == bs.TaskAccuracy(0.5, 4)
    assert f.accuracy_text == bs.TaskAccuracy(1.0, 4)
    assert faithfulness(soft, soft, np.array([1, -1])).faithful
    with pytest.raises(ValueError, match="same renderings"):
        faithfulness(soft, text[:, :1], np.array([1, -1]))


# --- ablation -------------------------------------------------------------------------------------


def test_paired_tests_by_hand():
    # Per-name changes +1 (group) and -1 (reference): observed gap change 2.
    # Sign flip: stat = (sum of all six signs) / 3, |stat| >= 2 only for all + or all -: 2 / 2^6.
    r = sign_flip_test([1, 1, 1], [-1, -1, -1], seed=0)
    assert r.statistic == pytest.approx(2.0) and r.exact and r.n_assignments == 64
    assert r.p_value == pytest.approx(2 / 64) and r.min_p == pytest.approx(2 / 64)
    # Exchange: a split taking k of the +1 names has sum 2k - 3 and stat 2 (2k - 3) / 3;
    # |stat| = 2 only for k = 0, 3: 2 / 20.
    assert name_permutation_test([1, 1, 1], [-1, -1, -1], seed=0).p_value == pytest.approx(2 / 20)
    # The same gap change on top of a common shift of 10 (changes 11 and 9): exchange is unaffected
    # (2/20); sign-flip stat = (11 A - 9 B) / 3 with A, B the sign sums of each group (in -3, -1, 1, 3
    # with multiplicities 1, 3, 3, 1); |11 A - 9 B| < 6 only for A = B = 1 or A = B = -1 (9 + 9 of 64
    # sign vectors), so p = 46 / 64: the shift costs the sign-flip test its power.
    assert name_permutation_test([11, 11, 11], [9, 9, 9], seed=0).p_value == pytest.approx(2 / 20)
    assert sign_flip_test([11, 11, 11], [9, 9, 9], seed=0).p_value == pytest.approx(46 / 64)


def test_ablation_stats_by_hand():
    # Two templates; group g1 (3 names) at -1, the reference g0 (3 names) at +1: rates 0 and 1,
    # impact ratio 0, gap -2. Ablated: g1 shifted by 11 and g0 by 9 -> both at 10, rates 1 and 1,
    # impact ratio 1, gap 0. Changes: rate +1 (g1) and 0 (g0), ratio +1, gap +2.
    orig = _scores(np.repeat([[1.0, 1, 1, -1, -1, -1]], 2, axis=0), [3, 3], reference="g0")
    abl = _scores(np.full((2, 6), 10.0), [3, 3], reference="g0")
    res = ablation_stats(orig, abl, seed=0)
    ref, g = res.groups
    assert res.reference_group == "g0" and ref.is_reference and ref.p_value is None
    assert ref.delta_selection_rate == 0.0 and ref.delta_effect == 0.0
    assert g.selection_rate == (0.0, 1.0) and g.delta_selection_rate == 1.0
    assert g.impact_ratio == (0.0, 1.0) and g.delta_impact_ratio == 1.0
    assert g.delta_effect == pytest.approx(2.0)
    assert g.p_value == pytest.approx(2 / 20) and g.min_p == pytest.approx(2 / 20) and g.exact
    assert res.p_value == pytest.approx(2 / 20)  # one comparison: Bonferroni changes nothing
    assert res.method == "exchange" and res.test == bs.ABLATION_TESTS["exchange"]
    flip = ablation_stats(orig, abl, seed=0, method="sign_flip")
    assert flip.groups[1].p_value == pytest.approx(46 / 64)
    # An ablation that shifts every name alike leaves the gap: change 0, p = 1.
    inert = ablation_stats(orig, _scores(orig.lo + 3.0, [3, 3], reference="g0"), seed=0)
    assert inert.groups[1].delta_effect == pytest.approx(0.0) and inert.groups[1].p_value == 1.0
    # Ratio undefined after ablation (reference rate 0): no change in ratio reported.
    dead = ablation_stats(orig, _scores(-np.ones((2, 6)), [3, 3], reference="g0"), seed=0)
    assert dead.groups[1].impact_ratio == (0.0, None) and dead.groups[1].delta_impact_ratio is None
    with pytest.raises(ValueError, match="same renderings"):
        ablation_stats(orig, _scores(np.ones((2, 6)), [2, 4], reference="g0"), seed=0)
    with pytest.raises(ValueError, match="method"):
        ablation_stats(orig, abl, seed=0, method="wilcoxon")


def test_ablation_bonferroni_over_groups():
    # Two non-reference groups with p = 0.1 and 0.2 (see the permutation tests): 2 * 0.1 = 0.2.
    before = np.zeros((1, 9))
    after = np.array([[4.0, 5, 6, 1, 2, 3, 1, 2, 4]])
    res = ablation_stats(
        _scores(before, [3, 3, 3], reference="g0"), _scores(after, [3, 3, 3], reference="g0"), seed=0
    )
    # g1's changes {1, 2, 3} vs g0's {4, 5, 6}: 0.1; g2's {1, 2, 4} vs {4, 5, 6}: s = 7, stat -8/3,
    # |2 s - 22| >= 8 iff s <= 7 or s >= 15 over {1,2,4,4,5,6}: {1,2,4} twice (two 4s), {4,5,6} twice
    # -> 4 / 20 = 0.2.
    assert [g.p_value for g in res.groups[1:]] == pytest.approx([0.1, 0.2])
    assert res.p_value == pytest.approx(0.2)


# --- invariance and input checks ------------------------------------------------------------------


def replace_lo(s: ProbeScores, lo, groups=None) -> ProbeScores:
    return ProbeScores(
        lo, s.groups if groups is None else groups, s.group_ids, s.qualifying, s.labels, s.reference
    )


def test_column_order_within_groups_changes_nothing():
    rng = np.random.default_rng(5)
    sizes = [4, 4, 9]
    base = _random_scores(seed=5, t=9, sizes=sizes)
    abl = replace_lo(base, base.lo + rng.normal(scale=0.5, size=base.lo.shape))
    perm = np.concatenate([rng.permutation(np.flatnonzero(base.groups == g)) for g in range(3)])
    # max_exact=100 sends 4 vs 9 (C(13, 4) = 715) to Monte Carlo, keeps 4 vs 4 (70) exact.
    kw = dict(seed=9, n_boot=200, n_perm=499, max_exact=100)
    want = attribute_stats(base, **kw)
    got = attribute_stats(replace_lo(base, base.lo[:, perm], base.groups[perm]), **kw)
    assert got == want
    assert {g.exact for g in want.groups[1:]} == {True, False}
    for method in ("exchange", "sign_flip"):
        want_abl = ablation_stats(base, abl, seed=9, n_perm=499, max_exact=100, method=method)
        got_abl = ablation_stats(
            replace_lo(base, base.lo[:, perm], base.groups[perm]),
            replace_lo(abl, abl.lo[:, perm], base.groups[perm]),
            seed=9,
            n_perm=499,
            max_exact=100,
            method=method,
        )
        assert got_abl == want_abl


def test_probe_scores_checks_shapes():
    ok = dict(
        groups=np.array([0, 1]), group_ids=("a", "b"), qualifying=np.array([True]), labels=np.array([0])
    )
    ProbeScores(np.zeros((1, 2)), **ok)
    with pytest.raises(ValueError, match="groups must be"):
        ProbeScores(np.zeros((1, 3)), **ok)
    with pytest.raises(ValueError, match="non-finite"):
        ProbeScores(np.array([[0.0, np.nan]]), **ok)
    with pytest.raises(ValueError, match="every group needs"):
        ProbeScores(np.zeros((1, 2)), **{**ok, "group_ids": ("a", "b", "c")})
    with pytest.raises(ValueError, match="qualifying"):
        ProbeScores(np.zeros((1, 2)), **{**ok, "qualifying": np.array([False])})
    with pytest.raises(ValueError, match="labels"):
        ProbeScores(np.zeros((1, 2)), **{**ok, "labels": np.array([2])})
    with pytest.raises(ValueError, match="reference group"):
        ProbeScores(np.zeros((1, 2)), **ok, reference="c")
