"""The faithful-reading search: the discrete prompt of the soft prompt's length whose decisions agree
most with the soft prompt's (``--faithful-reading``).

Method (docs/behaviour.md, "The most faithful reading"): start from the best projection (most decisions
in agreement on the whole suite, then the smallest KL); on a seeded sample of the renderings, stratified
by template label and by the soft prompt's decision, swap one position's token at a time. The candidate
tokens of a position are the union of every method's top-k neighbours there and the tokens a gradient
step suggests (the gradient of the agreement loss, mean KL(P_soft || P_text), with respect to the
position's row, dotted with every token's embedding: GCG's ranking). All candidate swaps are ranked by
that first-order estimate of the loss change; the best of them are screened on the gradient's texts,
the most promising run on the sample, and the best is kept when it agrees on more sampled decisions (or
as many with a smaller KL). The search stops when a round of swaps gains nothing twice, when every
sampled decision agrees, when the budget (suite-run equivalents of texts scored) or the wall-time limit
is reached; the winner is then run on the whole suite and reported only if it beats the
best projection there: the search never returns a reading less faithful than the best projection.
Everything is seeded and deterministic (a wall-time limit that is reached is the only exception, and
the record says so). A search finds a good text, not the best one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from audit.behaviour.stats.agreement import bernoulli_kl
from audit.config import DEFAULT_FAITHFUL_BUDGET

SAMPLE_SHARE = 8  # the search sample is 1/SAMPLE_SHARE of the renderings reported on ...
SAMPLE_MIN, SAMPLE_MAX = 64, 384  # ... within these bounds
GRADIENT_ROWS = 48  # texts of the sample the gradient is taken on
GRADIENT_COST = 3  # a gradient text costs a forward and a backward pass: about 3 forward texts
SCREENED_PER_ROUND = 24  # candidate swaps run on the gradient's texts per round (the screen) ...
SWAPS_PER_ROUND = 3  # ... of which the best that beat the current text there run on the whole sample
GRADIENT_TOP = 16  # tokens the gradient suggests per position, beside the methods' neighbours
SCREEN_TEMPLATES = 4  # templates of each label the gradient's texts come from (shared prefixes)
PATIENCE = 2  # rounds without a gain before the search stops
SEARCH_METHOD = (
    "greedy coordinate search from the best projection: candidates per position = every method's top-k "
    f"neighbours + the {GRADIENT_TOP} tokens the gradient of the agreement loss (mean KL(P_soft || P_text)) "
    f"ranks best (GCG-style, on {GRADIENT_ROWS} sampled texts); per round the {SCREENED_PER_ROUND} swaps "
    f"with the best first-order estimate are screened on those texts and the {SWAPS_PER_ROUND} best of them "
    "run on a "
    "seeded sample stratified by template label and soft-prompt decision; a swap is kept when it agrees on "
    "more sampled decisions (ties: smaller KL); the winner is confirmed on every rendering reported on and "
    "kept only if it beats the best projection there"
)


@dataclass(frozen=True)
class Budget:
    """What a search may spend: ``runs`` suite-run equivalents of texts scored (forward passes; a
    gradient text counts GRADIENT_COST), and ``seconds`` of wall time (None: no limit)."""

    runs: float = DEFAULT_FAITHFUL_BUDGET
    seconds: float | None = None


@dataclass(frozen=True)
class Swap:
    """One kept step: ``position`` now holds ``token_id`` (it held ``previous``); the sample's
    agreement and KL after it."""

    position: int
    previous: int
    token_id: int
    agreement: float
    kl: float


@dataclass(frozen=True)
class Outcome:
    """A search's result. ``token_ids``: the reported text (the start when the search found nothing
    better on the whole suite); ``log_odds``: (n_texts,) its log-odds on every rendering reported on;
    ``improved``: whether it beats the start there; ``stopped``: converged, budget or time."""

    token_ids: tuple[int, ...]
    start: int  # index of the starting projection among the given starts
    log_odds: np.ndarray
    improved: bool
    swaps: tuple[Swap, ...]
    sample_size: int
    gradient_size: int
    evaluated: int  # candidate prompts run on the whole sample
    screened: int  # candidate prompts run on the gradient's texts
    gradients: int  # gradient passes
    texts_scored: int  # forward-pass texts, a gradient text counted GRADIENT_COST times
    suite_runs: float  # texts_scored / texts reported on
    stopped: str


def key(lo_soft: np.ndarray, lo_text: np.ndarray) -> tuple[int, float]:
    """Order of faithfulness: decisions in agreement, then the smaller mean KL (larger key is better).

    Args:
        lo_soft, lo_text: (n,) log-odds on the same texts.
    """
    agree = int(np.count_nonzero((lo_soft > 0) == (lo_text > 0)))
    return agree, -float(bernoulli_kl(lo_soft, lo_text).mean())


def stratified_sample(labels: np.ndarray, soft: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` rows drawn without replacement, proportionally from each (label, soft decision) stratum
    (largest remainders; every non-empty stratum at least one row while ``size`` allows).

    Args:
        labels: (n,) template labels (+1, -1, 0); soft: (n,) the soft prompt's log-odds.
    Returns:
        (min(size, n),) sorted row indices.
    """
    n = len(labels)
    size = min(size, n)
    strata = np.asarray(labels, dtype=np.int64) * 2 + (np.asarray(soft) > 0)
    kinds, counts = np.unique(strata, return_counts=True)
    exact = counts * size / n
    take = np.minimum(np.maximum(np.floor(exact).astype(np.int64), 1), counts)
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    k = 0
    while take.sum() < size:
        i = order[k % len(order)]
        if take[i] < counts[i]:
            take[i] += 1
        k += 1
    while take.sum() > size:  # the minimum of one row overshot: trim the largest strata
        take[np.argmax(take)] -= 1
    rng = np.random.default_rng([seed, 0xFA17])
    rows = [rng.choice(np.flatnonzero(strata == s), size=t, replace=False) for s, t in zip(kinds, take)]
    return np.sort(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int64)


def screen_rows(
    sample: np.ndarray,
    labels: np.ndarray,
    soft: np.ndarray,
    templates: np.ndarray | None,
    size: int,
    seed: int,
) -> np.ndarray:
    """The gradient's texts, on which candidate swaps are screened: ``size`` rows of ``sample`` from
    SCREEN_TEMPLATES seeded templates of each label, stratified by label and the soft prompt's decision.
    Few templates, so that renderings share their template's prefix (the runner runs it once): 48 texts
    drawn from all 16 hiring-es templates cost 178 ms each on Gemma 3 270M here, against 84 ms for a
    whole-suite text (benchmarks/README.md, bench_faithful.py).

    Args:
        sample: (m,) sorted row indices; labels, soft, templates: (n_texts,) each text's template label,
            the soft prompt's log-odds and the template index (None: the whole sample is the pool).
    Returns:
        sorted row indices (at most ``size``).
    """
    pool = sample
    if templates is not None:
        rng = np.random.default_rng([seed, 0x5C7E])
        chosen = []
        for label in np.unique(labels[sample]):
            own = np.unique(templates[sample][labels[sample] == label])
            chosen += rng.permutation(own)[:SCREEN_TEMPLATES].tolist()
        pool = sample[np.isin(templates[sample], chosen)]
    return pool[stratified_sample(labels[pool], soft[pool], size, seed)]


def ranked_swaps(
    current: tuple[int, ...],
    neighbours: tuple[tuple[int, ...], ...],
    scores: torch.Tensor,
    rankable: torch.Tensor,
) -> list[tuple[float, int, int]]:
    """Every candidate swap (estimated loss change, position, token), best (most negative) first.

    Args:
        current: (n,) the current token ids.
        neighbours: per position, the methods' top-k token ids.
        scores: (V, n) ``embedding(v) . grad_i`` for every token v and position i.
        rankable: (V,) bool: tokens the gradient may suggest (no control or placeholder tokens).
    """
    masked = scores.masked_fill(~rankable[:, None], float("inf"))
    k = min(GRADIENT_TOP, int(rankable.sum()))
    suggested = torch.topk(-masked, k, dim=0).indices  # (k, n)
    out = []
    for i, now in enumerate(current):
        pool = dict.fromkeys(list(neighbours[i]) + suggested[:, i].tolist())
        base = float(scores[now, i])
        out += [(float(scores[v, i]) - base, i, int(v)) for v in pool if v != now]
    return sorted(out)


def _one_by_one(evaluate: Callable) -> Callable[[list[tuple[int, ...]], np.ndarray], np.ndarray]:
    """A screen that runs each candidate alone."""
    return lambda candidates, rows: np.stack([evaluate(c, rows) for c in candidates])


def _swap(ids: tuple[int, ...], position: int, token: int) -> tuple[int, ...]:
    return ids[:position] + (token,) + ids[position + 1 :]


def search(
    starts: list[tuple[tuple[int, ...], np.ndarray]],
    lo_soft: np.ndarray,
    labels: np.ndarray,
    neighbours: tuple[tuple[int, ...], ...],
    evaluate: Callable[[tuple[int, ...], np.ndarray | None], np.ndarray],
    gradient: Callable[[tuple[int, ...], np.ndarray], torch.Tensor],
    rankable: torch.Tensor,
    *,
    budget: Budget,
    seed: int,
    templates: np.ndarray | None = None,
    screen: Callable[[list[tuple[int, ...]], np.ndarray], np.ndarray] | None = None,
    spent: Callable[[int], object] | None = None,
) -> Outcome:
    """The search (module docstring).

    Args:
        starts: the projections, each (token ids, (n_texts,) log-odds on every rendering reported on).
        lo_soft: (n_texts,) the soft prompt's log-odds there; labels: (n_texts,) template labels.
        neighbours: per position, the methods' top-k token ids.
        evaluate: (token ids, rows or None for all) -> log-odds of those texts.
        gradient: (token ids, rows) -> (V, n) scores ``embedding(v) . grad_i`` of the agreement loss.
        rankable: (V,) bool mask of the tokens the gradient may suggest.
        templates: (n_texts,) each text's template (default: the gradient's texts from any template).
        screen: (candidates, rows) -> (len(candidates), len(rows)) log-odds, the candidates run together
            (default: ``evaluate`` on each).
        spent: called with each cost in texts (progress).
    """
    t0, n = time.perf_counter(), len(lo_soft)
    screen = screen or _one_by_one(evaluate)
    first = max(range(len(starts)), key=lambda i: (key(lo_soft, starts[i][1]), -i))
    current = starts[first][0]
    sample = stratified_sample(labels, lo_soft, int(np.clip(n // SAMPLE_SHARE, SAMPLE_MIN, SAMPLE_MAX)), seed)
    grad_rows = screen_rows(sample, labels, lo_soft, templates, GRADIENT_ROWS, seed + 1)
    sub = np.searchsorted(sample, grad_rows)  # positions of the gradient's texts within the sample
    allowed = int(budget.runs * n) - n  # one whole-suite run is kept for the confirmation
    cost = {"texts": 0, "evaluated": 0, "screened": 0, "gradients": 0}

    def pay(texts: int) -> None:
        cost["texts"] += texts
        if spent is not None:
            spent(texts)

    target, screen_target = lo_soft[sample], lo_soft[grad_rows]
    best, swaps, stopped, now = None, [], "converged", None
    if allowed >= len(sample):
        pay(len(sample))
        now = evaluate(current, sample)  # (len(sample),) the current text's log-odds
        best = key(target, now)
    ranking, tried, idle = None, set(), 0
    while best is not None:
        if budget.seconds is not None and time.perf_counter() - t0 > budget.seconds:
            stopped = "time"
            break
        if ranking is None:
            if cost["texts"] + GRADIENT_COST * len(grad_rows) > allowed:
                stopped = "budget"
                break
            pay(GRADIENT_COST * len(grad_rows))
            cost["gradients"] += 1
            ranking = ranked_swaps(current, neighbours, gradient(current, grad_rows), rankable)
        batch = [(i, v) for _, i, v in ranking if (i, v) not in tried][:SCREENED_PER_ROUND]
        if not batch:
            break
        batch = batch[: max(0, (allowed - cost["texts"] - len(sample)) // len(grad_rows))]
        if not batch:  # not one screen and one sample run left
            stopped = "budget"
            break
        # Screen the batch on the gradient's texts; run the most promising on the whole sample.
        here = key(screen_target, now[sub])
        tried.update(batch)
        pay(len(grad_rows) * len(batch))
        cost["screened"] += len(batch)
        runs = screen([_swap(current, i, v) for i, v in batch], grad_rows)  # (len(batch), len(grad_rows))
        screened = [(k, i, v) for (i, v), lo in zip(batch, runs) if (k := key(screen_target, lo)) > here]
        gained = None
        for _, i, v in sorted(screened, reverse=True)[:SWAPS_PER_ROUND]:
            if cost["texts"] + len(sample) > allowed:
                stopped = "budget"
                break
            pay(len(sample))
            cost["evaluated"] += 1
            lo = evaluate(_swap(current, i, v), sample)
            k = key(target, lo)
            if k > best and (gained is None or k > gained[0]):
                gained = (k, i, v, lo)
        if gained is None:
            idle += 1
            if idle >= PATIENCE or stopped == "budget":
                break
            continue
        k, i, v, now = gained
        swaps.append(Swap(i, current[i], v, k[0] / len(sample), -k[1]))
        current, best, ranking, tried, idle = _swap(current, i, v), k, None, set(), 0
        if k[0] == len(sample):  # every sampled decision agrees: KL alone would not be worth the runs
            break
    start_ids, start_lo = starts[first]
    lo, improved = start_lo, False
    if current != start_ids:
        pay(n)
        lo_found = evaluate(current, None)
        if key(lo_soft, lo_found) > key(lo_soft, start_lo):
            lo, improved = lo_found, True
    return Outcome(
        token_ids=current if improved else start_ids,
        start=first,
        log_odds=lo,
        improved=improved,
        swaps=tuple(swaps) if improved else (),
        sample_size=len(sample),
        gradient_size=len(grad_rows),
        evaluated=cost["evaluated"],
        screened=cost["screened"],
        gradients=cost["gradients"],
        texts_scored=cost["texts"],
        suite_runs=cost["texts"] / n,
        stopped=stopped,
    )
