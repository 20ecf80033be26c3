"""Loading a causal LM for the behavioural check: HF model directories and GGUF files.

A GGUF file is dequantized by transformers (``gguf_file=``), which takes tens of seconds; the result
is cached once as a ``save_pretrained`` folder (config, float32 safetensors, tokenizer files) under
``<cache>/lm/<sha256 of the GGUF file>-v1`` and later runs load that folder. Nothing here downloads
(``local_files_only``) or runs model code from the files (no ``trust_remote_code``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from audit.cache import get_or_build, load_sha256, save_text
from audit.errors import AuditInputError

if TYPE_CHECKING:
    from audit.inputs.models import ModelFiles

LM_CACHE_VERSION = "v1"  # bump when the layout of a cached conversion changes
NOT_CAUSAL_FIX = "the geometry scan still runs without --behaviour"


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
    loader = LOADERS.get(files.kind)
    if loader is None:
        raise AuditInputError(
            f"unknown model kind {files.kind!r} for {files.spec}", f"one of {', '.join(sorted(LOADERS))}"
        )
    with _transformers_bars(progress):
        model, tokenizer, converted = loader(files, progress=progress)
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
    """transformers' own loading bars follow ``progress`` (they are global; restored afterwards)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if not enabled and was:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if not enabled and was:
            hf_logging.enable_progress_bar()


def _read_config(path: Path) -> dict:
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AuditInputError(
            f"cannot read {path / 'config.json'} ({exc})", "check the model folder"
        ) from exc


def _causal_class_names() -> set[str]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    names: set[str] = set()
    for value in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
        names.update([value] if isinstance(value, str) else value)
    return names


def check_causal_config(config: dict, spec: str) -> None:
    """Raises AuditInputError unless config.json describes a causal LM: its ``architectures`` (what
    the checkpoint holds) must be a causal-LM class; without them, its ``model_type`` must map to one."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    archs = config.get("architectures") or []
    model_type = str(config.get("model_type", "unknown"))
    if archs:
        if not any(a in _causal_class_names() for a in archs):
            raise AuditInputError(
                f"the behavioural check needs a causal LM; {spec} is a {archs[0]}", NOT_CAUSAL_FIX
            )
    elif model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or config.get("is_encoder_decoder"):
        raise AuditInputError(
            f"the behavioural check needs a causal LM; {spec} is a {model_type} model", NOT_CAUSAL_FIX
        )


def _check_causal_class(model: Any, spec: str) -> None:
    # An encoder with an LM head (BertLMHeadModel without is_decoder) is in the causal mapping too.
    name = type(model).__name__
    if name not in _causal_class_names() or not getattr(model.config, "is_decoder", True):
        raise AuditInputError(f"the behavioural check needs a causal LM; {spec} is a {name}", NOT_CAUSAL_FIX)
    if getattr(model.config, "is_encoder_decoder", False):
        raise AuditInputError(
            f"the behavioural check needs a decoder-only causal LM; {spec} is an encoder-decoder {name}",
            NOT_CAUSAL_FIX,
        )


def _from_dir(path: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except Exception as exc:
        raise AuditInputError(
            f"no usable tokenizer in {path} ({type(exc).__name__})",
            "put tokenizer.json (or the tokenizer files) next to the weights",
        ) from exc
    if not any(path.glob("*.safetensors")):  # pickle weights can run code when loaded
        raise AuditInputError(
            f"model directory {path} has no *.safetensors weights",
            "the behavioural check loads safetensors only; convert the weights",
        )
    model = AutoModelForCausalLM.from_pretrained(
        str(path), local_files_only=True, trust_remote_code=False, use_safetensors=True, dtype=torch.float32
    )
    return model, tokenizer


def _from_gguf(path: Path) -> tuple[Any, Any]:
    """The model dequantized to plain float32 modules (never left in GGUF blocks, so that compute is
    float32 and the model can be saved), and the tokenizer converted from the GGUF metadata."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    options: dict[str, Any] = {}
    try:  # transformers >= 5 can keep GGUF blocks and matmul on them; ask for a dense model
        from transformers import GgufConfig

        options["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:  # older transformers always dequantize
        pass
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(path.parent), gguf_file=path.name, local_files_only=True
        )
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, local_files_only=True, dtype=torch.float32, **options
        )
    except ValueError as exc:  # an architecture transformers cannot read from GGUF
        raise AuditInputError(
            f"transformers cannot load {path.name} as a causal LM ({exc})", NOT_CAUSAL_FIX
        ) from exc
    return model, tokenizer


def gguf_key(path: Path) -> str:
    """sha256 of the GGUF file, memoised per (path, size, mtime) so a cached load does not re-hash it."""
    from audit.inputs.prompts import sha256_file

    stat = path.stat()
    ident = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|file".encode()).hexdigest()
    return get_or_build(
        "hashes",
        f"{ident}-file",
        build=lambda: sha256_file(path),
        save=save_text,
        load=load_sha256,
        suffix=".txt",
    )


def _load_gguf(files: ModelFiles, *, progress: bool) -> tuple[Any, Any, bool]:
    converted = []

    def build() -> tuple[Any, Any]:
        if progress:
            print(
                f"prompt-audit: first behavioural run on {files.path.name}: dequantizing the whole model "
                "(once; cached as float32 safetensors)",
                file=sys.stderr,
            )
        converted.append(True)
        return _from_gguf(files.path)

    def save(value: tuple[Any, Any], target: Path) -> None:
        model, tokenizer = value
        target.mkdir()
        model.save_pretrained(str(target))
        tokenizer.save_pretrained(str(target))
        for entry in target.iterdir():  # safetensors writes 0600; keep the umask's default
            os.chmod(entry, 0o666 & ~_umask())

    model, tokenizer = get_or_build(
        "lm", f"{gguf_key(files.path)}-{LM_CACHE_VERSION}", build=build, save=save, load=_from_dir
    )
    return model, tokenizer, bool(converted)


def _load_hf(files: ModelFiles, *, progress: bool) -> tuple[Any, Any, bool]:
    check_causal_config(_read_config(files.path), files.spec)
    model, tokenizer = _from_dir(files.path)
    return model, tokenizer, False


# One loader per ModelFiles.kind: (files, progress=) -> (model, tokenizer, converted now).
LOADERS: dict[str, Callable[..., tuple[Any, Any, bool]]] = {"gguf": _load_gguf, "hf": _load_hf}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
