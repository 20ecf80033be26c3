"""Vocabulary: token strings, word-start info, input embedding matrix, embed scale, output matrix.

Only the embedding tensors and the tokenizer are read, never the whole model. Raw weights are kept
as stored; the embedding scale is applied by the projection code (``E * embed_scale``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from audit.errors import AuditInputError
from audit.inputs.tokens import TokenizerFacts, TokenTable, build_token_table, tokenizer_facts

# Input-embedding tensor names by architecture family, in lookup order.
EMBEDDING_KEYS = (
    "model.embed_tokens.weight",
    "model.language_model.embed_tokens.weight",
    "model.text_model.embed_tokens.weight",
    "language_model.model.embed_tokens.weight",
    "embed_tokens.weight",
    "embeddings.word_embeddings.weight",
    "bert.embeddings.word_embeddings.weight",
    "roberta.embeddings.word_embeddings.weight",
    "transformer.wte.weight",
    "wte.weight",
    "gpt_neox.embed_in.weight",
    "transformer.word_embeddings.weight",
    "model.decoder.embed_tokens.weight",
    "shared.weight",
    "encoder.embed_tokens.weight",
)
OUTPUT_KEYS = ("lm_head.weight", "embed_out.weight", "output.weight")

# Architectures whose input embeddings are multiplied by sqrt(d_model) inside the model.
SQRT_D_SCALED = ("gemma", "gemma2", "gemma3", "gemma3_text", "gemma3n", "gemma3n_text", "recurrent_gemma")


class MatrixSource:
    """A (rows, dim) matrix read in row chunks as float32; subclasses decide where rows live."""

    shape: tuple[int, int]
    dtype: str

    def stored_rows(self, start: int, stop: int) -> torch.Tensor:
        """Rows [start, stop) in the matrix's own dtype (a view where the storage allows)."""
        raise NotImplementedError

    def rows(self, start: int, stop: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Rows [start, stop) as a float32 (stop - start, dim) tensor.

        ``out``: a float32 buffer of at least ``stop - start`` rows to convert into; reusing one across
        chunks is ~4x faster than a fresh tensor per chunk (no page faults on new memory).
        """
        stored = self.stored_rows(start, stop)
        if out is None:
            return stored.to(torch.float32)
        target = out[: stop - start]
        target.copy_(stored)
        return target


class InMemoryMatrix(MatrixSource):
    def __init__(self, tensor: torch.Tensor) -> None:
        if tensor.dim() != 2:
            raise ValueError(f"embedding matrix must be 2-D, got shape {tuple(tensor.shape)}")
        self.tensor = tensor.contiguous()
        self.shape = (int(tensor.shape[0]), int(tensor.shape[1]))
        self.dtype = str(tensor.dtype).removeprefix("torch.")

    def stored_rows(self, start: int, stop: int) -> torch.Tensor:
        return self.tensor[start:stop]


class SafetensorsMatrix(MatrixSource):
    """Rows read lazily from a safetensors file: the file is opened per chunk, so memory stays at
    one chunk even for a 128k x 4096 fp16 matrix (the mapping is dropped after each read)."""

    def __init__(self, path: Path, key: str) -> None:
        from safetensors import safe_open

        self.path, self.key = path, key
        with safe_open(str(path), framework="pt") as handle:
            piece = handle.get_slice(key)
            shape = piece.get_shape()
            self.dtype = str(piece.get_dtype()).lower()
        if len(shape) != 2:
            raise AuditInputError(f"{path}:{key} has shape {shape}", "expected a 2-D embedding matrix")
        self.shape = (int(shape[0]), int(shape[1]))

    def stored_rows(self, start: int, stop: int) -> torch.Tensor:
        from safetensors import safe_open

        with safe_open(str(self.path), framework="pt") as handle:
            return handle.get_slice(self.key)[start:stop]


@dataclass(frozen=True)
class Vocabulary:
    """Everything a scan needs from a model.

    Attributes:
        input: raw input embedding matrix E (vocab, d_model), unscaled.
        output: raw output (unembedding) matrix (vocab, d_model), or None when tied to ``input`` or
            absent.
        embed_scale: the factor the model applies to E before the first layer.
        lm_head: the model has an output layer at all; False for an encoder saved without a
            language-model head (e.g. a BertModel), where ``output`` is None and nothing is tied.
    """

    spec: str
    model_type: str
    input: MatrixSource
    output: MatrixSource | None
    embed_scale: float
    tokens: TokenTable
    facts: TokenizerFacts
    load_tokenizer: Callable[[], Any] = field(repr=False, compare=False)
    sha256: str
    lm_head: bool = True

    @property
    def uncased(self) -> bool:
        return self.facts.uncased

    @property
    def strips_accents(self) -> bool:
        return self.facts.strips_accents

    @cached_property
    def tokenizer(self) -> Any:
        """The transformers tokenizer, built on first use: only encoding needs it (a PEFT init text,
        a reference text, a new term index); decoding goes through the cached backend."""
        return self.load_tokenizer()

    @cached_property
    def _backend(self) -> Any:
        if self.facts.backend_json is None:
            return None
        from tokenizers import Tokenizer

        return Tokenizer.from_str(self.facts.backend_json)

    @property
    def size(self) -> int:
        return self.input.shape[0]

    @property
    def dim(self) -> int:
        return self.input.shape[1]

    @property
    def tied(self) -> bool:
        return self.output is None

    def decode(self, ids: list[int], *, skip_special: bool = False) -> str:
        """Joins token ids into text with the tokenizer's own decoding (no clean-up of spaces)."""
        if self._backend is not None:  # what the wrapper's decode calls, without building the wrapper
            return self._backend.decode(ids, skip_special_tokens=skip_special)
        return self.tokenizer.decode(
            ids, skip_special_tokens=skip_special, clean_up_tokenization_spaces=False
        )

    def encode(self, text: str, *, special: bool = True) -> list[int]:
        """``tokenizer(text).input_ids`` (builds the transformers tokenizer on first use: the cached
        fast backend alone does not always add special tokens as the tokenizer does, e.g. on BERT)."""
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def init_token_ids(self, text: str, total: int, *, special: bool = True) -> list[int]:
        """The token ids PEFT's TEXT init embeds for ``text``: tokenized with special tokens, then
        cut or repeated to ``total`` rows (peft.tuners.prompt_tuning); ``special=False`` without them."""
        ids = self.encode(text, special=special)
        if not ids:
            return []
        return (ids * -(-total // len(ids)))[:total]


def embed_scale_for(model_type: str, d_model: int, config: dict | None = None) -> float:
    """The input-embedding multiplier a model applies (Gemma: sqrt(d_model); BART-like: if configured)."""
    if model_type in SQRT_D_SCALED:
        return math.sqrt(d_model)
    if config and config.get("scale_embedding"):
        return math.sqrt(d_model)
    return 1.0


def tensor_sha256(tensor: torch.Tensor) -> str:
    array = tensor.contiguous()
    if array.dtype == torch.bfloat16:
        array = array.view(torch.int16)
    return hashlib.sha256(memoryview(array.numpy()).cast("B")).hexdigest()


def vocabulary_from_tensors(
    embeddings: torch.Tensor,
    tokenizer: Any,
    *,
    spec: str = "synthetic",
    model_type: str = "synthetic",
    embed_scale: float = 1.0,
    output: torch.Tensor | None = None,
) -> Vocabulary:
    """Builds a Vocabulary from in-memory tensors (tests, callers that already hold the weights)."""
    return Vocabulary(
        spec=spec,
        model_type=model_type,
        input=InMemoryMatrix(embeddings),
        output=InMemoryMatrix(output) if output is not None else None,
        embed_scale=embed_scale,
        tokens=build_token_table(tokenizer, embeddings.shape[0]),
        facts=tokenizer_facts(tokenizer),
        load_tokenizer=lambda: tokenizer,
        sha256=tensor_sha256(embeddings.to(torch.float32)),
    )
