"""The gradient of the agreement loss with respect to a prompt's rows: what the faithful-reading search
(audit.behaviour.faithful) uses to rank token swaps, as PEZ and GCG use it.

The loss is the mean Bernoulli KL(P_soft || P_prompt) of the two-answer distribution over some texts:
zero when the prompt answers as the soft prompt does, large when it decides the other way with
confidence; a smooth stand-in for disagreement. Each text runs as the runner runs it
(``[prompt][text]``, positions ``0..n-1``), here as plain right-padded batches without the prefix cache,
so that autograd sees one graph per batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from audit.behaviour.lm import CausalLM
from audit.behaviour.plan import build_rows
from audit.behaviour.runner import check_answers, check_prompt

GRADIENT_BATCH = 16  # rows per forward/backward pass


def bernoulli_kl_torch(lo_p: torch.Tensor, lo_q: torch.Tensor) -> torch.Tensor:
    """KL(P || Q) in nats per element for two-outcome distributions given by log-odds (the formula of
    :func:`audit.behaviour.stats.agreement.bernoulli_kl`, differentiable in ``lo_q``)."""
    sp = torch.nn.functional.softplus
    return sp(-lo_q) - sp(-lo_p) + torch.sigmoid(-lo_p) * (lo_q - lo_p)


def agreement_loss_grad(
    lm: CausalLM,
    prompt: torch.Tensor,
    texts: Sequence[str],
    answers: tuple[Sequence[int], Sequence[int]],
    target: np.ndarray,
) -> tuple[float, torch.Tensor]:
    """The agreement loss of ``prompt`` on ``texts`` and its gradient with respect to the prompt's rows.

    Args:
        prompt: (n_virtual, d_model) float32 rows in the scaled embedding space.
        texts: the inputs (tokenized with special tokens, as the runner does).
        answers: (positive, negative) token ids.
        target: (len(texts),) the soft prompt's log-odds on the same texts.

    Returns:
        (loss in nats, (n_virtual, d_model) float32 gradient on the CPU).
    """
    rows_prompt = check_prompt(lm, prompt).detach().clone().requires_grad_(True)
    positive, negative = check_answers(lm, answers)
    single = len(positive) == 1 and len(negative) == 1
    encoded = [list(ids) for ids in lm.tokenizer(list(texts), add_special_tokens=True)["input_ids"]]
    rows = build_rows(encoded, (positive, negative))
    goal = torch.as_tensor(np.asarray(target, dtype=np.float64), dtype=torch.float32, device=lm.device)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    n_texts = len(texts)
    with torch.enable_grad():
        values = torch.zeros(n_texts, 2, device=lm.device)
        for begin in range(0, len(rows), GRADIENT_BATCH):
            chunk = rows[begin : begin + GRADIENT_BATCH]
            values = values + _chunk_values(lm, rows_prompt, chunk, n_texts, pad, single)
        lo = values[:, 0] - values[:, 1]
        loss = bernoulli_kl_torch(goal, lo).mean()
        loss.backward()
    return float(loss.detach()), rows_prompt.grad.detach().float().cpu()


def _chunk_values(lm: CausalLM, prompt: torch.Tensor, chunk, n_texts: int, pad: int, single: bool):
    """(n_texts, 2) the answer logits (log-probs when an answer has several tokens) the rows of
    ``chunk`` read, zero elsewhere, differentiable in ``prompt``."""
    n_prompt = prompt.shape[0]
    width = max(len(r.tokens) for r in chunk)
    ids = torch.full((len(chunk), width), pad, dtype=torch.long)
    mask = torch.zeros(len(chunk), n_prompt + width, dtype=torch.long)
    mask[:, :n_prompt] = 1
    for b, row in enumerate(chunk):
        ids[b, : len(row.tokens)] = torch.tensor(row.tokens, dtype=torch.long)
        mask[b, n_prompt : n_prompt + len(row.tokens)] = 1
    embeds = torch.cat([prompt[None].expand(len(chunk), -1, -1), lm.embed(ids)], dim=1)
    hidden = lm.body(
        inputs_embeds=embeds,
        attention_mask=mask.to(lm.device),
        position_ids=torch.arange(n_prompt + width, device=lm.device)[None].expand(len(chunk), -1),
        use_cache=False,
    ).last_hidden_state
    reads = [
        (b, n_prompt + pos, tok, text, answer)
        for b, row in enumerate(chunk)
        for pos, tok, text, answer in row.reads
    ]
    batch = torch.tensor([r[0] for r in reads], device=lm.device)
    where = torch.tensor([r[1] for r in reads], device=lm.device)
    tokens = torch.tensor([r[2] for r in reads], device=lm.device)
    states = hidden[batch, where]
    if single:
        read = lm.token_logits(states, tokens).float()
    else:
        logits = lm.logits(states).float()
        read = (logits - torch.logsumexp(logits, dim=-1, keepdim=True)).gather(1, tokens[:, None])[:, 0]
    flat = torch.tensor([r[3] * 2 + r[4] for r in reads], device=lm.device)
    return torch.zeros(n_texts * 2, device=lm.device).index_add(0, flat, read).view(n_texts, 2)
