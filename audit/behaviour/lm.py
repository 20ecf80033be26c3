"""The causal LM of the behavioural check: loaded through the model-format registry
(:data:`audit.inputs.formats.FORMATS`, which knows how each format's files become a transformers model),
checked, frozen and wrapped with the few operations the runner needs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from audit.behaviour.memory import check_model_fits
from audit.errors import AuditInputError
from audit.inputs.causal import NOT_CAUSAL_FIX, causal_class_names

if TYPE_CHECKING:
    from audit.inputs.models import ModelFiles


@dataclass(frozen=True)
class CausalLM:
    """A loaded causal LM, frozen, in eval mode, float32.

    Attributes:
        model: the transformers ``...ForCausalLM`` module.
        tokenizer: its tokenizer (right padding).
        device: where ``model`` lives.
        model_type: the config's ``model_type`` (``gemma3_text``, ``llama``, ...).
        embed_scale: the factor the input-embedding module applies to its rows (``sqrt(d_model)``
            on Gemma, 1.0 elsewhere): soft prompts and :func:`text_prompt` live in that scaled space.
        d_model: width of the input embeddings.
        vocab_size: rows of the output matrix.
        spec: the model spec the user gave.
        load_seconds: wall time of the load (conversion included on a first GGUF use).
        converted: True when this load converted a GGUF file (a cache miss).
    """

    model: Any
    tokenizer: Any
    device: torch.device
    model_type: str
    embed_scale: float
    d_model: int
    vocab_size: int
    spec: str
    load_seconds: float
    converted: bool = False

    @property
    def body(self) -> Any:
        """The decoder stack without the output layer (``model.model`` on Gemma and Llama)."""
        return self.model.base_model

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Input embeddings as the model's embedding module returns them (scaled on Gemma).

        Args:
            ids: (..., seq) token ids. Returns: (..., seq, d_model) float32.
        """
        return self.model.get_input_embeddings()(ids.to(self.device))

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Next-token logits of final hidden states, with the model's logit soft-capping if it has one.

        Args:
            hidden: (n, d_model) final-norm hidden states. Returns: (n, vocab_size) float32.
        """
        return self._softcap(self.model.get_output_embeddings()(hidden))

    def token_logits(self, hidden: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The logit of one token per hidden state, from that token's row of the output layer only.

        Args:
            hidden: (n, d_model) final-norm hidden states; tokens: (n,) token ids.
        Returns:
            (n,) float32, equal to ``logits(hidden)[arange(n), tokens]``.
        """
        layer = self.model.get_output_embeddings()
        out = (hidden * layer.weight[tokens]).sum(-1)
        if getattr(layer, "bias", None) is not None:
            out = out + layer.bias[tokens]
        return self._softcap(out)

    def _softcap(self, logits: torch.Tensor) -> torch.Tensor:
        cap = getattr(self.model.config.get_text_config(), "final_logit_softcapping", None)
        return logits if cap is None else torch.tanh(logits / cap) * cap


def select_device(device: str | torch.device) -> torch.device:
    """``cpu``, ``cuda[:n]`` (CUDA must be available) or ``auto`` (CUDA when available)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise AuditInputError(f"unknown device {device!r}", "use --device cpu, cuda or auto") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AuditInputError(
            "--device cuda was asked for but no CUDA device is available", "use --device cpu"
        )
    if dev.type not in ("cpu", "cuda"):
        raise AuditInputError(f"unsupported device {device!r}", "use --device cpu, cuda or auto")
    return dev


def load_causal_lm(
    files: ModelFiles, *, device: str | torch.device = "cpu", progress: bool = True
) -> CausalLM:
    """Loads the model behind ``files`` (an HF directory or a GGUF file) for inference.

    Raises:
        AuditInputError: the model is not a causal LM, or ``device`` is unavailable.
    """
    dev = select_device(device)
    t0 = time.perf_counter()
    from audit.inputs.formats import model_format

    check_model_fits(files, dev)
    fmt = model_format(files)
    with _transformers_bars(progress):
        model, tokenizer, converted = fmt.load_causal_lm(files, progress=progress)
    _check_causal_class(model, files.spec)
    model.to(dev)
    model.eval()
    model.requires_grad_(False)
    tokenizer.padding_side = "right"
    embeddings = model.get_input_embeddings()
    scale = getattr(embeddings, "embed_scale", 1.0)
    scale = float(scale.item() if torch.is_tensor(scale) else scale)
    out = model.get_output_embeddings()
    lm = CausalLM(
        model=model,
        tokenizer=tokenizer,
        device=dev,
        model_type=str(getattr(model.config, "model_type", "unknown")),
        embed_scale=scale,
        d_model=int(embeddings.weight.shape[1]),
        vocab_size=int(out.weight.shape[0]),
        spec=files.spec,
        load_seconds=time.perf_counter() - t0,
        converted=converted,
    )
    _check_output_layer(lm)
    return lm


def _check_output_layer(lm: CausalLM) -> None:
    """The runner reads logits as ``lm.logits(body(x))`` at a few positions only; a model whose own
    forward transforms logits further (a scale this module does not know) must not be scored wrongly."""
    ids = torch.arange(min(4, lm.vocab_size), device=lm.device)[None]
    with torch.inference_mode():
        full = lm.model(input_ids=ids, use_cache=False).logits[0].float()
        hidden = lm.body(input_ids=ids, use_cache=False).last_hidden_state[0]
        mine = lm.logits(hidden).float()
    if full.shape != mine.shape or not torch.allclose(full, mine, rtol=1e-4, atol=1e-4):
        raise AuditInputError(
            f"the output layer of {lm.spec} ({type(lm.model).__name__}) transforms its logits in a way "
            "prompt-audit does not reproduce",
            "report the model type; the geometry scan still runs without --behaviour",
        )


@contextmanager
def _transformers_bars(enabled: bool) -> Iterator[None]:
    """transformers' own loading bars follow ``progress`` (they are global; restored afterwards). Its
    GGUF conversion bar is a plain ``tqdm`` that ignores that switch, so it is silenced by name."""
    from functools import partial

    from transformers.utils import logging as hf_logging

    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # a transformers without GGUF support
        gguf_utils = None
    was = hf_logging.is_progress_bar_enabled()
    gguf_bar = getattr(gguf_utils, "tqdm", None)
    if not enabled:
        hf_logging.disable_progress_bar()
        if gguf_bar is not None:
            gguf_utils.tqdm = partial(gguf_bar, disable=True)
    try:
        yield
    finally:
        if not enabled:
            if gguf_bar is not None:
                gguf_utils.tqdm = gguf_bar
            if was:
                hf_logging.enable_progress_bar()


def _check_causal_class(model: Any, spec: str) -> None:
    # An encoder with an LM head (BertLMHeadModel without is_decoder) is in the causal mapping too.
    name = type(model).__name__
    if name not in causal_class_names() or not getattr(model.config, "is_decoder", True):
        raise AuditInputError(f"the behavioural check needs a causal LM; {spec} is a {name}", NOT_CAUSAL_FIX)
    if getattr(model.config, "is_encoder_decoder", False):
        raise AuditInputError(
            f"the behavioural check needs a decoder-only causal LM; {spec} is an encoder-decoder {name}",
            NOT_CAUSAL_FIX,
        )
