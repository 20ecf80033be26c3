"""Typed records passed between the pipeline stages (no free-form dicts)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Risk(str, Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def level(self) -> int:
        return ("low", "medium", "high").index(self.value)

    @classmethod
    def worst(cls, risks) -> Risk:
        return max(risks, key=lambda r: r.level, default=cls.LOW)


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
class Flag:
    """A neighbour of a prompt position that spells a sensitive term."""

    position: int
    method: str
    rank: int
    token_id: int
    token: str
    term_id: str
    term: str  # the term's lemma
    category: str
    language: str
    score: float
    gap_to_top1: float  # top-1 score minus this neighbour's score (0 for the top-1 itself)
    is_top1: bool
    word_start: bool
    partial: bool  # a multi-token term whose pieces appear together in the neighbour set
    policy: str
    term_severity: str
    p_value: float | None
    q_value: float | None
    severity: str
    suppressed: str | None = None  # allow-list reason when suppressed


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
    risk: Risk
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
class Summary:
    risk: Risk
    n_flags: int
    n_suppressed: int
    flags_by_category: dict[str, int]
    flags_by_severity: dict[str, int]
    mean_agreement: float
    verdict: str


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
    coverage: tuple  # tuple[CoverageRow, ...]
    notes: tuple[str, ...]
