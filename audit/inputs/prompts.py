"""Soft-prompt loading: PEFT adapter directories, .safetensors, .npy, .pt/.bin (weights_only).

Every loader returns a :class:`SoftPrompt` whose ``vectors`` are float32 ``(n_virtual_tokens, d_model)``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audit.errors import AuditInputError

PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
PEFT_KEY = "prompt_embeddings"
PROJECTABLE_PEFT_TYPES = ("PROMPT_TUNING", "P_TUNING")
PROJECTABLE = "only PROMPT_TUNING and P_TUNING prompts live in the token-embedding space and can be projected"
# Why an adapter of another type cannot be projected: what it stores instead of input embeddings.
NOT_EMBEDDINGS = {
    "PREFIX_TUNING": "it stores per-layer key/value prefixes, not input embeddings",
    "LORA": "it stores low-rank updates of weight matrices (lora_A/lora_B), not input embeddings",
    "IA3": "it stores per-layer scaling vectors of activations, not input embeddings",
    "ADAPTION_PROMPT": "it stores per-layer adaption prompts inside attention, not input embeddings",
    "MULTITASK_PROMPT_TUNING": "it stores a shared prompt and per-task factors, not one prompt",
}


@dataclass(frozen=True)
class Segment:
    """A contiguous block of prompt rows audited as one prompt (seq2seq adapters have two)."""

    name: str
    start: int
    stop: int


@dataclass(frozen=True)
class PeftInfo:
    """What an adapter_config.json records about the prompt and the model it was trained on.

    Attributes:
        base_model: ``base_model_name_or_path`` as PEFT wrote it (a hub id, or a path on the training
            machine that need not exist here).
        init: ``prompt_tuning_init`` (TEXT, RANDOM, SAMPLE_VOCAB), None for P-tuning.
        tokenizer: ``tokenizer_name_or_path`` (the tokenizer a TEXT init was tokenised with).
        gguf_file: ``tokenizer_kwargs.gguf_file``: which GGUF file of a folder the adapter was made with.
    """

    peft_type: str
    task_type: str | None
    base_model: str | None
    init_text: str | None
    num_virtual_tokens: int
    num_transformer_submodules: int
    init: str | None = None
    tokenizer: str | None = None
    gguf_file: str | None = None


@dataclass(frozen=True)
class SoftPrompt:
    """A loaded soft prompt.

    Attributes:
        vectors: (n_virtual_tokens, d_model) float32, as stored (already in the model's scaled
            embedding space for PEFT prompts).
    """

    vectors: torch.Tensor
    path: Path
    sha256: str
    format: str
    segments: tuple[Segment, ...]
    peft: PeftInfo | None = None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256_dir(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()


def check_matrix(tensor: object, source: str) -> torch.Tensor:
    """Checks a loaded prompt is a finite 2-D float matrix and returns it as float32."""
    if isinstance(tensor, np.ndarray):
        if not np.issubdtype(tensor.dtype, np.number):
            raise AuditInputError(f"{source} holds a {tensor.dtype} array", "a soft prompt is a float matrix")
        tensor = torch.from_numpy(np.ascontiguousarray(tensor))
    if not isinstance(tensor, torch.Tensor):
        raise AuditInputError(
            f"{source} holds a {type(tensor).__name__}, not a tensor",
            "save the prompt as one 2-D tensor (n_virtual_tokens, d_model)",
        )
    if tensor.dim() != 2:
        raise AuditInputError(
            f"{source} has shape {tuple(tensor.shape)} ({tensor.dim()}-D)",
            "a soft prompt must be 2-D (n_virtual_tokens, d_model); select or reshape it first",
        )
    if tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise AuditInputError(f"{source} is empty {tuple(tensor.shape)}", "pass a non-empty prompt matrix")
    if not (tensor.is_floating_point() or tensor.dtype in (torch.int32, torch.int64)):
        raise AuditInputError(f"{source} has dtype {tensor.dtype}", "a soft prompt is a float matrix")
    tensor = tensor.detach().to(torch.float32).contiguous()
    bad = ~torch.isfinite(tensor)
    if bool(bad.any()):
        rows = sorted({int(r) for r in bad.nonzero()[:, 0].tolist()})
        raise AuditInputError(
            f"{source} contains NaN/Inf values (rows {rows[:5]}{'...' if len(rows) > 5 else ''})",
            "the prompt is corrupt or training diverged; re-export it",
        )
    return tensor


def _load_safetensors(path: Path, key: str | None) -> torch.Tensor:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            keys = list(handle.keys())
            if key is None:
                if len(keys) != 1:
                    raise AuditInputError(
                        f"{path} holds {len(keys)} tensors ({', '.join(keys[:6])})",
                        "choose one with --key NAME",
                    )
                key = keys[0]
            if key not in keys:
                raise AuditInputError(
                    f"{path} has no tensor '{key}' (has: {', '.join(keys[:6])})", "fix --key"
                )
            return handle.get_tensor(key)
    except SafetensorError as exc:
        raise AuditInputError(f"{path} is not a valid safetensors file ({exc})", "re-export it") from exc


def _load_torch(path: Path, key: str | None) -> torch.Tensor:
    try:
        # weights_only=True: never unpickle arbitrary objects (CVE-2025-32434, CVE-2026-24747).
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError ... for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AuditInputError(
            f"{path} cannot be loaded as plain tensors ({first[:160]})",
            "save the prompt with torch.save(tensor) or as .safetensors; pickled objects are refused",
        ) from exc
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if key is not None:
            if key not in tensors:
                raise AuditInputError(f"{path} has no tensor '{key}'", f"use one of {sorted(tensors)[:6]}")
            return tensors[key]
        if PEFT_KEY in tensors:
            return tensors[PEFT_KEY]
        if len(tensors) != 1:
            raise AuditInputError(
                f"{path} holds {len(tensors)} tensors ({', '.join(sorted(tensors)[:6])})",
                "choose one with --key NAME",
            )
        return next(iter(tensors.values()))
    return obj


def _load_npy(path: Path, key: str | None = None) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise AuditInputError(
            f"{path} is not a plain numeric .npy array ({exc})", "save it with np.save"
        ) from exc


def _adapter_folders(path: Path) -> list[str]:
    """Subfolders holding an adapter (``save_pretrained`` writes a named adapter into NAME/)."""
    return sorted(p.name for p in path.iterdir() if p.is_dir() and (p / PEFT_CONFIG).is_file())


def _no_adapter(path: Path) -> AuditInputError:
    accepted = f"{PEFT_CONFIG} + adapter_model.safetensors or adapter_model.bin"
    inside = _adapter_folders(path)
    if inside:
        shown = ", ".join(inside[:8]) + (" ..." if len(inside) > 8 else "")
        return AuditInputError(
            f"{path} is a directory without a PEFT adapter of its own ({accepted}) but holds "
            f"{len(inside)} named adapter folder(s): {shown}",
            f"scan one of them, e.g. `prompt-audit scan {path / inside[0]}`, or all of them with "
            f"`prompt-audit scan {path} --out-dir DIR`",
        )
    return AuditInputError(
        f"{path} is a directory without a PEFT adapter ({accepted})",
        "pass a PEFT prompt-tuning adapter directory or a .safetensors/.npy/.pt prompt file",
    )


def _read_peft_config(config_path: Path) -> dict:
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AuditInputError(f"{config_path} is not valid JSON ({exc})", "re-save the adapter") from exc
    if not isinstance(config, dict):
        raise AuditInputError(f"{config_path} is not a PEFT adapter config (not a JSON object)", "re-save it")
    return config


def _check_peft_type(config: dict, what: str, *, extra_fix: str = "") -> str:
    """The adapter's peft_type when its prompt can be projected; refuses every other type with why."""
    peft_type = str(config.get("peft_type", "")).upper()
    if peft_type in PROJECTABLE_PEFT_TYPES:
        return peft_type
    reason = NOT_EMBEDDINGS.get(peft_type, "it does not store a soft prompt in the input-embedding space")
    raise AuditInputError(f"{what} is a {peft_type or 'unknown'} adapter: {reason}", PROJECTABLE + extra_fix)


def _peft_info(config: dict, peft_type: str) -> PeftInfo:
    kwargs = config.get("tokenizer_kwargs")
    gguf_file = kwargs.get("gguf_file") if isinstance(kwargs, dict) else None
    return PeftInfo(
        peft_type=peft_type,
        task_type=config.get("task_type"),
        base_model=config.get("base_model_name_or_path") or None,
        init_text=config.get("prompt_tuning_init_text") or None,
        num_virtual_tokens=int(config.get("num_virtual_tokens") or 0),
        num_transformer_submodules=int(config.get("num_transformer_submodules") or 1),
        init=str(config["prompt_tuning_init"]).upper() if config.get("prompt_tuning_init") else None,
        tokenizer=config.get("tokenizer_name_or_path") or None,
        gguf_file=str(gguf_file) if gguf_file else None,
    )


def _load_weights(weights: Path, key: str | None) -> torch.Tensor:
    if weights.suffix == ".safetensors":
        return _load_safetensors(weights, key or PEFT_KEY)
    return _load_torch(weights, key or PEFT_KEY)


def _load_peft_dir(path: Path, key: str | None) -> tuple[torch.Tensor, PeftInfo, list[Path]]:
    config_path = path / PEFT_CONFIG
    if not config_path.is_file():
        raise _no_adapter(path)
    config = _read_peft_config(config_path)
    peft_type = _check_peft_type(config, str(path))
    weights = [path / name for name in PEFT_WEIGHTS if (path / name).is_file()]
    if not weights:
        raise AuditInputError(
            f"{path} has {PEFT_CONFIG} but no adapter_model.safetensors or adapter_model.bin",
            "copy the adapter's weights file next to its config",
        )
    return _load_weights(weights[0], key), _peft_info(config, peft_type), [config_path, weights[0]]


def _sibling_adapter(path: Path) -> tuple[dict, Path] | None:
    """The adapter config next to a prompt file (the file may be that adapter's weights), or None."""
    config_path = path.parent / PEFT_CONFIG
    return (_read_peft_config(config_path), config_path) if config_path.is_file() else None


def _segments(n_rows: int, peft: PeftInfo | None, source: str) -> tuple[Segment, ...]:
    if peft is None or peft.num_transformer_submodules <= 1:
        return (Segment("prompt", 0, n_rows),)
    n_virtual = peft.num_virtual_tokens
    if n_virtual * peft.num_transformer_submodules != n_rows:
        raise AuditInputError(
            f"{source} has {n_rows} rows but its config says {n_virtual} virtual tokens x "
            f"{peft.num_transformer_submodules} submodules",
            "the adapter files do not belong together; re-save the adapter",
        )
    names = ("encoder", "decoder") if peft.num_transformer_submodules == 2 else None
    return tuple(
        Segment(names[i] if names else f"submodule{i}", i * n_virtual, (i + 1) * n_virtual)
        for i in range(peft.num_transformer_submodules)
    )


# Prompt file formats by suffix: (format name, loader(path, key)). A PEFT adapter folder is the other input.
FILE_FORMATS = {
    ".safetensors": ("safetensors", _load_safetensors),
    ".npy": ("npy", _load_npy),
    ".pt": ("torch", _load_torch),
    ".pth": ("torch", _load_torch),
    ".bin": ("torch", _load_torch),
}


def load_prompt(path: Path | str, *, key: str | None = None) -> SoftPrompt:
    """Loads a soft prompt from a PEFT adapter dir, .safetensors, .npy, or .pt/.bin file.

    Args:
        path: the prompt file or adapter directory.
        key: tensor name inside a multi-tensor file.

    Returns:
        SoftPrompt with vectors (n_virtual_tokens * n_submodules, d_model) float32.
    """
    path = Path(path)
    if not path.exists():
        raise AuditInputError(f"prompt path {path} does not exist", "check the path")
    peft = None
    sibling = None if path.is_dir() else _sibling_adapter(path)
    if path.is_dir():
        raw, peft, files = _load_peft_dir(path, key)
        fmt, sha = "peft", _sha256_dir(files)
    elif sibling is not None and path.name in PEFT_WEIGHTS:
        # An adapter's own weights file: the same checks and records as its folder.
        config, config_path = sibling
        peft_type = _check_peft_type(config, f"{path} belongs to {config_path}, which")
        raw, peft = _load_weights(path, key), _peft_info(config, peft_type)
        fmt, sha = "peft", _sha256_dir([config_path, path])
    else:
        suffix = path.suffix.lower()
        if suffix not in FILE_FORMATS:
            raise AuditInputError(
                f"unsupported prompt file type '{suffix or path.name}'",
                f"pass a PEFT adapter directory or a {', '.join(FILE_FORMATS)} file",
            )
        if sibling is not None:  # a file inside an adapter folder is checked as that adapter
            _check_peft_type(
                sibling[0],
                f"{path} sits next to {sibling[1]}, which",
                extra_fix="; if the file is not part of that adapter, move it out of the adapter folder",
            )
        fmt, loader = FILE_FORMATS[suffix]
        raw = loader(path, key)
        sha = sha256_file(path)
    vectors = check_matrix(raw, str(path))
    return SoftPrompt(
        vectors=vectors,
        path=path,
        sha256=sha,
        format=fmt,
        segments=_segments(vectors.shape[0], peft, str(path)),
        peft=peft,
    )
