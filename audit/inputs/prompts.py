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


@dataclass(frozen=True)
class Segment:
    """A contiguous block of prompt rows audited as one prompt (seq2seq adapters have two)."""

    name: str
    start: int
    stop: int


@dataclass(frozen=True)
class PeftInfo:
    peft_type: str
    task_type: str | None
    base_model: str | None
    init_text: str | None
    num_virtual_tokens: int
    num_transformer_submodules: int


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


def _load_peft_dir(path: Path, key: str | None) -> tuple[torch.Tensor, PeftInfo, list[Path]]:
    config_path = path / PEFT_CONFIG
    weights = [path / name for name in PEFT_WEIGHTS if (path / name).is_file()]
    if not config_path.is_file() or not weights:
        raise AuditInputError(
            f"{path} is a directory without a PEFT adapter ({PEFT_CONFIG} + adapter_model.safetensors)",
            "pass a PEFT prompt-tuning adapter directory or a .safetensors/.npy/.pt prompt file",
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AuditInputError(f"{config_path} is not valid JSON ({exc})", "re-save the adapter") from exc
    peft_type = str(config.get("peft_type", "")).upper()
    if peft_type == "PREFIX_TUNING":
        raise AuditInputError(
            f"{path} is a PREFIX_TUNING adapter: it stores per-layer key/value prefixes, "
            "not input embeddings",
            "only PROMPT_TUNING and P_TUNING prompts live in the token-embedding space and can be projected",
        )
    if peft_type not in PROJECTABLE_PEFT_TYPES:
        raise AuditInputError(
            f"{path} is a {peft_type or 'unknown'} adapter",
            f"prompt-audit projects {' and '.join(PROJECTABLE_PEFT_TYPES)} adapters only",
        )
    tensor = _load_safetensors(weights[0], key or PEFT_KEY) if weights[0].suffix == ".safetensors" else None
    if tensor is None:
        tensor = _load_torch(weights[0], key or PEFT_KEY)
    info = PeftInfo(
        peft_type=peft_type,
        task_type=config.get("task_type"),
        base_model=config.get("base_model_name_or_path") or None,
        init_text=config.get("prompt_tuning_init_text") or None,
        num_virtual_tokens=int(config.get("num_virtual_tokens") or 0),
        num_transformer_submodules=int(config.get("num_transformer_submodules") or 1),
    )
    return tensor, info, [config_path, weights[0]]


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
    if path.is_dir():
        raw, peft, files = _load_peft_dir(path, key)
        fmt, sha = "peft", _sha256_dir(files)
    else:
        suffix = path.suffix.lower()
        if suffix not in FILE_FORMATS:
            raise AuditInputError(
                f"unsupported prompt file type '{suffix or path.name}'",
                f"pass a PEFT adapter directory or a {', '.join(FILE_FORMATS)} file",
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
