"""Vocabulary: token strings, word-start info, input embedding matrix, embed scale, output matrix.

Only the embedding tensors and the tokenizer are read, never the whole model. Raw weights are kept
as stored; the embedding scale is applied by the projection code (``E * embed_scale``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property, partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audit.cache import atomic_write_bytes, cache_dir
from audit.errors import AuditInputError
from audit.models import ModelFiles, resolve_model
from audit.prompts import sha256_file

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
        output: raw output (unembedding) matrix (vocab, d_model), or None when tied to ``input``.
        embed_scale: the factor the model applies to E before the first layer.
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
    source_path: Path

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

    def init_token_ids(self, text: str, total: int, *, special: bool = True) -> list[int]:
        """The token ids PEFT's TEXT init embeds for ``text``: tokenized with special tokens, then
        cut or repeated to ``total`` rows (peft.tuners.prompt_tuning); ``special=False`` without them."""
        ids = list(self.tokenizer(text, add_special_tokens=special)["input_ids"])
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
    path = cache_dir("tokens") / f"{digest.hexdigest()}.json"
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        table = TokenTable(
            tuple(data["pieces"]),
            tuple(data["surfaces"]),
            np.array(data["word_start"], dtype=bool),
            np.array(data["special"], dtype=bool),
        )
        return table, TokenizerFacts(**data["facts"])
    tokenizer = load()
    check_tokenizer_size(len(tokenizer), vocab_size, tokenizer_dir)
    table = build_token_table(tokenizer, vocab_size)
    facts = tokenizer_facts(tokenizer)
    payload = {
        "pieces": list(table.pieces),
        "surfaces": list(table.surfaces),
        "word_start": table.word_start.tolist(),
        "special": table.special.tolist(),
        "facts": facts.__dict__,
    }
    atomic_write_bytes(path, json.dumps(payload, ensure_ascii=False).encode("utf-8"))
    return table, facts


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


# ---------------------------------------------------------------------------------------------
# Loaders (I/O)


def load_vocabulary(spec: str, *, allow_pickle: bool = False, progress: bool = True) -> Vocabulary:
    """Loads tokenizer + embedding tensors for a model spec (alias, GGUF file, HF dir, cached id)."""
    files = resolve_model(spec)
    if files.kind == "gguf":
        return _load_gguf(files, progress=progress)
    return _load_hf_dir(files, allow_pickle=allow_pickle)


def _check_tokenizer_files(path: Path) -> None:
    if not any((path / name).is_file() for name in TOKENIZER_FILES if name != "tokenizer_config.json"):
        # transformers would silently build an empty tokenizer from the config alone.
        raise AuditInputError(
            f"no tokenizer files in {path} "
            "(looked for tokenizer.json, vocab.txt, vocab.json, tokenizer.model)",
            "save the model's tokenizer next to its weights (tokenizer.save_pretrained)",
        )


def _load_tokenizer_dir(path: Path) -> Any:
    from transformers import AutoTokenizer

    _check_tokenizer_files(path)
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except Exception as exc:
        raise AuditInputError(
            f"no usable tokenizer in {path} ({type(exc).__name__})",
            "put tokenizer.json (or the tokenizer files) next to the weights",
        ) from exc


def _hf_weight_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        return sorted({path / name for name in weight_map.values()})
    return sorted(path.glob("*.safetensors"))


def _find_key(files: list[Path], candidates: tuple[str, ...]) -> tuple[Path, str] | None:
    from safetensors import safe_open

    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            keys = set(handle.keys())
        for key in candidates:
            if key in keys:
                return file, key
    return None


def _load_hf_dir(files: ModelFiles, *, allow_pickle: bool) -> Vocabulary:
    path = files.path
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    text_config = config.get("text_config") or {}
    model_type = str(config.get("model_type", "unknown"))
    weights = _hf_weight_files(path)
    if not weights:
        bins = sorted(path.glob("*.bin"))
        if not bins:
            raise AuditInputError(f"model directory {path} has no *.safetensors weights", "add the weights")
        if not allow_pickle:
            raise AuditInputError(
                f"model directory {path} has only pickle (.bin) weights, which can run code when loaded",
                "convert them to safetensors, or pass --allow-pickle-model if you trust the files",
            )
        input_matrix, output_matrix = _load_bin(bins)
        sha = hashlib.sha256(b"".join(bytes.fromhex(sha256_file(b)) for b in bins)).hexdigest()
    else:
        found = _find_key(weights, EMBEDDING_KEYS)
        if found is None:
            raise AuditInputError(
                f"no input-embedding tensor found in {path} "
                f"(looked for {', '.join(EMBEDDING_KEYS[:4])}, ...)",
                "this architecture is not supported yet; export the embedding matrix and pass a GGUF/HF dir",
            )
        input_matrix = SafetensorsMatrix(*found)
        out = _find_key(weights, OUTPUT_KEYS)
        tie = config.get("tie_word_embeddings", text_config.get("tie_word_embeddings", True))
        output_matrix = SafetensorsMatrix(*out) if out is not None and not tie else None
        sha = _matrix_sha256(input_matrix)
    _check_tokenizer_files(path)
    load = cache(partial(_load_tokenizer_dir, path))  # built at most once
    tokens, facts = load_token_table(path, input_matrix.shape[0], load)
    d_model = input_matrix.shape[1]
    scale = embed_scale_for(model_type, d_model, {**text_config, **config})
    return Vocabulary(
        spec=files.spec,
        model_type=model_type,
        input=input_matrix,
        output=output_matrix,
        embed_scale=scale,
        tokens=tokens,
        facts=facts,
        load_tokenizer=load,
        sha256=sha,
        source_path=path,
    )


def _matrix_sha256(matrix: MatrixSource, chunk: int = 16384) -> str:
    """sha256 identifying the input matrix: of its float32 rows for in-memory matrices; for a
    safetensors matrix, of its dtype, shape and stored bytes (no conversion, half the bytes for fp16),
    memoised per file identity."""
    if not isinstance(matrix, SafetensorsMatrix):
        return tensor_sha256(matrix.rows(0, matrix.shape[0]))
    stat = matrix.path.stat()
    ident = hashlib.sha256(
        f"{matrix.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{matrix.key}".encode()
    ).hexdigest()
    memo = cache_dir("hashes") / f"{ident}-v2.txt"
    if memo.is_file():
        return memo.read_text().strip()
    digest = hashlib.sha256(f"{matrix.dtype}|{matrix.shape[0]}x{matrix.shape[1]}|".encode())
    for start in range(0, matrix.shape[0], chunk):
        rows = matrix.stored_rows(start, min(start + chunk, matrix.shape[0])).contiguous()
        digest.update(memoryview(rows.view(torch.uint8).numpy()).cast("B"))
    value = digest.hexdigest()
    atomic_write_bytes(memo, value.encode())
    return value


def _load_bin(bins: list[Path]) -> tuple[MatrixSource, MatrixSource | None]:
    state: dict[str, torch.Tensor] = {}
    for file in bins:
        state.update(torch.load(str(file), map_location="cpu", weights_only=True))
    emb = next((state[k] for k in EMBEDDING_KEYS if k in state), None)
    if emb is None:
        raise AuditInputError(
            "no input-embedding tensor found in the .bin weights", "use safetensors weights"
        )
    out = next((state[k] for k in OUTPUT_KEYS if k in state), None)
    tied = out is None or (out.shape == emb.shape and torch.equal(out, emb))
    return InMemoryMatrix(emb), None if tied else InMemoryMatrix(out)


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


def _convert_gguf(path: Path, target: Path, *, progress: bool = True) -> None:
    """Dequantizes the embedding tensors and converts the tokenizer into ``target`` (once per file)."""
    from safetensors.torch import save_file

    from audit.progress import progress_bar

    if progress:
        print(
            f"prompt-audit: first use of {path.name}: converting its embeddings and tokenizer "
            f"(once; cached in {target.parent})",
            file=sys.stderr,
        )
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        with progress_bar(f"converting {path.name} (once, cached)", 3, enabled=progress, unit="step") as bar:
            model_type, layout = _gguf_layout(path)
            bar.update()
            if "token_embd.weight" not in layout:
                raise AuditInputError(
                    f"{path} has no token_embd.weight tensor", "is this a language-model GGUF?"
                )
            emb = _gguf_matrix(path, layout["token_embd.weight"])
            tensors = {"input": emb}
            if "output.weight" in layout:
                tensors["output"] = _gguf_matrix(path, layout["output.weight"])
            meta = {"model_type": model_type, "sha256": tensor_sha256(emb), "source": path.name}
            save_file(tensors, str(staging / "embeddings.safetensors"), metadata=meta)
            del tensors, emb  # the tokenizer conversion below needs about 1 GB of its own
            bar.update()
            _gguf_tokenizer(path, staging / "tokenizer")
            bar.update()
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _load_gguf(files: ModelFiles, *, progress: bool = True) -> Vocabulary:
    from safetensors import safe_open

    path = files.path
    target = cache_dir("gguf") / sha256_file(path)
    if not (target / "embeddings.safetensors").is_file():
        _convert_gguf(path, target, progress=progress)
    weights = target / "embeddings.safetensors"
    with safe_open(str(weights), framework="pt") as handle:
        meta = handle.metadata() or {}
        has_output = "output" in handle.keys()
    emb = SafetensorsMatrix(weights, "input")
    load = cache(partial(_load_tokenizer_dir, target / "tokenizer"))
    _check_tokenizer_files(target / "tokenizer")
    tokens, facts = load_token_table(target / "tokenizer", emb.shape[0], load)
    model_type = meta.get("model_type", "unknown")
    return Vocabulary(
        spec=files.spec,
        model_type=model_type,
        input=emb,
        output=SafetensorsMatrix(weights, "output") if has_output else None,
        embed_scale=embed_scale_for(model_type, emb.shape[1]),
        tokens=tokens,
        facts=facts,
        load_tokenizer=load,
        sha256=meta["sha256"],
        source_path=path,
    )


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
        source_path=Path(spec),
    )
