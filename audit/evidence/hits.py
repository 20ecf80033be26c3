"""Flags: neighbours of a prompt position that spell a sensitive term.

A flag is (position, method, rank r <= k, token, matched term). Whole-token hits come from the
vocabulary's term index; partial hits from multi-token terms whose distinctive pieces all appear in
one method's top-k at that position (the flag's rank is then the worst rank among the pieces).
"""

from __future__ import annotations

from audit.geometry.engine import TopK
from audit.records import Hit
from audit.terms.match import TermIndex, allow_reason, normalize, token_word
from audit.terms.schema import Wordlists


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
