"""The behavioural stage's model runner: answer log-probs of a causal LM with a prompt in front.

Each text is run as PEFT's ``PeftModelForCausalLM.forward`` runs it for PROMPT_TUNING:
``inputs_embeds = cat(prompt, embed(tokenizer(text).input_ids))``, the attention mask extended with
ones, positions ``0..n-1`` over the whole sequence. The prompt rows are used as stored (a PEFT prompt
already lives in the embedding module's scaled space). The work is cut three ways, as
lm-evaluation-harness does it:

* only the positions that predict an answer token get logits (one full-vocabulary row each, for the
  log-sum-exp); the decoder stack runs without its output layer;
* both answers are read from one pass when they are single tokens; a multi-token answer is scored
  by teacher forcing (its tokens but the last appended, log-probs summed);
* texts that share a token prefix (renderings of one template) are grouped: ``[prompt][prefix]``
  runs once, and the differing suffixes run as right-padded batches on top of its cached keys and
  values. The grouping is planned from the token ids alone (:func:`plan_groups`), so callers just
  pass texts.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence

import numpy as np
import torch

from audit.behaviour.lm import CausalLM
from audit.behaviour.plan import Group, build_rows, plan_groups
from audit.errors import AuditInputError

DEFAULT_BATCH_SIZE = 64  # suffix rows per forward pass (a hiring-es group is 48); see benchmarks/BEHAVIOUR.md
LOGIT_ROWS = 64  # full-vocabulary logit rows computed at once (64 x 262144 float32 = 64 MiB)


def text_prompt(lm: CausalLM, text: str) -> torch.Tensor:
    """A plain-text prompt in the same space as a soft prompt: the embeddings (scaled as the embedding
    module returns them) of ``text``'s tokens, without special tokens.

    Returns:
        (m, d_model) float32 on the CPU; m may be 0.
    """
    ids = list(lm.tokenizer(text, add_special_tokens=False)["input_ids"])
    if not ids:
        return torch.zeros(0, lm.d_model)
    with torch.no_grad():  # not inference_mode: callers may edit the rows (ablations)
        return lm.embed(torch.tensor(ids)).float().cpu()


def answer_log_odds(
    lm: CausalLM,
    prompt: torch.Tensor,
    texts: Sequence[str],
    answers: tuple[Sequence[int], Sequence[int]],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], object] | None = None,
) -> np.ndarray:
    """``log P(positive) - log P(negative)`` after ``[prompt][text]``, as :func:`answer_logprobs` gives
    it. When both answers are single tokens the log-softmax normaliser cancels, so only the two answer
    rows of the output matrix are computed (not the full-vocabulary row per text).

    Returns:
        (len(texts),) float64.
    """
    return _log_odds(lm, check_prompt(lm, prompt)[None], texts, answers, batch_size, progress)[0]


def answer_logprobs(
    lm: CausalLM,
    prompt: torch.Tensor,
    texts: Sequence[str],
    answers: tuple[Sequence[int], Sequence[int]],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], object] | None = None,
    normalise: bool = True,
) -> np.ndarray:
    """Summed log-probs of the positive and the negative answer after ``[prompt][text]``.

    Args:
        lm: the loaded causal LM.
        prompt: (n_virtual, d_model) float32 prompt vectors in the scaled embedding space; 0 rows
            for no prompt.
        texts: the inputs, each tokenized with special tokens (``<bos>`` first on Gemma), as
            ``model(**tokenizer(text))`` does.
        answers: (positive, negative) token ids of each answer continuation (one or more tokens).
        batch_size: suffix rows per forward pass.
        progress: called with the number of texts finished since the last call.
        normalise: False returns the answer tokens' logits (summed) instead of log-probs, computing
            only their rows of the output matrix: their differences are the log-odds when both
            answers are single tokens (what :func:`answer_log_odds` uses).

    Returns:
        (len(texts), 2) float64: log P(positive | ...), log P(negative | ...) (logits when not
        ``normalise``).
    """
    vectors = check_prompt(lm, prompt)
    return _logprobs(lm, vectors[None], texts, answers, batch_size, progress, normalise)[0]


def answer_log_odds_many(
    lm: CausalLM,
    prompts: torch.Tensor,
    texts: Sequence[str],
    answers: tuple[Sequence[int], Sequence[int]],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """The log-odds of several prompts of one length on the same texts, run together: each group's
    ``[prompt][prefix]`` pass takes every prompt as one batch, and each suffix batch holds every prompt's
    copy of its rows. What the faithful-reading search screens its candidates with: many prompts on a few
    texts, where one prompt at a time would run many tiny batches. The figures equal
    :func:`answer_log_odds`'s to float rounding (other batch shapes), not bit for bit.

    Args:
        prompts: (n_prompts, n_virtual, d_model) float32 prompt vectors.

    Returns:
        (n_prompts, len(texts)) float64.
    """
    if not torch.is_tensor(prompts) or prompts.ndim != 3:
        shape = tuple(prompts.shape) if hasattr(prompts, "shape") else type(prompts).__name__
        raise AuditInputError(f"prompts must be a (n_prompts, n_virtual, d_model) stack, got {shape}")
    stacked = torch.stack([check_prompt(lm, p) for p in prompts]) if len(prompts) else prompts
    return _log_odds(lm, stacked, texts, answers, batch_size, None)


def _log_odds(lm, prompts, texts, answers, batch_size, progress) -> np.ndarray:
    """(n_prompts, len(texts)) log-odds of checked prompts (n_prompts, n_virtual, d_model)."""
    single = all(len(list(a)) == 1 for a in answers)
    lp = _logprobs(lm, prompts, texts, answers, batch_size, progress, not single)
    return lp[..., 0] - lp[..., 1]


def _logprobs(
    lm: CausalLM,
    prompts: torch.Tensor,
    texts: Sequence[str],
    answers: tuple[Sequence[int], Sequence[int]],
    batch_size: int,
    progress: Callable[[int], object] | None,
    normalise: bool,
) -> np.ndarray:
    """(n_prompts, len(texts), 2) :func:`answer_logprobs` for each of ``prompts`` (n_prompts, n_virtual,
    d_model), already checked; ``progress`` counts (prompt, text) pairs."""
    answer_ids = check_answers(lm, answers)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n_prompts = prompts.shape[0]
    out = np.zeros((n_prompts * len(texts), 2), dtype=np.float64)  # row p * len(texts) + text
    if not texts or n_prompts == 0:
        return out.reshape(n_prompts, len(texts), 2)
    encoded = [list(ids) for ids in lm.tokenizer(list(texts), add_special_tokens=True)["input_ids"]]
    for index, ids in enumerate(encoded):
        if not ids:
            raise AuditInputError(
                f"text {index} ({texts[index][:40]!r}) has no tokens", "probe texts must not be empty"
            )
    rows = build_rows(encoded, answer_ids)
    _check_length(lm, prompts.shape[1] + max(len(r.tokens) for r in rows))
    pending = np.zeros(len(out), dtype=np.int64)  # answer tokens still to read, per (prompt, text)
    for row in rows:
        for _, _, text, _ in row.reads:
            pending[text :: len(texts)] += 1

    def read(texts_read: list[int]) -> None:
        finished = 0
        for text in texts_read:
            pending[text] -= 1
            finished += int(pending[text] == 0)
        if progress is not None and finished:
            progress(finished)

    with torch.inference_mode():
        for group in plan_groups(rows, prompts.shape[1]):
            _run_group(lm, prompts, group, batch_size, out, read, normalise)
    return out.reshape(n_prompts, len(texts), 2)


# ---------------------------------------------------------------------------------------------
# Checks


def check_prompt(lm: CausalLM, prompt: torch.Tensor) -> torch.Tensor:
    """(n_virtual, d_model) on the model's device in its parameters' dtype (float32 for every model the
    audit loads; bfloat16 for the copy ``benchmarks/bench_precision.py`` measures), or AuditInputError
    naming the mismatch."""
    if not torch.is_tensor(prompt) or prompt.ndim != 2:
        shape = tuple(prompt.shape) if hasattr(prompt, "shape") else type(prompt).__name__
        raise AuditInputError(f"prompt must be a (n_virtual, d_model) matrix, got {shape}")
    if prompt.shape[1] != lm.d_model:
        raise AuditInputError(
            f"prompt has dim {prompt.shape[1]} but model '{lm.spec}' has d_model {lm.d_model}",
            "is this the right base model?",
        )
    if not torch.isfinite(prompt).all():
        raise AuditInputError("prompt holds NaN or infinite values", "check the adapter file")
    return prompt.detach().to(device=lm.device, dtype=lm.model.dtype)


def check_answers(lm: CausalLM, answers: tuple[Sequence[int], Sequence[int]]) -> tuple[list[int], list[int]]:
    if len(answers) != 2:
        raise ValueError(f"answers must be (positive ids, negative ids), got {len(answers)} entries")
    checked = []
    for name, ids in zip(("positive", "negative"), answers):
        ids = [int(i) for i in ids]
        if not ids:
            raise AuditInputError(f"the {name} answer has no tokens", "give the answer as a non-empty string")
        bad = [i for i in ids if not 0 <= i < lm.vocab_size]
        if bad:
            raise AuditInputError(
                f"the {name} answer has token ids {bad} outside the vocabulary (0..{lm.vocab_size - 1})",
                "encode the answers with this model's tokenizer",
            )
        checked.append(ids)
    return checked[0], checked[1]


def _check_length(lm: CausalLM, longest: int) -> None:
    limit = getattr(lm.model.config.get_text_config(), "max_position_embeddings", None)
    if limit is not None and longest > limit:
        raise AuditInputError(
            f"a probe runs {longest} tokens (prompt included) but {lm.spec} has {limit} positions",
            "shorten the probe texts",
        )


def _run_group(
    lm: CausalLM,
    prompts: torch.Tensor,
    group: Group,
    batch_size: int,
    out: np.ndarray,
    read: Callable[[list[int]], None],
    normalise: bool = True,
) -> None:
    """Runs one group under each of ``prompts`` (n_prompts, n_virtual, d_model) and adds the answer
    log-probs into ``out`` (n_prompts * n_texts, 2; row ``p * n_texts + text``); after each batch,
    ``read`` gets that row for every answer token it scored. One prompt runs exactly as it always has:
    a batch of one for the prefix, ``batch_size`` suffix rows a pass."""
    from transformers import DynamicCache

    body = lm.body
    cache_kw = _cache_keyword(body)
    n_prompts, n_texts = prompts.shape[0], len(out) // prompts.shape[0]
    m = group.prefix
    past = prompts.shape[1] + m
    cache = None
    if past > 0:
        prefix_ids = torch.tensor(group.rows[0].tokens[:m], dtype=torch.long)
        prefix = lm.embed(prefix_ids)[None].expand(n_prompts, -1, -1)
        embeds = torch.cat([prompts.to(prefix.dtype), prefix], dim=1)
        cache = DynamicCache(config=lm.model.config)
        body(
            inputs_embeds=embeds,
            attention_mask=torch.ones(n_prompts, past, dtype=torch.long, device=lm.device),
            position_ids=torch.arange(past, device=lm.device)[None].expand(n_prompts, -1),
            use_cache=True,
            **{cache_kw: cache},
        )
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    rows = sorted(group.rows, key=lambda r: -len(r.tokens))  # similar lengths together: little padding
    step = max(1, batch_size // n_prompts)  # rows a pass, each run under every prompt
    for begin in range(0, len(rows), step):
        chunk = rows[begin : begin + step]
        width = max(len(r.tokens) for r in chunk) - m
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros(len(chunk), past + width, dtype=torch.long)
        mask[:, :past] = 1
        for b, row in enumerate(chunk):
            suffix = row.tokens[m:]
            ids[b, : len(suffix)] = torch.tensor(suffix, dtype=torch.long)
            mask[b, past : past + len(suffix)] = 1
        batch = n_prompts * len(chunk)  # prompt-major: row p * len(chunk) + b
        batch_cache = None
        if cache is not None:
            batch_cache = copy.deepcopy(cache)
            batch_cache.batch_repeat_interleave(len(chunk))
        hidden = body(
            inputs_embeds=lm.embed(ids.repeat(n_prompts, 1)),
            attention_mask=mask.repeat(n_prompts, 1).to(lm.device),
            position_ids=(torch.arange(width, device=lm.device) + past)[None].expand(batch, width),
            use_cache=batch_cache is not None,
            **{cache_kw: batch_cache},
        ).last_hidden_state
        reads = [
            (p * len(chunk) + b, pos - m, tok, p * n_texts + text, answer)
            for p in range(n_prompts)
            for b, row in enumerate(chunk)
            for pos, tok, text, answer in row.reads
        ]
        _score(lm, hidden, reads, out, normalise)
        read([text for _, _, _, text, _ in reads])


def _cache_keyword(body: torch.nn.Module) -> str:
    """``cache`` (transformers >= 5.x) or ``past_key_values`` (older): a misspelt keyword would be
    swallowed by ``**kwargs`` and the cached prefix silently ignored."""
    params = inspect.signature(body.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in params:
            return name
    raise AuditInputError(
        f"{type(body).__name__}.forward takes no key/value cache", "this architecture is not supported"
    )


def _score(
    lm: CausalLM,
    hidden: torch.Tensor,
    reads: list[tuple[int, int, int, int, int]],
    out: np.ndarray,
    normalise: bool = True,
) -> None:
    """Adds log P(token) (the token's logit when not ``normalise``) at each read (batch row, position,
    token, text, answer) into ``out``.

    Args:
        hidden: (batch, seq, d_model) final hidden states of the chunk.
    """
    positions = sorted({(b, p) for b, p, _, _, _ in reads})
    where = {bp: k for k, bp in enumerate(positions)}
    index = torch.tensor(positions, dtype=torch.long, device=hidden.device)
    states = hidden[index[:, 0], index[:, 1]]  # (n_positions, d_model)
    slot = torch.tensor([where[(b, p)] for b, p, _, _, _ in reads], dtype=torch.long, device=hidden.device)
    tokens = torch.tensor([tok for _, _, tok, _, _ in reads], dtype=torch.long, device=hidden.device)
    values = torch.empty(len(reads), dtype=torch.float32, device=hidden.device)
    if not normalise:
        values = lm.token_logits(states[slot], tokens).float()
        _add_reads(values, reads, out)
        return
    for begin in range(0, len(positions), LOGIT_ROWS):
        logits = lm.logits(states[begin : begin + LOGIT_ROWS]).float()  # (n, vocab)
        logprobs = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
        sel = (slot >= begin) & (slot < begin + LOGIT_ROWS)
        values[sel] = logprobs[slot[sel] - begin, tokens[sel]]
    _add_reads(values, reads, out)


def _add_reads(values: torch.Tensor, reads: list[tuple[int, int, int, int, int]], out: np.ndarray) -> None:
    values64 = values.double().cpu().numpy()
    for k, (_, _, _, text, answer) in enumerate(reads):
        out[text, answer] += values64[k]
