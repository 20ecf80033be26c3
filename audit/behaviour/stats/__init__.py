"""Statistics of the behavioural check: pure numpy/scipy functions over a probe suite's log-odds.

A probe suite renders every template with every value (a name, an age) of every group of an
attribute: templates and names are crossed. The model gives, per rendering, the summed log-probs of
the positive and the negative answer; everything here starts from the log-odds
``lo = logp(positive) - logp(negative)`` (natural log, "logits").

Conventions (one place, every function follows them):

- decision: positive when ``lo > 0``; a tie ``lo == 0`` counts as negative.
- P(positive) = sigmoid(lo): the answer distribution renormalised over the two answers only (the
  probability mass the model puts on other continuations is ignored).
- group statistics (n, selection rate, mean P(positive), mean log-odds) use the qualifying templates
  only (labelled positive; all templates when none is labelled); task accuracy uses the labelled
  ones. Every template is rendered with every name, so a group's mean over renderings equals the
  mean of its per-name means.
- the reference group is the suite's, else the group with the highest selection rate (ties: the
  first in suite order).
- tests are two-sided; a permutation p-value counts the assignments whose |statistic| is at least
  the observed one, up to a tolerance of ``TIE_TOL * max(1, max |per-name value|)`` so float noise
  does not break ties; the observed assignment is always counted.
- results do not depend on the order of the columns within a group (columns are put in a canonical
  order first), and every random draw comes from ``numpy.random.Generator(PCG64(seed))``.
"""

from __future__ import annotations

from audit.behaviour.stats.agreement import (
    AblationGroup,
    AblationStats,
    Faithfulness,
    TaskAccuracy,
    ablation_stats,
    bernoulli_kl,
    faithfulness,
    task_accuracy,
)
from audit.behaviour.stats.bootstrap import BootstrapCI, bootstrap_cis
from audit.behaviour.stats.bootstrap import _replicate_means as _replicate_means  # private: for the tests
from audit.behaviour.stats.disparity import (
    AttributeStats,
    GroupResult,
    attribute_stats,
    bh_qvalues,
    with_qvalues,
)
from audit.behaviour.stats.permutation import (
    PermutationResult,
    Seed,
    min_attainable_p,
    name_permutation_test,
    sign_flip_test,
)
from audit.behaviour.stats.scores import (
    ABLATION_TESTS,
    ALPHA,
    BOOTSTRAP_CI,
    LEVEL,
    MAX_EXACT,
    MIN_AGREEMENT,
    MIN_RENDERINGS,
    MIN_SHARE,
    N_BOOT,
    N_PERM,
    NAME_PERMUTATION_TEST,
    QVALUE_FAMILY,
    TIE_TOL,
    GroupSummary,
    ProbeScores,
    impact_ratio,
    log_odds,
    name_means,
    p_positive,
    qualifying_from_labels,
    reference_group,
    summarise_groups,
)
from audit.behaviour.stats.scores import _canonical as _canonical  # private: for the tests

__all__ = [
    "ABLATION_TESTS",
    "ALPHA",
    "AblationGroup",
    "AblationStats",
    "AttributeStats",
    "BOOTSTRAP_CI",
    "BootstrapCI",
    "Faithfulness",
    "GroupResult",
    "GroupSummary",
    "LEVEL",
    "MAX_EXACT",
    "MIN_AGREEMENT",
    "MIN_RENDERINGS",
    "MIN_SHARE",
    "NAME_PERMUTATION_TEST",
    "N_BOOT",
    "N_PERM",
    "PermutationResult",
    "ProbeScores",
    "QVALUE_FAMILY",
    "Seed",
    "TIE_TOL",
    "TaskAccuracy",
    "ablation_stats",
    "attribute_stats",
    "bernoulli_kl",
    "bh_qvalues",
    "bootstrap_cis",
    "faithfulness",
    "impact_ratio",
    "log_odds",
    "min_attainable_p",
    "name_means",
    "name_permutation_test",
    "p_positive",
    "qualifying_from_labels",
    "reference_group",
    "sign_flip_test",
    "summarise_groups",
    "task_accuracy",
    "with_qvalues",
]
