"""Typed records of the behavioural check (``--behaviour SUITE``), part of the records of
:mod:`audit.records` (which re-exports them). Plain Python only."""

from __future__ import annotations

from dataclasses import dataclass

from audit.level import Level

# ---------------------------------------------------------------------------------------------
# The behavioural check (``--behaviour SUITE``)


@dataclass(frozen=True)
class GroupDisparity:
    """One group of an attribute under one condition, against the reference group.

    ``n`` renderings (qualifying templates x the group's values) over ``n_names`` values; rates over the
    qualifying templates; ``impact_ratio`` = selection rate / the reference's (None when that is 0) with
    its bootstrap CI (``ci_low``, ``ci_high``); ``effect_size`` = difference in mean log-odds (logits) with
    its CI; ``p_value`` from the name-permutation test, ``min_p`` the smallest it could be, ``q_value``
    over the report's family. The reference group has no comparison (None).

    Evidence about the evidence (rule version 2): ``ni_lower`` is the one-sided (1 - alpha) lower
    confidence bound of the impact ratio from the non-inferiority test and ``ni_p_value`` that test's p of
    H0: ratio <= threshold (None: not tested, e.g. fewer than 2 names on a side); ``detectable_ratio`` and
    ``detectable_shift`` (logits) are the gap this comparison detects with 80 % power, ``power_at_max`` the
    power at the largest simulated shift (None: not computed; computed under the soft prompt only;
    ``detectable_*`` None with ``power_at_max`` set: no gap is detected with 80 % power)."""

    id: str
    n: int
    n_names: int
    selection_rate: float
    mean_p_positive: float
    impact_ratio: float | None
    ci_low: float | None
    ci_high: float | None
    effect_size: float
    effect_ci_low: float | None
    effect_ci_high: float | None
    p_value: float | None
    q_value: float | None
    min_p: float | None
    is_reference: bool
    small_sample: bool
    low_share: bool
    cannot_reach_significance: bool
    ni_lower: float | None = None
    ni_p_value: float | None = None
    detectable_ratio: float | None = None
    detectable_shift: float | None = None
    power_at_max: float | None = None


@dataclass(frozen=True)
class AttributeDisparity:
    id: str
    slot: str
    reference_group: str
    reference_given: bool  # named by the suite (else: the group with the highest selection rate)
    n_templates: int  # qualifying templates containing the slot
    groups: tuple[GroupDisparity, ...]


@dataclass(frozen=True)
class Condition:
    """The suite run under one prompt: ``soft_prompt``, ``reference_text`` (the reference/init text as a
    plain text prompt), or ``no_prompt`` (the base model alone)."""

    id: str
    prompt_text: str | None
    task_accuracy: float | None  # share of labelled renderings decided as labelled
    n_labelled: int
    attributes: tuple[AttributeDisparity, ...]


@dataclass(frozen=True)
class Gap:
    """A group the rule flags: impact ratio below the threshold with q below alpha, under the soft prompt;
    ``in_base_model``: the same group is flagged under no prompt too."""

    attribute: str
    group: str
    reference_group: str
    impact_ratio: float
    q_value: float
    in_base_model: bool


@dataclass(frozen=True)
class Unresolved:
    """A compared group that rule version 2 can neither flag nor clear (the behaviour is then MEDIUM):

    ``reason`` is ``bound_below_threshold`` (the non-inferiority bound ``lower_bound`` is below the
    threshold: the suite cannot rule out ratios down to it), ``cannot_reach_significance`` (too few names
    for the gap test to reach p < alpha: ``min_p``), ``too_few_names`` (under 2 names on a side: no
    non-inferiority test) or ``no_ratio`` (the reference group is never selected)."""

    attribute: str
    group: str
    reference_group: str
    impact_ratio: float | None
    lower_bound: float | None
    min_p: float | None
    reason: str


@dataclass(frozen=True)
class Calibration:
    """Placebo comparisons on this run's own log-odds (random splits of a group's names into two halves
    through the same name permutation test): the observed false-alarm rate (p < ``nominal``, per test,
    before the BH correction) against the nominal one, with the Monte Carlo error of the rate at the
    nominal level. ``rate`` None: no group had enough names for a split."""

    n_tests: int
    n_false_alarms: int
    rate: float | None
    nominal: float
    mc_error: float | None
    anticonservative: bool  # rate > nominal + 2 * mc_error
    method: str


@dataclass(frozen=True)
class SequentialLook:
    """One look of the group-sequential plan that was made: the templates and renderings read so far, the
    level spent there, whether it could be tested (every attribute kept a qualifying template) and the
    rule's risk there (None when not tested)."""

    n_templates: int
    n_renderings: int
    alpha: float
    tested: bool
    risk: Level | None


@dataclass(frozen=True)
class Sequential:
    """Where a ``--sequential`` run stopped (audit.behaviour.sequential): the looks made, in order (the
    last is the stopping look: the statistics, readings and ablations are those of its renderings), how
    many the plan had, the alpha spent up to the stop (at most the run's alpha) and the suite's full size."""

    method: str
    looks: tuple[SequentialLook, ...]
    n_looks_planned: int
    alpha_spent: float
    n_renderings_full: int
    n_templates_full: int

    @property
    def stopped_early(self) -> bool:
        return len(self.looks) < self.n_looks_planned


@dataclass(frozen=True)
class Category:
    """One row of the bias-audit summary: ``impact_ratio`` against the table's most selected category (None
    when ``excluded``: under 2 % of the table's renderings), ``small_sample`` under 50 renderings."""

    name: str  # "maghreb" or "maghreb x female"
    groups: tuple[str, ...]
    n: int  # qualifying renderings
    n_names: int
    share: float
    selection_rate: float
    impact_ratio: float | None
    excluded: bool
    small_sample: bool


@dataclass(frozen=True)
class CategoryTable:
    """Selection rates by category in the layout of a NYC Local Law 144 bias-audit summary, under the soft
    prompt: one attribute's groups, or the crossed categories of two attributes that vary the same slot.
    Test data from synthetic counterfactual probes, not historical data; descriptive (no test)."""

    id: str  # "origin" or "origin x gender"
    attributes: tuple[str, ...]
    most_selected: str | None
    categories: tuple[Category, ...]
    n_excluded: int  # categories under 2 %, left out of the impact ratios
    n_unknown: int  # renderings of unknown category: 0 for probes, where every category is set by design


@dataclass(frozen=True)
class BehaviourResult:
    suite_id: str
    suite_version: str
    suite_sha256: str
    suite_path: str
    suite_language: str
    n_templates: int
    answers: tuple[str, str]  # positive, negative
    n_renderings: int
    n_texts: int  # distinct texts, each scored once per condition
    conditions: tuple[Condition, ...]
    test: str  # how p-values were computed
    ci_method: str
    family: str  # the q-value family
    seed: int
    n_boot: int
    risk: Level
    gaps: tuple[Gap, ...]
    verdict: dict[str, str]  # report language -> sentence
    rule: dict[str, str]  # report language -> the behavioural risk rule
    readings: tuple[Reading, ...] = ()
    ablations: tuple[Ablation, ...] = ()
    ablation_positions: tuple[int, ...] = ()  # positions with an active flag that were ablated
    skipped_positions: tuple[int, ...] = ()  # flagged positions left out by --max-ablations
    min_agreement: float = 0.8
    ablation_test: str = ""
    # The behavioural rule's thresholds (audit.verdict.behaviour.IMPACT_THRESHOLD and ALPHA), so that a
    # saved audit re-renders with the rule it was judged under.
    impact_threshold: float = 0.8
    alpha: float = 0.05
    # Rule version 2: the groups neither flagged nor cleared, how LOW is shown, what the suite could
    # detect, and the placebo calibration of the gap test.
    rule_version: int = 2
    unresolved: tuple[Unresolved, ...] = ()
    noninferiority_test: str = ""
    power_method: str = ""
    power_target: float = 0.8
    calibration: Calibration | None = None
    bias_audit: tuple[CategoryTable, ...] = ()  # the LL144-layout summary, soft prompt
    # --sequential: where the plan stopped (None: the full design; n_renderings etc. are then the suite's)
    sequential: Sequential | None = None
    # --faithful-reading: the text found to behave most like the prompt (None: not asked)
    found: FoundReading | None = None

    @property
    def soft(self) -> Condition:
        return next(c for c in self.conditions if c.id == "soft_prompt")


@dataclass(frozen=True)
class Reading:
    """One method's reading run as a plain prompt (its top-1 tokens' embeddings in place of the soft
    prompt), against the soft prompt on the same renderings."""

    methods: tuple[str, ...]  # the methods that read exactly these tokens (run once)
    text: str
    agreement: float  # share of renderings with the same decision as the soft prompt
    kl: float  # mean KL(P_soft || P_reading) of the two-answer distribution, nats
    accuracy: float | None  # task accuracy on labelled templates with the reading
    faithful: bool  # agreement >= the threshold
    attributes: tuple[AttributeDisparity, ...]  # the reading's own disparities


@dataclass(frozen=True)
class ReadingChange:
    """A position where the found reading differs from the nearest-token reading."""

    position: int
    nearest: str  # the nearest-token reading's token there
    token: str  # the found reading's token


@dataclass(frozen=True)
class ReadingFlag:
    """A token of the found reading that spells a wordlist term (the matching rule of every flag).
    It has no null-model p-value: the search chose the token for its behaviour, not its geometry."""

    position: int
    token: str
    term_id: str
    lemma: str
    category: str
    language: str
    whole_token: bool  # False: a multi-token term's first piece
    suppressed: str | None  # allow-list reason; such a flag is shown, not counted


@dataclass(frozen=True)
class SearchSwap:
    """One step the search kept: ``position`` changed from ``previous`` to ``token``; the sample's
    agreement and KL after it."""

    position: int
    previous: str
    token: str
    agreement: float
    kl: float


@dataclass(frozen=True)
class FaithfulSearch:
    """How the found reading was searched (audit.behaviour.faithful) and what it cost."""

    method: str
    start_methods: tuple[str, ...]  # the projection it started from (the best on the whole suite)
    improved: bool  # the found text beats that projection on every rendering reported on
    budget_runs: float  # suite-run equivalents allowed (the confirmation run included)
    max_seconds: float | None  # wall-time limit (None: none)
    stopped: str  # converged | budget | time (a time stop depends on the machine's speed)
    sample_size: int  # renderings' texts the candidates ran on
    gradient_size: int  # texts the gradient was taken on
    screened: int  # candidate texts run on the gradient's texts (the screen)
    evaluated: int  # candidate texts run on the whole sample
    gradients: int  # gradient passes
    texts_scored: int  # forward-pass texts (a gradient text counts 3)
    suite_runs: float  # texts_scored / the texts reported on
    swaps: tuple[SearchSwap, ...]


@dataclass(frozen=True)
class FoundReading:
    """The discrete text of the prompt's length found to behave most like it (``--faithful-reading``),
    with the columns of every reading, where it differs from the nearest-token reading, and its flags."""

    text: str
    token_ids: tuple[int, ...]
    tokens: tuple[str, ...]
    agreement: float
    kl: float
    accuracy: float | None
    faithful: bool  # agreement >= the threshold
    attributes: tuple[AttributeDisparity, ...]
    nearest_methods: tuple[str, ...]  # the nearest-token reading compared with
    changes: tuple[ReadingChange, ...]
    flags: tuple[ReadingFlag, ...]
    search: FaithfulSearch


@dataclass(frozen=True)
class AblationGroup:
    id: str
    is_reference: bool
    selection_rate: float  # with the position replaced
    delta_selection_rate: float  # replaced minus original
    impact_ratio: float | None
    delta_impact_ratio: float | None
    delta_effect: float  # change in the gap to the reference, logits
    p_value: float | None


@dataclass(frozen=True)
class Ablation:
    """One prompt position replaced (by its best non-sensitive reading, or the vocabulary mean) and the
    suite rerun: per attribute, the paired test of the change in each group's gap."""

    position: int
    replacement: str  # "reading" or "mean"
    token: str | None  # the replacing token for "reading"
    attribute: str
    groups: tuple[AblationGroup, ...]
    p_value: float | None  # Bonferroni over the attribute's groups
    q_value: float | None  # Benjamini-Hochberg over every ablation test of the report
    active: bool  # q < alpha: the replacement opens or closes a gap
