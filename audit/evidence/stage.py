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
from audit.terms.match import build_index, coverage
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


def find(geometry: Geometry, vocab: Vocabulary, lists: Wordlists, config: AuditConfig) -> Findings:
    """Hits in every method's neighbours, with p-values from the null model (built, once and cached,
    only for the methods that have a hit) and q-values over the report."""
    index = build_index(vocab, lists)
    hits = find_hits(geometry.tops, vocab, index, lists)
    hit_methods = tuple(m for m in geometry.methods if any(h.method == m for h in hits))
    null_ranks = {}
    if hit_methods:
        null = _null(vocab, geometry.stats, hit_methods, config)
        null_ranks = {m: category_min_ranks(null[m], index, lists) for m in hit_methods}
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
