"""Model format: a GGUF file (llama.cpp). The embedding tensors are dequantized and the tokenizer
converted once per file (by content hash) into the cache; scans read that conversion."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audit.cache import DamagedEntry, check, entry_path, get_or_build, root
from audit.errors import AuditInputError
from audit.inputs import causal
from audit.inputs.models import ModelFiles, ModelFormat
from audit.inputs.prompts import sha256_file
from audit.inputs.tokens import check_tokenizer_files, load_token_table, load_tokenizer_dir
from audit.inputs.vocab import (
    SafetensorsMatrix,
    Vocabulary,
    embed_scale_for,
    tensor_sha256,
)

DESCRIPTION = "GGUF file (llama.cpp), or a folder holding exactly one"


def locate(path: Path) -> Path | None:
    """The GGUF file ``path`` is, or the only one in a folder without config.json. A folder holding
    several is refused with their names (nothing says which one is meant)."""
    if path.is_file() and path.suffix.lower() == ".gguf":
        return path
    if path.is_dir() and not (path / "config.json").is_file():
        found = sorted(path.glob("*.gguf"))
        if len(found) > 1:
            names = ", ".join(f.name for f in found[:8]) + (" ..." if len(found) > 8 else "")
            raise AuditInputError(
                f"{path} holds {len(found)} GGUF files ({names}) and nothing says which one to use "
                "(an adapter names it in tokenizer_kwargs.gguf_file)",
                f"pass the file itself, e.g. --model {found[0]}",
            )
        return found[0] if found else None
    return None


def _gguf_tokenizer(path: Path, target: Path) -> Any:
    """Converts the GGUF tokenizer to a HF tokenizer directory at ``target`` (slow: ~15-30 s)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    tokenizer.save_pretrained(str(target))


@dataclass(frozen=True)
class GgufTensor:
    """Where a tensor's bytes lie in a GGUF file, as GGUFReader parsed them."""

    name: str
    tensor_type: Any
    rows: int
    dim: int
    offset: int
    n_bytes: int


def _gguf_layout(path: Path) -> tuple[str, dict[str, GgufTensor]]:
    """(architecture, embedding tensors by name). The reader is dropped before returning: it holds
    every metadata field (a 262k-token vocabulary: ~0.7 GB of small arrays)."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:
        raise AuditInputError(f"{path} is not a readable GGUF file ({exc})", "check the file") from exc
    arch_field = reader.fields.get("general.architecture")
    model_type = str(arch_field.contents()) if arch_field is not None else "unknown"
    tensors = {
        t.name: GgufTensor(
            t.name, t.tensor_type, int(t.shape[-1]), int(t.shape[0]), int(t.data_offset), int(t.n_bytes)
        )  # GGUF lists dims fastest-first
        for t in reader.tensors
        if t.name in ("token_embd.weight", "output.weight")
    }
    return model_type, tensors


def _gguf_matrix(path: Path, tensor: GgufTensor, block_rows: int = 16384) -> torch.Tensor:
    """Dequantizes a GGUF matrix to float32 in row blocks, reading the file through a memory map
    (dequantizing it whole takes ~3.5x its float32 size in temporaries). Returns (rows, dim)."""
    import gguf

    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=tensor.offset, shape=(tensor.n_bytes,))
    data = raw.reshape(tensor.rows, -1)  # one row of quantized blocks (or values) per token
    out = np.empty((tensor.rows, tensor.dim), dtype=np.float32)
    for start in range(0, tensor.rows, block_rows):
        block = gguf.dequantize(data[start : start + block_rows], tensor.tensor_type)
        out[start : start + block_rows] = block.reshape(-1, tensor.dim)
    del data, raw
    return torch.from_numpy(out)


def _convert_gguf(path: Path, folder: Path, *, progress: bool = True) -> None:
    """Dequantizes the embedding tensors and converts the tokenizer into a new ``folder``."""
    from safetensors.torch import save_file

    from audit.progress import progress_bar

    if progress:
        print(
            f"prompt-audit: first use of {path.name}: converting its embeddings and tokenizer "
            f"(once; cached in {root()})",
            file=sys.stderr,
        )
    folder.mkdir()
    with progress_bar(f"converting {path.name} (once, cached)", 3, enabled=progress, unit="step") as bar:
        model_type, layout = _gguf_layout(path)
        bar.update()
        if "token_embd.weight" not in layout:
            raise AuditInputError(f"{path} has no token_embd.weight tensor", "is this a language-model GGUF?")
        emb = _gguf_matrix(path, layout["token_embd.weight"])
        tensors = {"input": emb}
        if "output.weight" in layout:
            tensors["output"] = _gguf_matrix(path, layout["output.weight"])
        meta = {"model_type": model_type, "sha256": tensor_sha256(emb), "source": path.name}
        save_file(tensors, str(folder / "embeddings.safetensors"), metadata=meta)
        del tensors, emb  # the tokenizer conversion below needs about 1 GB of its own
        bar.update()
        _gguf_tokenizer(path, folder / "tokenizer")
        bar.update()


def _converted(target: Path) -> Path:
    """A conversion that passed its checksum: its embeddings open and the tokenizer folder has its files
    (else it is damaged, and get_or_build rebuilds it)."""
    from safetensors import safe_open

    with safe_open(str(target / "embeddings.safetensors"), framework="pt") as handle:
        if "input" not in handle.keys():
            raise ValueError("no input embeddings")
    if not (target / "tokenizer" / "tokenizer.json").is_file():
        raise ValueError("no tokenizer.json")
    return target


def conversion(files: ModelFiles, *, progress: bool = True) -> Path:
    """The cache folder of a GGUF file's converted embeddings (``embeddings.safetensors``) and
    tokenizer (``tokenizer/``), converted on first use."""
    path = files.path
    key = sha256_file(path)
    target = entry_path("gguf", key)
    # A conversion is a folder entry like any other: checked against its record on every read, and a
    # damaged one rebuilt (one warning). It lives on disk only, so one just built (None) must have been
    # stored: an unwritable cache cannot fall back to memory here.
    converted = get_or_build(
        "gguf",
        key,
        build=lambda: None,
        save=lambda _, staging: _convert_gguf(path, staging, progress=progress),
        load=_converted,
    )
    if converted is None:
        try:
            check(target)
        except DamagedEntry:
            raise AuditInputError(
                f"cannot convert {path.name} into the cache folder {target.parent}",
                "make the cache writable or point PROMPT_AUDIT_CACHE to a writable folder",
            ) from None
    return target


def load(files: ModelFiles, *, allow_pickle: bool = False, progress: bool = True) -> Vocabulary:
    """Tokenizer + embedding matrices of a GGUF file, converted once into the cache."""
    from safetensors import safe_open

    target = conversion(files, progress=progress)
    weights = target / "embeddings.safetensors"
    with safe_open(str(weights), framework="pt") as handle:
        meta = handle.metadata() or {}
        has_output = "output" in handle.keys()
    emb = SafetensorsMatrix(weights, "input")
    tokenizer = cache(partial(load_tokenizer_dir, target / "tokenizer"))
    check_tokenizer_files(target / "tokenizer")
    tokens, facts = load_token_table(target / "tokenizer", emb.shape[0], tokenizer)
    model_type = meta.get("model_type", "unknown")
    return Vocabulary(
        spec=files.spec,
        model_type=model_type,
        input=emb,
        output=SafetensorsMatrix(weights, "output") if has_output else None,
        embed_scale=embed_scale_for(model_type, emb.shape[1]),
        tokens=tokens,
        facts=facts,
        load_tokenizer=tokenizer,
        sha256=meta["sha256"],
    )


def load_causal_lm(files: ModelFiles, *, progress: bool) -> tuple[Any, Any, bool]:
    """The causal LM of a GGUF file (dequantized once into the cache) with the tokenizer the
    vocabulary's conversion made, so a file's tokenizer is converted once (about 15 s on Gemma 3)."""
    return causal.load_gguf_lm(
        files, progress=progress, tokenizer_dir=lambda: conversion(files, progress=progress) / "tokenizer"
    )


FORMAT = ModelFormat(
    kind="gguf",
    description=DESCRIPTION,
    locate=locate,
    load_vocabulary=load,
    load_causal_lm=load_causal_lm,
    check_causal=causal.check_gguf_causal,
    parameters=causal.gguf_parameters,
    weights_key=lambda files: causal.gguf_key(files.path),
)
