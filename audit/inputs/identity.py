"""Which model an adapter belongs to, and the text its TEXT init was built from.

A scan reads one model's matrices: against another model's vocabulary its readings are meaningless. An
adapter records the model it was trained on (``base_model_name_or_path``, a hub id or a path on the
training machine) and, for a TEXT init, the tokenizer the init text was tokenised with. Nothing here
downloads or needs those records to resolve: a recorded model that is available locally (a packaged
alias or its hub id, an existing path, the local Hugging Face cache) is compared by its embedding
matrix; otherwise only by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audit.errors import AuditInputError
from audit.inputs.formats import load_model
from audit.inputs.models import (
    ALIAS_HUB_IDS,
    ModelFiles,
    alias_for,
    model_names,
    name_keys,
    resolve_local,
    resolve_model,
)
from audit.inputs.prompts import PeftInfo, SoftPrompt
from audit.inputs.tokens import check_tokenizer_files, load_tokenizer_dir
from audit.inputs.vocab import Vocabulary

WARNING = "WARNING: "
# Median cosine of sampled embedding rows (same token ids) of two matrices of the same width: at or above
# SAME_FAMILY the same model stored otherwise (quantized, half precision) or lightly fine-tuned; below
# OTHER_MATRIX certainly another embedding matrix (unrelated models agree to about 0).
SAME_FAMILY, OTHER_MATRIX = 0.9, 0.5
MISMATCH_OK = "--model-mismatch-ok"


@dataclass(frozen=True)
class ModelChoice:
    """The model a scan uses and what the report should say about how it was chosen."""

    files: ModelFiles
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TextInit:
    """A PEFT TEXT init as PEFT built it.

    Attributes:
        token_ids: (n_rows,) the token ids PEFT embedded, in prompt order: ``tokenizer(text)`` with its
            special tokens, cut or repeated to the prompt's rows (peft.tuners.prompt_tuning.model).
        n_text_tokens: the init text's own token count (special tokens included).
    """

    token_ids: tuple[int, ...]
    n_text_tokens: int


def choose_model(given: str | None, peft: PeftInfo | None, source: Path) -> ModelChoice:
    """``--model`` when given, else the adapter's recorded base model.

    The adapter's ``tokenizer_kwargs.gguf_file`` picks the file of a folder holding several GGUF files.
    A recorded model that is not available here is replaced by the packaged alias it names: its hub id
    (a note), or only the same name (a warning); otherwise the scan is refused.
    """
    hint = peft.gguf_file if peft else None
    if given:
        return ModelChoice(resolve_model(given, gguf_file=hint))
    recorded = peft.base_model if peft else None
    if not recorded:
        raise AuditInputError(
            f"no model given and {source} names no base model",
            "pass --model (a packaged alias such as gemma-3-270m, a .gguf file or a model directory)",
        )
    if Path(os.path.expanduser(recorded)).exists():
        return ModelChoice(resolve_model(recorded, gguf_file=hint))  # its errors name the fix
    files = resolve_local(recorded, gguf_file=hint)
    if files is not None:
        if files.spec == recorded:
            return ModelChoice(files)
        note = f"The adapter's base model '{recorded}' is the packaged model '{files.spec}', used here."
        return ModelChoice(files, (note,))
    keys = name_keys(recorded)
    guesses = [alias for alias in ALIAS_HUB_IDS if name_keys(alias) & keys]
    if len(guesses) == 1:
        return ModelChoice(
            resolve_model(guesses[0]),
            (
                WARNING + f"the adapter's base model '{recorded}' is not available here; audited against the "
                f"packaged model '{guesses[0]}', which carries its name but could not be compared with it "
                f"(pass --model {guesses[0]} to confirm the choice, or --model with the recorded model).",
            ),
        )
    raise AuditInputError(
        f"the adapter's base model '{recorded}' is not available here (not a packaged alias, a local path "
        "or in the local Hugging Face cache; prompt-audit never downloads)",
        "pass --model with a local copy of that model (a model directory or .gguf file) or a packaged alias",
    )


def check_model(
    prompt: SoftPrompt,
    vocab: Vocabulary,
    files: ModelFiles,
    *,
    given: str | None,
    mismatch_ok: bool = False,
    allow_pickle: bool = False,
) -> tuple[str, ...]:
    """Whether ``vocab`` is the model the prompt was trained on: report notes (warnings start with
    :data:`WARNING`), or an :class:`AuditInputError` when it certainly is not.

    Checks the prompt's width (naming the adapter's recorded base model), then, when ``--model`` was
    given, the recorded base model (by its embedding matrix when it is available here, else by name;
    a certain mismatch is refused unless ``mismatch_ok``), then the tokenizer a TEXT init was made with.
    """
    peft = prompt.peft
    recorded = peft.base_model if peft else None
    _check_width(prompt, vocab, given, recorded)
    notes: list[str] = []
    if given and recorded and given != recorded:
        notes += _check_base(peft, vocab, files, given, mismatch_ok, allow_pickle)
    if peft is not None:
        notes += _check_tokenizer(peft, vocab, files)
    return tuple(notes)


def _check_width(prompt: SoftPrompt, vocab: Vocabulary, given: str | None, recorded: str | None) -> None:
    dim = int(prompt.vectors.shape[1])
    if dim == vocab.dim:
        return
    problem = f"prompt has dim {dim} but model '{vocab.spec}' has d_model {vocab.dim}"
    if given and recorded:
        fix = f"the adapter records base model '{recorded}': pass that model (a local copy or packaged alias)"
    elif given:
        fix = f"pass the model this prompt was trained on (one with d_model {dim})"
    elif recorded:
        problem = f"prompt has dim {dim} but its recorded base model '{recorded}' has d_model {vocab.dim}"
        fix = (
            "the adapter does not match its own base_model_name_or_path; pass --model with the model it "
            f"was trained on (d_model {dim})"
        )
    else:
        fix = "is this the right base model? pass --model"
    raise AuditInputError(problem, fix)


def _check_base(
    peft: PeftInfo, vocab: Vocabulary, files: ModelFiles, given: str, mismatch_ok: bool, allow_pickle: bool
) -> list[str]:
    recorded = peft.base_model or ""
    if alias_for(recorded) is not None and alias_for(recorded) == alias_for(given):
        return []  # the same packaged model, named by alias or hub id
    other = resolve_local(recorded, gguf_file=peft.gguf_file)
    if other is not None and _same_path(other, files):
        return []
    base = None
    if other is not None:
        try:
            base = load_model(other, allow_pickle=allow_pickle, progress=False)
        except AuditInputError:
            base = None  # unreadable here: compare names only
    if base is None:
        if name_keys(recorded) & model_names(files):
            return []
        task = f" (task_type {peft.task_type})" if peft.task_type else ""
        return [
            WARNING + f"--model '{given}' may not be the model this adapter was trained on: the adapter "
            f"records base model '{recorded}'{task}, which is not available here to compare, and the names "
            "differ. If it is another model, every reading in this report is meaningless (an F1 near 0 "
            "against the init text is one sign); scan with the recorded model to be sure."
        ]
    if base.sha256 == vocab.sha256:
        return []
    if base.dim != vocab.dim:
        return [
            WARNING + f"the adapter's recorded base model '{recorded}' has d_model {base.dim}, not the "
            f"prompt's {vocab.dim}: the record does not describe this prompt; audited against --model "
            f"'{given}' as given."
        ]
    cosine = row_agreement(base, vocab)
    sizes = f"--model: {vocab.size} tokens, base model: {base.size}"
    if cosine < OTHER_MATRIX:
        problem = (
            f"--model '{given}' is not the adapter's base model '{recorded}', which is available here: their "
            f"embedding matrices differ ({sizes}; sampled rows agree to cosine {cosine:.2f})"
        )
        if not mismatch_ok:
            raise AuditInputError(
                problem,
                f"drop --model to audit against '{recorded}', or pass {MISMATCH_OK} to audit against "
                f"'{given}' anyway",
            )
        return [
            WARNING + problem + f". Audited anyway ({MISMATCH_OK}): the readings place the prompt in a "
            "vocabulary it was not trained in."
        ]
    tokens = token_agreement(base, vocab)
    if base.size != vocab.size or cosine < SAME_FAMILY or tokens < SAME_FAMILY:
        return [
            WARNING + f"--model '{given}' differs from the adapter's base model '{recorded}' ({sizes}; "
            f"sampled rows agree to cosine {cosine:.2f}, {100 * tokens:.0f}% of token strings match): a "
            "resized vocabulary or a retrained copy; readings are only as good as that resemblance."
        ]
    return [
        f"--model '{given}' stores the adapter's base model '{recorded}' differently (other bytes, the same "
        f"{vocab.size} tokens, sampled rows agree to cosine {cosine:.3f}): a quantized, half-precision or "
        "lightly fine-tuned copy."
    ]


def _same_path(a: ModelFiles, b: ModelFiles) -> bool:
    """The same files: one path, or two copies of one GGUF file (same size and sampled digest, e.g. the
    packaged model's own copy and the one assembled into the cache)."""
    if a.path.resolve() == b.path.resolve():
        return True
    if a.kind == b.kind == "gguf" and a.path.is_file() and b.path.is_file():
        from audit.cache import file_digest

        return a.path.stat().st_size == b.path.stat().st_size and file_digest(a.path) == file_digest(b.path)
    return False


def row_agreement(a: Vocabulary, b: Vocabulary, *, blocks: int = 8, block: int = 64) -> float:
    """Median cosine between the input-embedding rows of the same token ids in two vocabularies of the
    same width, over ``blocks`` blocks of ``block`` rows spread over the ids they share (all-zero
    rows skipped). 1 for the same matrix, about 0 for unrelated ones."""
    n = min(a.size, b.size)
    starts = sorted({int(s) for s in np.linspace(0, max(n - block, 0), blocks)})
    values = []
    for start in starts:
        stop = min(start + block, n)
        x, y = a.input.rows(start, stop), b.input.rows(start, stop)
        keep = (x.norm(dim=1) > 0) & (y.norm(dim=1) > 0)
        values.append(torch.nn.functional.cosine_similarity(x[keep], y[keep], dim=1))
    both = torch.cat(values)
    return float(both.median()) if both.numel() else 0.0


def token_agreement(a: Vocabulary, b: Vocabulary) -> float:
    """Share of the token ids two vocabularies share that decode to the same string."""
    n = min(a.size, b.size)
    same = sum(x == y for x, y in zip(a.tokens.surfaces[:n], b.tokens.surfaces[:n]))
    return same / n if n else 0.0


def _check_tokenizer(peft: PeftInfo, vocab: Vocabulary, files: ModelFiles) -> list[str]:
    """A TEXT init was tokenised with ``tokenizer_name_or_path``: warn when that is another tokenizer."""
    if peft.init != "TEXT" or not peft.init_text or not peft.tokenizer or peft.tokenizer == peft.base_model:
        return []
    keys = name_keys(peft.tokenizer) | (name_keys(peft.gguf_file) if peft.gguf_file else set())
    if keys & model_names(files):
        return []
    tokenizer = _local_tokenizer(peft.tokenizer, peft.gguf_file, files)
    if tokenizer is _SAME:
        return []
    init = peft.init_text if len(peft.init_text) <= 60 else peft.init_text[:57] + "..."
    if tokenizer is None:
        return [
            WARNING + f"the adapter's TEXT init was tokenised with '{peft.tokenizer}' "
            f"(tokenizer_name_or_path), which is not available here and does not carry the name of model "
            f"'{vocab.spec}': if it is another tokenizer, the prompt did not start from '{init}' in this "
            "vocabulary, and F1 and drift against it mean little."
        ]
    theirs = list(tokenizer(peft.init_text)["input_ids"])
    ours = vocab.encode(peft.init_text)
    if theirs == ours:
        return []
    return [
        WARNING + f"the adapter's TEXT init was tokenised with '{peft.tokenizer}', which splits '{init}' "
        f"into other token ids than model '{vocab.spec}' does ({len(theirs)} against {len(ours)} tokens): "
        "the prompt did not start from that text in this vocabulary, and F1 and drift against it mean little."
    ]


_SAME = object()  # the recorded tokenizer is the model's own


def _local_tokenizer(name: str, gguf_file: str | None, files: ModelFiles) -> Any:
    """The tokenizer ``name`` names when it is available here, :data:`_SAME` when it is the model's own
    files, or None."""
    try:
        other = resolve_local(name, gguf_file=gguf_file)
        if other is not None:
            if _same_path(other, files):
                return _SAME
            if other.kind == "hf":
                check_tokenizer_files(other.path)
                return load_tokenizer_dir(other.path)
            return load_model(other, progress=False).tokenizer
        path = Path(os.path.expanduser(name))
        if path.is_dir():  # a tokenizer folder of its own (tokenizer.save_pretrained)
            check_tokenizer_files(path)
            return load_tokenizer_dir(path)
    except AuditInputError:
        return None
    return None


def text_init(prompt: SoftPrompt, vocab: Vocabulary) -> TextInit | None:
    """The rows a PEFT TEXT init embedded for this prompt, tokenised with ``vocab``'s tokenizer exactly as
    PEFT does (``tokenizer(text)``, special tokens included, over all ``num_virtual_tokens *
    num_transformer_submodules`` rows); None for other inits."""
    peft = prompt.peft
    if peft is None or peft.init != "TEXT" or not peft.init_text:
        return None
    n_text = len(vocab.encode(peft.init_text))
    if n_text == 0:
        return None
    return TextInit(tuple(vocab.init_token_ids(peft.init_text, int(prompt.vectors.shape[0]))), n_text)
