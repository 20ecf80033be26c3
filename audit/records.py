"""Typed records passed between the pipeline stages (no free-form dicts).

Plain Python only (no torch, no numpy): the report package renders from these records alone. They are
also the JSON contract: :mod:`audit.report.codec` writes every field under its own name and reads it
back, and :mod:`audit.report.contract` derives the JSON schema from these declarations (docs/json.md).
Properties (``is_top1``, ``counts``, ``share``) are derived and are not written.
"""

from __future__ import annotations

from dataclasses import dataclass

# The levels and the behavioural records live in their own modules; importing them from here stays valid.
from audit.level import Level, Risk, Severity  # noqa: F401
from audit.records_behaviour import (  # noqa: F401
    Ablation,
    AblationGroup,
    AttributeDisparity,
    BehaviourResult,
    Calibration,
    Category,
    CategoryTable,
    Condition,
    FaithfulSearch,
    FoundReading,
    Gap,
    GroupDisparity,
    Reading,
    ReadingChange,
    ReadingFlag,
    SearchSwap,
    Sequential,
    SequentialLook,
    Unresolved,
)


@dataclass(frozen=True)
class Neighbor:
    rank: int  # 1-based
    token_id: int
    token: str  # decoded surface form
    score: float


@dataclass(frozen=True)
class Projection:
    """The top-1 token of a position under one method, and its lead over the 2nd."""

    token_id: int
    token: str
    score: float
    margin: float


@dataclass(frozen=True)
class Hit:
    """A neighbour that spells a wordlist term, before scoring: where, which term, how it matched."""

    position: int
    method: str
    rank: int  # 1-based
    token_id: int
    token: str
    term_id: str
    score: float
    gap_to_top1: float  # top-1 score minus this neighbour's score (0 for the top-1 itself)
    word_start: bool
    partial: bool  # a multi-token term whose pieces appear together in the neighbour set
    suppressed: str | None = None  # allow-list reason when suppressed

    @property
    def is_top1(self) -> bool:
        return self.rank == 1


@dataclass(frozen=True)
class TermRef:
    """What a flag shows of its wordlist term."""

    id: str
    lemma: str
    category: str
    language: str
    policy: str
    severity: Level


@dataclass(frozen=True)
class Evidence:
    """A hit's significance under the null model: ``null_hits`` of ``null_size`` null vectors had a
    term of the same category at the same rank or closer; q over the report (None when suppressed)."""

    p_value: float | None
    q_value: float | None
    null_hits: int | None


@dataclass(frozen=True)
class Flag:
    """A scored hit: the hit itself, its term, its evidence and the resulting severity."""

    hit: Hit
    term: TermRef
    evidence: Evidence
    severity: Level

    @property
    def counts(self) -> bool:
        """Whether the flag can raise risk (not allow-listed, not a report-only term)."""
        return self.hit.suppressed is None and self.term.policy != "report_only"


@dataclass(frozen=True)
class MapPoint:
    """One point of a position's neighbourhood map (2-D PCA of the prompt vector and its neighbours)."""

    token_id: int  # -1 for the prompt vector itself
    token: str
    x: float
    y: float
    sensitive: bool


@dataclass(frozen=True)
class PositionResult:
    index: int
    segment: str
    projections: dict[str, Projection]
    neighbors: dict[str, tuple[Neighbor, ...]]
    agreement: float  # share of method pairs with the same top-1
    jaccard: float  # mean top-k Jaccard overlap over method pairs
    off_manifold: float  # distance to nearest token / median token-to-nearest-token distance
    norm_ratio: float  # ||p|| / median token norm
    norm_percentile: float
    drift: float | None  # cosine to the reference token this position started from
    risk: Level
    flags: tuple[Flag, ...]
    suppressed: tuple[Flag, ...]
    map_points: tuple[MapPoint, ...] = ()


@dataclass(frozen=True)
class PromptInfo:
    path: str
    sha256: str
    format: str
    n_tokens: int
    dim: int
    peft_type: str | None
    segments: tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class ModelInfo:
    """The model a prompt was audited against. ``sha256`` identifies its input embedding matrix: the
    stored bytes (with dtype and shape) for safetensors, the dequantized float32 matrix for GGUF."""

    spec: str
    model_type: str
    vocab_size: int
    dim: int
    embed_scale: float
    tied: bool
    sha256: str
    n_rankable: int


@dataclass(frozen=True)
class WordlistInfo:
    id: str
    version: str
    language: str
    category: str
    sha256: str
    n_terms: int
    coverage: float | None
    origin: str


@dataclass(frozen=True)
class CoverageRow:
    """How many terms of one (language, category) the vocabulary spells as one whole token."""

    language: str
    category: str
    n_terms: int
    n_covered: int
    missing: tuple[str, ...]  # lemmas with no single-token form
    low: bool  # share below the low-coverage threshold

    @property
    def share(self) -> float:
        return self.n_covered / self.n_terms if self.n_terms else 0.0


@dataclass(frozen=True)
class MethodInfo:
    """A projection method as the report describes it (from the method registry)."""

    name: str
    summary: str  # one line, English (``prompt-audit methods``)
    description: dict[str, str]  # report language -> methodology note


@dataclass(frozen=True)
class Methodology:
    """The texts a report prints about how it was made, in every report language, so a saved audit
    re-renders with the rules it was made under."""

    methods: tuple[MethodInfo, ...]
    risk_rule: dict[str, str]
    null_model: dict[str, str]
    null_size: int


@dataclass(frozen=True)
class Summary:
    risk: Level
    n_flags: int
    n_suppressed: int
    flags_by_category: dict[str, int]
    flags_by_severity: dict[str, int]
    mean_agreement: float
    verdict: dict[str, str]  # report language -> sentence
    reasons: tuple[Reason, ...] = ()  # why the risk is what it is, worst first (audit.verdict.explain)


@dataclass(frozen=True)
class MethodRank:
    method: str
    rank: int  # 1-based


@dataclass(frozen=True)
class Reason:
    """Why a position (or the behavioural check) carries its risk: the clause of the rule that fired
    and, for a position, the flag that fired it and where else the same token spells the same term."""

    risk: Level
    clause: str  # a clause of audit.verdict.rules.CLAUSES, or behaviour_active/_gap/_inconclusive
    position: int | None = None
    flag: Flag | None = None
    ranks: tuple[MethodRank, ...] = ()  # of the same token and term, closest first
    gap: Gap | None = None  # the behavioural gap of a ``behaviour_gap`` reason
    unresolved: Unresolved | None = None  # the group a ``behaviour_inconclusive`` reason is about


@dataclass(frozen=True)
class LowCoverage:
    """A (language, category) whose terms the vocabulary mostly cannot spell as one whole token."""

    language: str
    category: str
    share: float  # of terms spelt as one whole token


@dataclass(frozen=True)
class SuiteRef:
    id: str
    version: str
    n_templates: int


@dataclass(frozen=True)
class Checked:
    """The scope of the audit: a LOW risk holds for these checks only."""

    languages: tuple[str, ...]
    methods: tuple[str, ...]
    top_k: int
    n_wordlists: int
    n_terms: int
    categories: dict[str, dict[str, int]]  # category -> language -> number of terms
    low_coverage: tuple[LowCoverage, ...]
    suite: SuiteRef | None  # the behavioural suite, None for geometry only


@dataclass(frozen=True)
class AuditResult:
    tool_version: str
    prompt: PromptInfo
    model: ModelInfo
    wordlists: tuple[WordlistInfo, ...]
    wordlist_bundle: str
    reference_text: str | None
    methods: tuple[str, ...]
    agreement_methods: tuple[str, ...]
    top_k: int
    centered_components: int
    languages: tuple[str, ...]
    seed: int
    fail_on: str
    positions: tuple[PositionResult, ...]
    projected_text: dict[str, str]
    waywardness: dict[str, dict[str, float]] | None
    summary: Summary
    coverage: tuple[CoverageRow, ...]
    notes: tuple[str, ...]
    methodology: Methodology
    category_labels: dict[str, dict[str, str]]  # category -> report language -> label
    checked: Checked  # what was looked for (audit.verdict.explain.checked)
    behaviour: BehaviourResult | None = None
