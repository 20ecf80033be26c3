"""The behavioural stage's faithful-reading step (``--faithful-reading``): the search of
:mod:`audit.behaviour.faithful` run on the loaded model, and its record.

The search's texts run through the stage's ``run`` (cached like every run, keyed by the prompt rows and
the texts; a screen runs every candidate of a round together as one stack), its gradients through
:func:`audit.behaviour.gradient.agreement_loss_grad`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from audit.behaviour.assemble import Probes, reading_record
from audit.behaviour.faithful import SEARCH_METHOD, Budget, Outcome, search
from audit.behaviour.gradient import agreement_loss_grad
from audit.behaviour.hypotheses import Hypotheses, ReadingProbe
from audit.behaviour.lm import CausalLM
from audit.config import AuditConfig
from audit.progress import progress_bar
from audit.records import FaithfulSearch, FoundReading, ReadingChange, SearchSwap

FOUND_KEY = "reading:found"  # the found reading's unit when it is a text no projection read
NEAREST_METHOD = "l2"  # the nearest-token reading (Lester et al.; PEZ's projection step is its cosine twin)


def rows_prompt(lm: CausalLM, ids: tuple[int, ...]) -> torch.Tensor:
    """(len(ids), d_model) float32: the tokens' embeddings, as a reading is run."""
    with torch.no_grad():
        return lm.embed(torch.tensor(ids, dtype=torch.long)).float().cpu()


def find_reading(
    lm: CausalLM,
    hyp: Hypotheses,
    probe: Probes,
    answers: tuple[list[int], list[int]],
    log_odds: dict[str, np.ndarray],
    run: Callable[[str, torch.Tensor, np.ndarray | None], np.ndarray],
    keys: list[str],
    config: AuditConfig,
) -> Outcome:
    """Searches from the readings ``hyp.readings`` (their whole-suite log-odds ``log_odds[keys[i]]``)
    for the text that behaves most like the soft prompt (``log_odds["soft_prompt"]``)."""
    lo_soft = log_odds["soft_prompt"]
    weight = lm.model.get_input_embeddings().weight  # (V, d) unscaled rows
    rankable = _rankable(hyp.rankable, weight.shape[0])

    def evaluate(ids: tuple[int, ...], rows: np.ndarray | None) -> np.ndarray:
        return run("faithful-reading candidate", rows_prompt(lm, ids), rows)

    def screen(candidates: list[tuple[int, ...]], rows: np.ndarray) -> np.ndarray:
        return run("faithful-reading screen", torch.stack([rows_prompt(lm, ids) for ids in candidates]), rows)

    def gradient(ids: tuple[int, ...], rows: np.ndarray) -> torch.Tensor:
        texts = [probe.texts[int(r)] for r in rows]
        _, grad = agreement_loss_grad(lm, rows_prompt(lm, ids), texts, answers, lo_soft[rows])
        with torch.no_grad():  # (V, n): embedding(v) . grad_i, the first-order change of the loss
            return (weight.float() @ grad.to(weight.device).T).cpu() * lm.embed_scale

    starts = [(r.token_ids, log_odds[k]) for r, k in zip(hyp.readings, keys)]
    n = len(probe.texts)
    budget = Budget(config.faithful_budget, config.faithful_seconds)
    with progress_bar(
        "faithful reading search", int(budget.runs * n), enabled=config.progress, unit="text"
    ) as bar:
        return search(
            starts,
            lo_soft,
            probe.labels,
            hyp.neighbours,
            evaluate,
            gradient,
            rankable,
            budget=budget,
            seed=config.seed,
            templates=text_templates(probe),
            screen=screen,
            spent=bar.update,
        )


def text_templates(probe: Probes) -> np.ndarray:
    """(n_texts,) the template each text renders."""
    out = np.zeros(len(probe.texts), dtype=np.int64)
    for rendering, row in zip(probe.renderings, probe.index):
        out[row] = rendering.template
    return out


def _rankable(mask: np.ndarray | None, rows: int) -> torch.Tensor:
    """(rows,) bool: the vocabulary's rankable tokens, False for embedding rows past the tokenizer."""
    out = torch.zeros(rows, dtype=torch.bool)
    if mask is None:
        out[:] = True
        return out
    k = min(rows, len(mask))
    out[:k] = torch.from_numpy(np.asarray(mask[:k], dtype=bool))
    return out


def found_record(
    outcome: Outcome,
    hyp: Hypotheses,
    lm: CausalLM,
    probe: Probes,
    lo_soft: np.ndarray,
    stats,
    evidence,
    config: AuditConfig,
) -> FoundReading:
    """The found reading's record (its flags are added by the engine, which holds the wordlists)."""
    start = hyp.readings[outcome.start]
    nearest = _nearest(hyp.readings)
    f = reading_record(start, probe, lo_soft, outcome.log_odds, stats, evidence)  # the reading columns
    token = _token_text(lm)
    ids = outcome.token_ids
    return FoundReading(
        text=lm.tokenizer.decode(list(ids), clean_up_tokenization_spaces=False),
        token_ids=ids,
        tokens=tuple(token(i) for i in ids),
        agreement=f.agreement,
        kl=f.kl,
        accuracy=f.accuracy,
        faithful=f.faithful,
        attributes=f.attributes,
        nearest_methods=nearest.methods,
        changes=tuple(
            ReadingChange(i, token(a), token(b))
            for i, (a, b) in enumerate(zip(nearest.token_ids, ids))
            if a != b
        ),
        flags=(),
        search=FaithfulSearch(
            method=SEARCH_METHOD,
            start_methods=start.methods,
            improved=outcome.improved,
            budget_runs=config.faithful_budget,
            max_seconds=config.faithful_seconds,
            stopped=outcome.stopped,
            sample_size=outcome.sample_size,
            gradient_size=outcome.gradient_size,
            screened=outcome.screened,
            evaluated=outcome.evaluated,
            gradients=outcome.gradients,
            texts_scored=outcome.texts_scored,
            suite_runs=round(outcome.suite_runs, 4),
            swaps=tuple(
                SearchSwap(s.position, token(s.previous), token(s.token_id), s.agreement, s.kl)
                for s in outcome.swaps
            ),
        ),
    )


def _nearest(readings: tuple[ReadingProbe, ...]) -> ReadingProbe:
    return next((r for r in readings if NEAREST_METHOD in r.methods), readings[0])


def _token_text(lm: CausalLM) -> Callable[[int], str]:
    return lambda i: lm.tokenizer.decode([int(i)], clean_up_tokenization_spaces=False)
