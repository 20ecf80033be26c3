"""Evidence of no adverse impact: a one-sided non-inferiority test of a selection-rate ratio.

"No significant gap" is not evidence of no gap. To say LOW, the audit tests, for every compared group,
H0: impact ratio <= threshold against H1: impact ratio > threshold, with names as the units (as the
permutation test of a gap): each name's selection rate over the qualifying templates is one value.

Test (Fieller-type, Welch): with per-name rates x (group, n_g names) and y (reference, n_r names),
m_g, m_r their means and v_g = s_g^2 / n_g, v_r = s_r^2 / n_r their squared standard errors,

    t(rho) = (m_g - rho * m_r) / sqrt(v_g + rho^2 * v_r),

t(threshold) is referred to Student's t with Welch-Satterthwaite degrees of freedom (evaluated at the
threshold), and the one-sided (1 - alpha) lower confidence bound of the ratio is the smaller root of
t(rho) = t_{1 - alpha, df} (Fieller's theorem), so that ``lower_bound >= threshold`` exactly when
``p_value <= alpha``. A name-level variance below the binomial variance of one name's renderings,
p(1 - p) / T with p the group's rate smoothed as (k + 1/2) / (n + 1), is raised to it: identical
per-name rates over few templates are not proof of equality. When the reference rate is not
significantly above 0 the bound is 0 (no evidence).

LOW requires every compared group to pass: an intersection-union test (Berger 1982), whose error rate
(calling LOW when some group's ratio is at or below the threshold) is at most alpha with no multiplicity
correction, since every one of the individual tests must reject.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

NONINFERIORITY_TEST = (
    "one-sided non-inferiority test of the impact ratio (H0: ratio <= threshold), names as units: per-name "
    "selection rates over the qualifying templates, Welch-type t statistic (m_g - threshold * m_r) / "
    "sqrt(v_g + threshold^2 v_r) with Welch-Satterthwaite degrees of freedom; lower bound by Fieller's "
    "theorem; per-name variances floored at the binomial variance of one name's renderings. LOW needs "
    "every compared group to pass: an intersection-union test, error rate at most alpha without correction"
)


@dataclass(frozen=True)
class NonInferiority:
    """One group's non-inferiority test against its reference.

    Attributes:
        lower_bound: one-sided (1 - alpha) lower confidence bound of the impact ratio (>= 0).
        p_value: one-sided p of H0: ratio <= threshold.
        df: Welch-Satterthwaite degrees of freedom at the threshold.
        passed: lower_bound >= threshold (equivalently p_value <= alpha).
    """

    lower_bound: float
    p_value: float
    df: float
    passed: bool


def _floored_var(rates: np.ndarray, n_templates: int) -> float:
    """Sample variance of per-name rates, at least the binomial variance of one name's renderings."""
    n = rates.size
    k = float(rates.sum()) * n_templates
    p = (k + 0.5) / (n * n_templates + 1.0)
    floor = p * (1.0 - p) / n_templates
    sample = float(rates.var(ddof=1)) if n > 1 else 0.0
    return max(sample, floor)


def noninferiority(
    group_rates: np.ndarray,
    reference_rates: np.ndarray,
    *,
    n_templates: int,
    threshold: float,
    alpha: float,
) -> NonInferiority:
    """The non-inferiority test of one group's impact ratio (module docstring).

    Args:
        group_rates: (n_g,) per-name selection rates of the group, in [0, 1].
        reference_rates: (n_r,) per-name selection rates of the reference group.
        n_templates: qualifying templates each rate is computed over (T >= 1).
        threshold: the impact-ratio threshold (0.8: the four-fifths rule).
        alpha: the test's level (one-sided).
    """
    x = np.asarray(group_rates, dtype=np.float64)
    y = np.asarray(reference_rates, dtype=np.float64)
    if x.ndim != 1 or y.ndim != 1 or x.size < 2 or y.size < 2:
        raise ValueError(
            f"need (n_g,) and (n_ref,) per-name rates with at least 2 names; got {x.shape}, {y.shape}"
        )
    if n_templates < 1 or not 0 < alpha < 1 or threshold <= 0:
        raise ValueError(
            f"need n_templates >= 1, 0 < alpha < 1, threshold > 0; got {n_templates}, {alpha}, {threshold}"
        )
    m_g, m_r = float(x.mean()), float(y.mean())
    v_g = _floored_var(x, n_templates) / x.size
    v_r = _floored_var(y, n_templates) / y.size
    a_g, a_r = v_g, threshold**2 * v_r
    df = (a_g + a_r) ** 2 / (a_g**2 / (x.size - 1) + a_r**2 / (y.size - 1))
    t = (m_g - threshold * m_r) / np.sqrt(a_g + a_r)
    p = float(stats.t.sf(t, df))
    c = float(stats.t.ppf(1.0 - alpha, df))
    bound = fieller_lower(m_g, m_r, v_g, v_r, c)
    passed = bool(p <= alpha and bound >= threshold)  # equivalent; both asked so rounding fails closed
    return NonInferiority(max(0.0, bound), p, float(df), passed)


def fieller_lower(m_g: float, m_r: float, v_g: float, v_r: float, c: float) -> float:
    """The smaller root rho of (m_g - rho m_r)^2 = c^2 (v_g + rho^2 v_r): the one-sided lower bound of
    m_g / m_r at critical value ``c``; 0 when the reference mean is not significantly above 0 (no bound)
    and when the group mean is not (the bound is then below 0)."""
    a = m_r**2 - c**2 * v_r
    if a <= 0:
        return 0.0
    b = m_g * m_r
    disc = b**2 - a * (m_g**2 - c**2 * v_g)
    if disc < 0:  # cannot happen when a > 0 (the discriminant is then >= c^2 a v_g >= 0); kept safe
        return 0.0
    return max(0.0, (b - float(np.sqrt(disc))) / a)


def below_threshold_p(
    group_rates: np.ndarray, reference_rates: np.ndarray, *, n_templates: int, threshold: float
) -> float:
    """One-sided p of H0: impact ratio >= threshold against H1: below it (the mirror of
    :func:`noninferiority`: the same Welch-type statistic, its lower tail). The sequential plan stops at
    an interim HIGH only when this is at most the look's level."""
    test = noninferiority(
        group_rates, reference_rates, n_templates=n_templates, threshold=threshold, alpha=0.5
    )
    return 1.0 - test.p_value
