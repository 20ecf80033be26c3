"""Token strings of a vocabulary: the raw pieces, their decoded surface forms, word starts and placeholder
rows (:class:`TokenTable`), and the few tokenizer facts a scan needs (:class:`TokenizerFacts`), built from
a tokenizer once and cached next to the model's other entries."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audit.cache import get_or_build
from audit.errors import AuditInputError
from audit.inputs.prompts import sha256_file

_UNUSED = re.compile(r"^<unused\d+>$|^\[unused\d+\]$")


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
