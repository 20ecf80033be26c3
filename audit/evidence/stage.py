"""The evidence stage: which neighbours spell sensitive terms, and how surprising each hit is."""

from __future__ import annotations

from dataclasses import dataclass

from audit.config import AuditConfig
from audit.evidence.hits import find_hits
from audit.evidence.null import NULL_MODEL_TEXT, NULL_SIZE, category_min_ranks, null_neighbours
from audit.evidence.significance import assess
from audit.geometry.stage import Geometry, engine_options
from audit.geometry.stats import VocabStats
from audit.inputs.vocab import Vocabulary
from audit.progress import progress_bar
from audit.records import CoverageRow, Evidence, Hit
from audit.terms.match import TermIndex, build_index, coverage
from audit.terms.schema import Wordlists, categories


@dataclass(frozen=True)
class Findings:
    """Hits with their evidence (same order), the wordlists' coverage of this vocabulary, and the texts
    the report needs to explain them."""

    hits: tuple[Hit, ...]
    evidence: tuple[Evidence, ...]
    coverage: tuple[CoverageRow, ...]
    category_labels: dict[str, dict[str, str]]
    null_model: dict[str, str]
    null_size: int


class SharedEvidence:
    """The term index and the null model's category ranks of one vocabulary, wordlist set and config,
    read (or built) on first use and kept: the prompts of a batch share one, so the cache files are read
    once per model instead of once per prompt. The values are those a single scan reads."""

    def __init__(self, vocab: Vocabulary, stats: VocabStats, lists: Wordlists, config: AuditConfig) -> None:
        self.vocab, self.stats, self.lists, self.config = vocab, stats, lists, config
        self._index: TermIndex | None = None
        self._ranks: dict[str, dict] = {}

    @property
    def index(self) -> TermIndex:
        if self._index is None:
            self._index = build_index(self.vocab, self.lists)
        return self._index

    def null_ranks(self, methods: tuple[str, ...]) -> dict[str, dict]:
        """method -> category -> (N,) best rank of that category per null vector."""
        missing = tuple(m for m in methods if m not in self._ranks)
        if missing:
            null = _null(self.vocab, self.stats, missing, self.config)
            self._ranks.update({m: category_min_ranks(null[m], self.index, self.lists) for m in missing})
        return {m: self._ranks[m] for m in methods}


def find(
    geometry: Geometry,
    vocab: Vocabulary,
    lists: Wordlists,
    config: AuditConfig,
    *,
    shared: SharedEvidence | None = None,
) -> Findings:
    """Hits in every method's neighbours, with p-values from the null model (built, once and cached,
    only for the methods that have a hit) and q-values over the report. ``shared``: the term index and
    null model shared by a batch (default: read for this call)."""
    if shared is None:
        shared = SharedEvidence(vocab, geometry.stats, lists, config)
    index = shared.index
    hits = find_hits(geometry.tops, vocab, index, lists)
    hit_methods = tuple(m for m in geometry.methods if any(h.method == m for h in hits))
    null_ranks = shared.null_ranks(hit_methods) if hit_methods else {}
    used = {t.category for t in lists.terms}
    return Findings(
        hits=tuple(hits),
        evidence=tuple(assess(hits, null_ranks, lists)),
        coverage=coverage(lists, index),
        category_labels={c.id: dict(c.label) for c in categories().values() if c.id in used},
        null_model=dict(NULL_MODEL_TEXT),
        null_size=NULL_SIZE,
    )


def prepare_evidence(
    vocab: Vocabulary, stats: VocabStats, lists: Wordlists, methods: tuple[str, ...], config: AuditConfig
) -> None:
    """Fills the term index and null-model caches a scan with ``config`` reads."""
    build_index(vocab, lists)
    _null(vocab, stats, methods, config)


def _null(vocab: Vocabulary, stats: VocabStats, methods: tuple[str, ...], config: AuditConfig):
    from audit.geometry.engine import count_rows

    desc = "null model (once per model and seed, cached)"
    with progress_bar(desc, count_rows(vocab, methods), enabled=config.progress) as bar:
        return null_neighbours(
            vocab, stats, methods, config.seed, config.top_k, progress=bar.update, **engine_options(config)
        )
