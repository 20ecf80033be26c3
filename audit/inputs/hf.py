"""Model format: a Hugging Face model directory (config.json + safetensors, or opted-in pickle .bin).

Only the input embedding (and untied output) tensors are read, lazily, with ``safe_open``.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache, partial
from pathlib import Path

import torch

from audit.cache import get_or_build, load_sha256, save_text
from audit.errors import AuditInputError
from audit.inputs import causal
from audit.inputs.models import ModelFiles, ModelFormat
from audit.inputs.prompts import sha256_file
from audit.inputs.tokens import check_tokenizer_files, load_token_table, load_tokenizer_dir
from audit.inputs.vocab import (
    EMBEDDING_KEYS,
    OUTPUT_KEYS,
    InMemoryMatrix,
    MatrixSource,
    SafetensorsMatrix,
    Vocabulary,
    embed_scale_for,
    tensor_sha256,
)

DESCRIPTION = "Hugging Face model directory (config.json + *.safetensors)"


def locate(path: Path) -> Path | None:
    """The model directory when ``path`` is one (it has a config.json)."""
    return path if path.is_dir() and (path / "config.json").is_file() else None


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


# Architecture class names of models with an output (unembedding) layer: causal, masked and seq2seq LMs.
LM_HEAD_ARCHITECTURE = re.compile(r"(LMHead|ForCausalLM|ForMaskedLM|ForConditionalGeneration|ForPreTraining)")


def has_lm_head(config: dict, has_output_tensor: bool) -> bool:
    """Whether a model has an output layer: an untied output tensor, or an LM architecture. A base
    encoder (``BertModel``, a sentence-transformers checkpoint) has none. Unknown architectures count
    as having one (the former behaviour: tied)."""
    architectures = config.get("architectures") or []
    if has_output_tensor or not architectures:
        return True
    return any(LM_HEAD_ARCHITECTURE.search(str(name)) for name in architectures)


def load(files: ModelFiles, *, allow_pickle: bool = False, progress: bool = True) -> Vocabulary:
    """Tokenizer + embedding (and untied output) matrices of a Hugging Face model directory."""
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
        input_matrix, output_matrix, has_output = _load_bin(bins)
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
        has_output = out is not None
        sha = _matrix_sha256(input_matrix)
    check_tokenizer_files(path)
    tokenizer = cache(partial(load_tokenizer_dir, path))  # built at most once
    tokens, facts = load_token_table(path, input_matrix.shape[0], tokenizer)
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
        load_tokenizer=tokenizer,
        sha256=sha,
        lm_head=has_lm_head(config, has_output),
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

    def build() -> str:
        digest = hashlib.sha256(f"{matrix.dtype}|{matrix.shape[0]}x{matrix.shape[1]}|".encode())
        for start in range(0, matrix.shape[0], chunk):
            rows = matrix.stored_rows(start, min(start + chunk, matrix.shape[0])).contiguous()
            digest.update(memoryview(rows.view(torch.uint8).numpy()).cast("B"))
        return digest.hexdigest()

    return get_or_build(
        "hashes",
        f"{ident}-v2",
        build=build,
        save=save_text,
        load=load_sha256,
        suffix=".txt",
    )


def _load_bin(bins: list[Path]) -> tuple[MatrixSource, MatrixSource | None, bool]:
    """(input matrix, untied output matrix or None, whether an output tensor exists)."""
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
    return InMemoryMatrix(emb), None if tied else InMemoryMatrix(out), out is not None


FORMAT = ModelFormat(
    kind="hf",
    description=DESCRIPTION,
    locate=locate,
    load_vocabulary=load,
    load_causal_lm=causal.load_hf_lm,
    check_causal=causal.check_hf_causal,
    parameters=causal.hf_parameters,
    weights_key=causal.hf_weights_key,
)
