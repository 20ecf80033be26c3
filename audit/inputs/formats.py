"""The model formats a vocabulary can be read from: one module each, listed here.

A format module defines ``KIND``, ``DESCRIPTION``, ``locate(path) -> Path | None`` (the file a local
path holds in this format, or None) and ``load(files, *, allow_pickle, progress) -> Vocabulary``.
Adding a format is one module plus its line below (see docs/extending.md).
"""

from __future__ import annotations

from types import ModuleType

from audit.inputs import gguf, hf
from audit.inputs.models import ModelFiles, resolve_model
from audit.inputs.vocab import Vocabulary

FORMATS: dict[str, ModuleType] = {module.KIND: module for module in (hf, gguf)}


def load_vocabulary(spec: str, *, allow_pickle: bool = False, progress: bool = True) -> Vocabulary:
    """Loads tokenizer + embedding tensors for a model spec (alias, model file or folder, cached id)."""
    return load_model(resolve_model(spec), allow_pickle=allow_pickle, progress=progress)


def load_model(files: ModelFiles, *, allow_pickle: bool = False, progress: bool = True) -> Vocabulary:
    """Loads tokenizer + embedding tensors of an already resolved model."""
    return FORMATS[files.kind].load(files, allow_pickle=allow_pickle, progress=progress)
