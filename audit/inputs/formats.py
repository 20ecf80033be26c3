"""The model formats: one module each (its :class:`~audit.inputs.models.ModelFormat` covers the
vocabulary, the causal LM and the run-cache key), listed here and nowhere else.

Adding a format is one module plus a :func:`register` call (see docs/extending.md); model resolution,
scans, ``prepare``, the behavioural check and its cache all read this registry.
"""

from __future__ import annotations

from audit.errors import AuditInputError
from audit.inputs import gguf, hf
from audit.inputs.models import ModelFiles, ModelFormat, resolve_model
from audit.inputs.vocab import Vocabulary

FORMATS: dict[str, ModelFormat] = {}


def register(fmt: ModelFormat) -> ModelFormat:
    """Adds a model format; paths are offered to the formats in registration order."""
    if fmt.kind in FORMATS:
        raise ValueError(f"model format {fmt.kind!r} is already registered")
    FORMATS[fmt.kind] = fmt
    return fmt


register(hf.FORMAT)
register(gguf.FORMAT)


def model_format(files: ModelFiles) -> ModelFormat:
    """The registered format of resolved model files."""
    fmt = FORMATS.get(files.kind)
    if fmt is None:
        raise AuditInputError(
            f"unknown model kind {files.kind!r} for {files.spec}", f"one of {', '.join(sorted(FORMATS))}"
        )
    return fmt


def load_vocabulary(spec: str, *, allow_pickle: bool = False, progress: bool = True) -> Vocabulary:
    """Loads tokenizer + embedding tensors for a model spec (alias, model file or folder, cached id)."""
    return load_model(resolve_model(spec), allow_pickle=allow_pickle, progress=progress)


def load_model(files: ModelFiles, *, allow_pickle: bool = False, progress: bool = True) -> Vocabulary:
    """Loads tokenizer + embedding tensors of an already resolved model."""
    return model_format(files).load_vocabulary(files, allow_pickle=allow_pickle, progress=progress)
