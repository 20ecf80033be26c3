"""Loading the causal LM behind model files (transformers), for the behavioural check.

A GGUF file is dequantized by transformers (``gguf_file=``), which takes tens of seconds; the result is
cached once as a ``save_pretrained`` folder (config, float32 safetensors, tokenizer files) under
``<cache>/lm/<sha256 of the GGUF file>-v1`` and later runs load that folder. Nothing here downloads
(``local_files_only``) or runs model code from the files (no ``trust_remote_code``). The model formats
(:mod:`audit.inputs.gguf`, :mod:`audit.inputs.hf`) register these loaders.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from audit.cache import get_or_build, load_sha256, save_text
from audit.errors import AuditInputError
from audit.inputs.models import ModelFiles

LM_CACHE_VERSION = "v1"  # bump when the layout of a cached conversion changes
NOT_CAUSAL_FIX = "the geometry scan still runs without --behaviour"


def read_config(path: Path) -> dict:
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AuditInputError(
            f"cannot read {path / 'config.json'} ({exc})", "check the model folder"
        ) from exc


def causal_class_names() -> set[str]:
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
        if not any(a in causal_class_names() for a in archs):
            raise AuditInputError(
                f"the behavioural check needs a causal LM; {spec} is a {archs[0]}", NOT_CAUSAL_FIX
            )
    elif model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or config.get("is_encoder_decoder"):
        raise AuditInputError(
            f"the behavioural check needs a causal LM; {spec} is a {model_type} model", NOT_CAUSAL_FIX
        )


def from_dir(path: Path) -> tuple[Any, Any]:
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


def _from_gguf(path: Path, tokenizer_dir: Path) -> tuple[Any, Any]:
    """The model dequantized to plain float32 modules (never left in GGUF blocks, so that compute is
    float32 and the model can be saved), and the tokenizer already converted from the GGUF metadata
    into ``tokenizer_dir`` (the vocabulary's conversion)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    options: dict[str, Any] = {}
    try:  # transformers >= 5 can keep GGUF blocks and matmul on them; ask for a dense model
        from transformers import GgufConfig

        options["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:  # older transformers always dequantize
        pass
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(tokenizer_dir), local_files_only=True, trust_remote_code=False
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


def load_gguf_lm(
    files: ModelFiles, *, progress: bool, tokenizer_dir: Callable[[], Path]
) -> tuple[Any, Any, bool]:
    """(model, tokenizer, converted now) of a GGUF file, from the cache or dequantized into it.

    Args:
        tokenizer_dir: gives the folder of the file's converted tokenizer; called on a cache miss only.
    """
    converted = []

    def build() -> tuple[Any, Any]:
        if progress:
            print(
                f"prompt-audit: first behavioural run on {files.path.name}: dequantizing the whole model "
                "(once; cached as float32 safetensors)",
                file=sys.stderr,
            )
        converted.append(True)
        return _from_gguf(files.path, tokenizer_dir())

    def save(value: tuple[Any, Any], target: Path) -> None:
        model, tokenizer = value
        target.mkdir()
        model.save_pretrained(str(target))
        tokenizer.save_pretrained(str(target))
        for entry in target.iterdir():  # safetensors writes 0600; keep the umask's default
            os.chmod(entry, 0o666 & ~_umask())

    model, tokenizer = get_or_build(
        "lm", f"{gguf_key(files.path)}-{LM_CACHE_VERSION}", build=build, save=save, load=from_dir
    )
    return model, tokenizer, bool(converted)


def load_hf_lm(files: ModelFiles, *, progress: bool) -> tuple[Any, Any, bool]:
    check_causal_config(read_config(files.path), files.spec)
    model, tokenizer = from_dir(files.path)
    return model, tokenizer, False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def hf_weights_key(files: ModelFiles) -> str:
    """Identifies an HF folder's weights for the run cache: its path and its files' names, sizes and
    modification times."""
    digest = hashlib.sha256(str(files.path.resolve()).encode())
    for entry in sorted(files.path.iterdir()):
        if entry.is_file():
            stat = entry.stat()
            digest.update(f"{entry.name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def check_hf_causal(files: ModelFiles) -> None:
    """Refuses, before any work, an HF folder whose config.json is not a causal LM."""
    check_causal_config(read_config(files.path), files.spec)


def hf_parameters(files: ModelFiles) -> int:
    """Parameters of an HF folder's causal LM, from its config.json alone."""
    from audit.behaviour.memory import config_parameters

    return config_parameters(read_config(files.path))


def gguf_parameters(files: ModelFiles) -> int:
    """Elements of every tensor of a GGUF file (its parameters), memoised per file content: reading the
    tensor table means parsing the whole metadata (seconds for a 262k-token vocabulary)."""
    import gguf

    def count() -> str:
        try:
            reader = gguf.GGUFReader(str(files.path))
        except Exception as exc:
            problem = f"{files.path} is not a readable GGUF file ({exc})"
            raise AuditInputError(problem, "check the file") from exc
        return str(sum(int(t.n_elements) for t in reader.tensors))

    text = get_or_build(
        "hashes",
        f"{gguf_key(files.path)}-parameters",
        build=count,
        save=save_text,
        load=lambda path: str(int(path.read_text(encoding="ascii").strip())),  # damaged: rebuilt
        suffix=".txt",
    )
    return int(text)


def check_gguf_causal(files: ModelFiles) -> None:
    """A GGUF file is checked when loaded (its architecture is in the file's metadata)."""
