"""Flags: neighbours of a prompt position that spell a sensitive term.

A flag is (position, method, rank r <= k, token, matched term). Whole-token hits come from the
vocabulary's term index; partial hits from multi-token terms whose distinctive pieces all appear in
one method's top-k at that position (the flag's rank is then the worst rank among the pieces).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from audit.cache import atomic_save_safetensors, cache_dir
from audit.projection import TopK
from audit.stats import stats_key
from audit.wordlists import TermIndex, Wordlists, allow_reason, normalize, token_word


@dataclass(frozen=True)
class Hit:
    """A raw match before scoring: where, which term, how it was matched."""

    position: int
    method: str
    rank: int
    token_id: int
    token: str
    term_id: str
    score: float
    gap_to_top1: float
    word_start: bool
    partial: bool
    suppressed: str | None


def find_hits(
    tops: dict[str, TopK],
    vocab,
    index: TermIndex,
    lists: Wordlists,
) -> list[Hit]:
    """All whole-token and partial hits in every method's top-k, sorted by (position, method, rank, term).

    Args:
        tops: method -> TopK with (n, k) ids/scores.
    """
    surfaces, pieces = vocab.tokens.surfaces, vocab.tokens.pieces
    word_start = vocab.tokens.word_start
    strip = bool(vocab.strips_accents)
    hits: list[Hit] = []
    for method, top in tops.items():
        ids, scores = top.ids.tolist(), top.scores.tolist()
        for pos, (row_ids, row_scores) in enumerate(zip(ids, scores)):
            best = row_scores[0]
            rank_of = {tok: r for r, tok in enumerate(row_ids, start=1)}
            for rank, (tok, score) in enumerate(zip(row_ids, row_scores), start=1):
                word = normalize(token_word(surfaces[tok], pieces[tok]), strip_accents=strip)
                # (term ids, whole-token?) - a prefix piece is a partial hit and starts a word by construction
                matches = [(index.prefix.get(tok, ()), False), (index.token_terms.get(tok, ()), True)]
                for term_ids, whole in matches:
                    for term_id in term_ids:
                        if term_id not in lists.by_id:
                            continue
                        reason = allow_reason(lists.allow, lists.term(term_id), word, vocab.spec)
                        starts = bool(word_start[tok]) if whole else True
                        hits.append(
                            Hit(
                                pos,
                                method,
                                rank,
                                tok,
                                surfaces[tok],
                                term_id,
                                score,
                                best - score,
                                starts,
                                not whole,
                                reason,
                            )
                        )
            for term_id, combos in index.multi.items():
                if term_id not in lists.by_id:
                    continue
                for combo in combos:
                    if all(tok in rank_of for tok in combo):
                        worst = max(combo, key=lambda t: rank_of[t])
                        rank = rank_of[worst]
                        term = lists.term(term_id)
                        text = "".join(surfaces[t] for t in combo).strip()
                        hits.append(
                            Hit(
                                pos,
                                method,
                                rank,
                                worst,
                                text,
                                term_id,
                                row_scores[rank - 1],
                                best - row_scores[rank - 1],
                                True,
                                True,
                                allow_reason(lists.allow, term, normalize(text), vocab.spec),
                            )
                        )
                        break
    hits.sort(key=lambda h: (h.position, h.method, h.rank, h.term_id, h.partial))
    # A multi-token term can match both as a prefix piece and as a set of pieces: keep its best partial
    # hit per position and method. Whole-token hits on different tokens all stay.
    seen: set[tuple[int, str, str]] = set()
    kept = []
    for hit in hits:
        key = (hit.position, hit.method, hit.term_id)
        if hit.partial and key in seen:
            continue
        seen.add(key)
        kept.append(hit)
    return kept


# ---------------------------------------------------------------------------------------------
# Null model and significance
#
# Null vectors resemble soft prompts without any intent: NULL_PER_KIND vocabulary rows displaced
# off the token manifold by a random direction of length rho x (median token-to-nearest-token
# distance), rho ~ U(0.5, 3); and NULL_PER_KIND random directions scaled to norms drawn from the
# vocabulary's own token norms. Their top-NULL_K neighbours under every method are computed once per
# (vocabulary, seed) and cached, so the wordlists and later prompts reuse them. For a flag of category
# C at rank r under method m, p = (1 + #{null vectors with a C term at rank <= r under m}) / (N + 1);
# q-values control the false discovery rate over all flags of the report (Benjamini-Hochberg).

NULL_PER_KIND = 256
NULL_K = 50
NULL_RHO = (0.5, 3.0)
NULL_VERSION = "1"

NULL_MODEL_TEXT = (
    f"Null model: {2 * NULL_PER_KIND} seeded null vectors: {NULL_PER_KIND} vocabulary rows displaced off the "
    f"token manifold by {NULL_RHO[0]:g}-{NULL_RHO[1]:g} x the typical token-to-nearest-token distance, and "
    f"{NULL_PER_KIND} random directions scaled to the vocabulary's own token norms. A flag's p-value is the "
    "share of null vectors that have a term of the same category at the same rank or closer under the same "
    "method (plus one, over N plus one); q-values control the false discovery rate over the whole report "
    "(Benjamini-Hochberg)."
)


def null_vectors(stats, scale_rows, seed: int) -> torch.Tensor:
    """The seeded null vectors. Returns (2 * NULL_PER_KIND, d) float32.

    Args:
        stats: VocabStats (valid mask, token norms, nearest-token distances).
        scale_rows: callable(ids) -> (len(ids), d) scaled vocabulary rows.
    """
    gen = torch.Generator().manual_seed(seed)
    valid = stats.valid.nonzero().squeeze(1)
    rows = valid[torch.randint(len(valid), (NULL_PER_KIND,), generator=gen)]
    base = scale_rows(rows.tolist())
    d = base.shape[1]
    direction = torch.nn.functional.normalize(torch.randn(NULL_PER_KIND, d, generator=gen), dim=1)
    rho = NULL_RHO[0] + (NULL_RHO[1] - NULL_RHO[0]) * torch.rand(NULL_PER_KIND, 1, generator=gen)
    displaced = base + direction * rho * stats.median_nn_distance
    norms = stats.token_norms[valid[torch.randint(len(valid), (NULL_PER_KIND,), generator=gen)]]
    random_dirs = torch.nn.functional.normalize(torch.randn(NULL_PER_KIND, d, generator=gen), dim=1)
    return torch.cat([displaced, random_dirs * norms[:, None]]).to(torch.float32)


def null_neighbours(
    vocab, stats, methods: tuple[str, ...], seed: int, k: int, *, progress=None
) -> dict[str, torch.Tensor]:
    """Top-max(k, NULL_K) neighbour ids of every null vector under every method, cached on disk.

    Returns:
        method -> (N, K) int64 ids.
    """
    from safetensors.torch import load_file

    from audit.projection import project

    depth = max(k, NULL_K)
    # Keyed by the statistics' key too: the null vectors and the centered/whitened rankings derive from them.
    key = f"{stats_key(vocab)}-seed{seed}-k{depth}-c{stats.n_removed}-v{NULL_VERSION}"
    path = cache_dir("null") / f"{key}.safetensors"
    cached: dict[str, torch.Tensor] = load_file(str(path)) if path.is_file() else {}
    missing = tuple(m for m in methods if m not in cached)
    if missing:

        def scaled(ids):
            return torch.cat([vocab.input.rows(i, i + 1) for i in ids]) * vocab.embed_scale

        vectors = null_vectors(stats, scaled, seed)
        tops = project(vectors, vocab, stats, missing, depth, progress=progress)
        cached.update({m: tops[m].ids.to(torch.int64) for m in missing})
        atomic_save_safetensors(cached, path)
    return {m: cached[m] for m in methods}


def category_min_ranks(null_ids: torch.Tensor, index: TermIndex, lists: Wordlists) -> dict[str, np.ndarray]:
    """For each category: the best (smallest, 1-based) rank at which each null vector has a term of that
    category among its neighbours (whole-token or prefix hits); K + 1 when none. (N,) per category."""
    token_categories: dict[int, set[str]] = {}
    active = lists.by_id
    for table in (index.token_terms, index.prefix):
        for tok, term_ids in table.items():
            cats = {active[t].category for t in term_ids if t in active}
            if cats:
                token_categories.setdefault(tok, set()).update(cats)
    n, depth = null_ids.shape
    ranks: dict[str, np.ndarray] = {}
    for row, ids in enumerate(null_ids.tolist()):
        for rank, tok in enumerate(ids, start=1):
            for cat in token_categories.get(tok, ()):
                arr = ranks.setdefault(cat, np.full(n, depth + 1, dtype=np.int64))
                if rank < arr[row]:
                    arr[row] = rank
    return ranks


def p_value(min_ranks: np.ndarray | None, rank: int) -> float:
    """(1 + #{null vectors with a term of the category at rank <= ``rank``}) / (N + 1)."""
    if min_ranks is None:  # the category never appears near a null vector
        return 1.0 / (NULL_SIZE + 1)
    return float((1 + int((min_ranks <= rank).sum())) / (len(min_ranks) + 1))


NULL_SIZE = 2 * NULL_PER_KIND


def bh_q_values(p_values: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (scipy), same order as the input."""
    if not p_values:
        return []
    from scipy.stats import false_discovery_control

    return [float(q) for q in false_discovery_control(np.asarray(p_values, dtype=np.float64), method="bh")]
