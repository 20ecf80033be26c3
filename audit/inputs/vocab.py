"""Vocabulary: token strings, word-start info, input embedding matrix, embed scale, output matrix.

Only the embedding tensors and the tokenizer are read, never the whole model. Raw weights are kept
as stored; the embedding scale is applied by the projection code (``E * embed_scale``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audit.cache import get_or_build
from audit.errors import AuditInputError
from audit.inputs.prompts import sha256_file

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

_UNUSED = re.compile(r"^<unused\d+>$|^\[unused\d+\]$")


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
class TokenTable:
    """Per-token strings. ``pieces[i]`` is the raw vocabulary entry (``▁blancos``, ``ĠÃ©tnico``,
    ``##ing``), ``surfaces[i]`` the decoded text (``" blancos"``, ``" étnico"``, ``"ing"``)."""

    pieces: tuple[str, ...]
    surfaces: tuple[str, ...]
    word_start: np.ndarray  # (V,) bool
    special: np.ndarray  # (V,) bool: placeholders (<unusedN>, [unusedN], rows past the tokenizer),
    # excluded from rankings and statistics. Named control tokens (<bos>, [CLS]) stay rankable: a
    # PEFT TEXT init starts from <bos>/[CLS] rows, and the audit must be able to say so.


@dataclass(frozen=True)
class TokenizerFacts:
    """What a scan needs from a tokenizer without building it; cached next to the token table.

    Attributes:
        size: ``len(tokenizer)``, added tokens included.
        uncased: the normalizer lowercases.
        strips_accents: the normalizer strips accents.
        backend_json: the fast tokenizer's own ``tokenizers`` backend, serialised, when the
            transformers wrapper decodes through it unchanged (then decoding needs only the backend);
            None otherwise (slow tokenizers, wrappers that override decoding).
    """

    size: int
    uncased: bool
    strips_accents: bool
    backend_json: str | None


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


def build_token_table(tokenizer: Any, vocab_size: int) -> TokenTable:
    """Decodes every id: raw piece, surface form, word-start flag, placeholder flag.

    Placeholder tokens (``<unusedN>``, ``[unusedN]``) and rows of the embedding matrix beyond the
    tokenizer's vocabulary (padding rows) are marked ``special`` and never ranked.
    """
    n_tok = min(len(tokenizer), vocab_size)
    ids = list(range(n_tok))
    pieces = [p if p is not None else "" for p in tokenizer.convert_ids_to_tokens(ids)]
    if _decodes_through_backend(tokenizer):  # the same strings, about 10x faster than batch_decode
        surfaces = tokenizer.backend_tokenizer.decode_batch([[i] for i in ids], skip_special_tokens=False)
    else:
        surfaces = tokenizer.batch_decode([[i] for i in ids], clean_up_tokenization_spaces=False)
    word_start = np.zeros(vocab_size, dtype=bool)
    special = np.ones(vocab_size, dtype=bool)
    wordpiece = _is_wordpiece(tokenizer)
    for i, (piece, surface) in enumerate(zip(pieces, surfaces)):
        if piece.startswith("##"):
            starts = False
        elif piece.startswith(("▁", "Ġ", " ")) or surface.startswith(" "):
            starts = True
        else:
            # WordPiece marks continuations with ##, so anything else starts a word there.
            starts = wordpiece and not piece.startswith("[")
        word_start[i] = starts
        special[i] = bool(_UNUSED.match(piece))
    pad = [f"<row {i}>" for i in range(n_tok, vocab_size)]
    return TokenTable(
        pieces=tuple(pieces) + tuple(pad),
        surfaces=tuple(surfaces) + tuple(pad),
        word_start=word_start,
        special=special,
    )


def _decodes_through_backend(tokenizer: Any) -> bool:
    """True when the transformers wrapper decodes by calling its ``tokenizers`` backend unchanged
    (``TokenizersBackend`` without overrides), so the backend alone gives the same text."""
    try:
        from transformers.tokenization_utils_tokenizers import TokenizersBackend
    except ImportError:  # pragma: no cover - transformers without the v5 backend class
        return False
    cls = type(tokenizer)
    return (
        isinstance(tokenizer, TokenizersBackend)
        and all(getattr(cls, name) is getattr(TokenizersBackend, name) for name in ("decode", "_decode"))
        and getattr(tokenizer, "backend_tokenizer", None) is not None
    )


def tokenizer_facts(tokenizer: Any) -> TokenizerFacts:
    """Size, normalizer flags and (when it decodes through it) the serialised backend of ``tokenizer``."""
    lower, strip = _normalizer_flags(tokenizer)
    backend = tokenizer.backend_tokenizer.to_str() if _decodes_through_backend(tokenizer) else None
    return TokenizerFacts(size=len(tokenizer), uncased=lower, strips_accents=strip, backend_json=backend)


TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "added_tokens.json",
)


TOKEN_CACHE_VERSION = "2"


def load_token_table(
    tokenizer_dir: Path, vocab_size: int, load: Callable[[], Any]
) -> tuple[TokenTable, TokenizerFacts]:
    """:func:`build_token_table` and :func:`tokenizer_facts`, cached on disk by the tokenizer files'
    content. On a cache hit the tokenizer is not built at all (``load`` is not called): building a
    transformers tokenizer and decoding 262k ids one by one take seconds; reading the cache does not.
    """
    digest = hashlib.sha256(f"{vocab_size}|v{TOKEN_CACHE_VERSION}".encode())
    for name in TOKENIZER_FILES:
        path = tokenizer_dir / name
        if path.is_file():
            digest.update(name.encode())
            digest.update(bytes.fromhex(sha256_file(path)))

    def build() -> tuple[TokenTable, TokenizerFacts]:
        tokenizer = load()
        check_tokenizer_size(len(tokenizer), vocab_size, tokenizer_dir)
        return build_token_table(tokenizer, vocab_size), tokenizer_facts(tokenizer)

    return get_or_build(
        "tokens",
        digest.hexdigest(),
        build=build,
        save=_save_token_table,
        load=_load_token_table,
        suffix=".json",
    )


def _save_token_table(value: tuple[TokenTable, TokenizerFacts], path: Path) -> None:
    table, facts = value
    payload = {
        "pieces": list(table.pieces),
        "surfaces": list(table.surfaces),
        "word_start": table.word_start.tolist(),
        "special": table.special.tolist(),
        "facts": facts.__dict__,
    }
    path.write_bytes(json.dumps(payload, ensure_ascii=False).encode("utf-8"))


def _load_token_table(path: Path) -> tuple[TokenTable, TokenizerFacts]:
    data = json.loads(path.read_text(encoding="utf-8"))
    table = TokenTable(
        tuple(data["pieces"]),
        tuple(data["surfaces"]),
        np.array(data["word_start"], dtype=bool),
        np.array(data["special"], dtype=bool),
    )
    return table, TokenizerFacts(**data["facts"])


def check_tokenizer_size(size: int, rows: int, where: Path) -> None:
    """A tokenizer of ``size`` tokens must fit the embedding matrix: no id past its rows, and not a
    stub covering a small part of it (rows past the tokenizer are padding and allowed)."""
    if size > rows or size < rows // 2:
        raise AuditInputError(
            f"the tokenizer in {where} has {size} tokens but the embedding matrix has {rows} rows",
            "the tokenizer does not belong to these weights; use the model's own tokenizer",
        )


def _is_wordpiece(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    return type(backend.model).__name__ == "WordPiece"


def _normalizer_flags(tokenizer: Any) -> tuple[bool, bool]:
    """(lowercases, strips accents) as configured in the tokenizer's normalizer."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or backend.normalizer is None:
        return bool(getattr(tokenizer, "do_lower_case", False)), False
    state = json.loads(backend.to_str()).get("normalizer") or {}
    lower = bool(state.get("lowercase", False))
    strip = state.get("strip_accents")
    if state.get("type") == "BertNormalizer" and strip is None:
        strip = lower  # BERT's default: strip accents when lowercasing
    return lower, bool(strip)


def check_tokenizer_files(path: Path) -> None:
    if not any((path / name).is_file() for name in TOKENIZER_FILES if name != "tokenizer_config.json"):
        # transformers would silently build an empty tokenizer from the config alone.
        raise AuditInputError(
            f"no tokenizer files in {path} "
            "(looked for tokenizer.json, vocab.txt, vocab.json, tokenizer.model)",
            "save the model's tokenizer next to its weights (tokenizer.save_pretrained)",
        )


def load_tokenizer_dir(path: Path) -> Any:
    """The transformers tokenizer of a folder (callers check :func:`check_tokenizer_files` first)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except Exception as exc:
        raise AuditInputError(
            f"no usable tokenizer in {path} ({type(exc).__name__})",
            "put tokenizer.json (or the tokenizer files) next to the weights",
        ) from exc


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
