"""Many prompts in one run: ``prompt-audit scan P1 P2 DIR... --out-dir OUT``.

inputs (expand paths and globs, drop duplicates, name each prompt) -> load each prompt and choose its model
-> per base model: vocabulary, statistics, term index and null model loaded once; every prompt of the
model projected in one pass over the vocabulary; flags and verdict per prompt -> behaviour (optional: the
model loaded once per base model, or in ``jobs`` worker processes) -> one :class:`Outcome` per prompt.

A prompt that cannot be audited (unreadable, refused, another model's width) is an :class:`Outcome` with
its one-line reason, not a failed run. Every audit equals the single scan of that prompt with the same
options byte for byte once rendered. Rendering is separate (:mod:`audit.report.batch`).
"""

from __future__ import annotations

import glob
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from audit.config import AuditConfig
from audit.errors import AuditInputError
from audit.evidence.stage import SharedEvidence
from audit.geometry.stage import project_prompts, statistics
from audit.inputs.formats import load_model
from audit.inputs.identity import WARNING, ModelChoice, check_model, choose_model
from audit.inputs.models import ModelFiles
from audit.inputs.prompts import PEFT_CONFIG, PEFT_WEIGHTS, SoftPrompt, load_prompt
from audit.pipeline import (
    Scanned,
    applicable_methods,
    assemble,
    behaviour_tests,
    check_options,
    scan_prompt,
)
from audit.records import AuditResult, BehaviourResult
from audit.terms.load import load_wordlists

GLOB_CHARS = frozenset("*?[")
RESERVED_NAMES = frozenset({"index", "summary"})  # index.html and summary.json live next to the reports


@dataclass(frozen=True)
class Item:
    """One prompt of a batch: its report name (``OUT/<name>.json``) and its path as given or found."""

    name: str
    path: Path


@dataclass(frozen=True)
class Outcome:
    """What a batch made of one prompt: its audit, or the one-line reason (exit 2) it has none."""

    item: Item
    result: AuditResult | None = None
    error: str | None = None


@dataclass(frozen=True)
class Inputs:
    """The prompts a batch audits, in name order, and the paths left out as duplicates of another."""

    items: tuple[Item, ...]
    duplicates: tuple[Path, ...]


# ---------------------------------------------------------------------------------------------------
# Inputs: paths, globs and folders to named prompts


def collect(specs: Sequence[str | Path]) -> Inputs:
    """Expands the PROMPT arguments: adapter folders and prompt files as given, every PEFT adapter folder
    below a folder that is not one itself, and glob patterns (``**`` recursive); a path met twice (also
    through another spelling) is audited once.

    Raises:
        AuditInputError: a path that does not exist, a glob or folder that yields no prompt.
    """
    paths: list[Path] = []
    for spec in specs:
        paths += _expand(str(spec))
    seen: dict[Path, Path] = {}
    duplicates = []
    for path in paths:
        key = path.resolve()
        if key in seen:
            duplicates.append(path)
        else:
            seen[key] = path
    if not seen:
        raise AuditInputError("no prompt to audit", "pass adapter folders, prompt files or globs")
    names = adapter_names(list(seen))
    items = sorted((Item(names[key], path) for key, path in seen.items()), key=lambda i: i.name)
    return Inputs(tuple(items), tuple(duplicates))


def _expand(spec: str) -> list[Path]:
    path = Path(os.path.expanduser(spec))
    if path.exists():
        return _below(path, strict=True)
    if GLOB_CHARS & set(spec):
        found = [
            p
            for match in sorted(glob.glob(os.path.expanduser(spec), recursive=True))
            for p in _below(Path(match), strict=False)
        ]
        if not found:
            raise AuditInputError(
                f"the pattern {spec!r} matches no prompt file or adapter folder",
                "check the pattern (quote it so the shell does not expand it first)",
            )
        return found
    raise AuditInputError(f"prompt path {path} does not exist", "check the path")


def _below(path: Path, *, strict: bool) -> list[Path]:
    """A prompt file or adapter folder itself; else the adapter folders below a folder (sorted)."""
    if not path.is_dir() or (path / PEFT_CONFIG).is_file():
        return [path]
    found = sorted(config.parent for config in path.rglob(PEFT_CONFIG) if config.is_file())
    if not found and strict:
        raise AuditInputError(
            f"{path} holds no PEFT adapter (no {PEFT_CONFIG} in it or in any folder below it)",
            "pass adapter folders, prompt files (.safetensors, .npy, .pt) or a folder that contains adapters",
        )
    return found


def adapter_names(paths: Sequence[Path]) -> dict[Path, str]:
    """A unique report name per path (keyed by the resolved path), derived from the path alone.

    A name is the last component of the resolved path (a prompt file's stem; an adapter's weights file
    counts as its folder), lengthened with parent folders ``parent-name`` while names collide (compared
    case-insensitively, for case-insensitive file systems); names still equal get ``-2``, ``-3`` ... in
    path order. Characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``. ``index`` and
    ``summary`` are taken by the batch's own files. The same set of paths always gives the same names.
    """
    parts = {p.resolve(): _name_parts(p.resolve()) for p in paths}
    depth = dict.fromkeys(parts, 1)

    def name(key: Path) -> str:
        return "-".join(parts[key][-depth[key] :])

    while True:  # lengthen clashing names while a parent folder can tell them apart
        groups: dict[str, list[Path]] = {}
        for key in parts:
            groups.setdefault(name(key).casefold(), []).append(key)
        deeper = [
            key
            for label, keys in groups.items()
            if len(keys) > 1 or label in RESERVED_NAMES
            if len({tuple(parts[k]) for k in keys}) > 1 or label in RESERVED_NAMES
            for key in keys
            if depth[key] < len(parts[key])
        ]
        if not deeper:
            break
        for key in deeper:
            depth[key] += 1
    names = {k: name(k) for k in parts}
    taken = {n.casefold() for n in names.values()} | RESERVED_NAMES
    for key in sorted(_clashes(names), key=str):
        base = names[key]
        first = min((k for k in parts if names[k].casefold() == base.casefold()), key=str)
        if key == first and base.casefold() not in RESERVED_NAMES:
            continue
        n = 2
        while f"{base}-{n}".casefold() in taken:
            n += 1
        names[key] = f"{base}-{n}"
        taken.add(names[key].casefold())
    return names


def _clashes(names: dict[Path, str]) -> set[Path]:
    """The keys whose name equals another's (case-insensitively) or a reserved name."""
    count: dict[str, int] = {}
    for value in names.values():
        count[value.casefold()] = count.get(value.casefold(), 0) + 1
    return {k for k, v in names.items() if count[v.casefold()] > 1 or v.casefold() in RESERVED_NAMES}


def _name_parts(path: Path) -> list[str]:
    parts = list(path.parts[1:]) or ["prompt"]
    if path.is_file():
        parts = parts[:-1] if path.name in PEFT_WEIGHTS and len(parts) > 1 else parts[:-1] + [path.stem]
    return [re.sub(r"[^A-Za-z0-9._-]+", "_", part).strip("._") or "prompt" for part in parts]


# ---------------------------------------------------------------------------------------------------
# Running


@dataclass(frozen=True)
class _Loaded:
    item: Item
    prompt: SoftPrompt
    choice: ModelChoice


Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def run_batch(
    items: Sequence[Item], config: AuditConfig, *, jobs: int = 1, log: Log = _stderr
) -> list[Outcome]:
    """Audits every item with ``config`` (its ``prompt`` is ignored); outcomes in ``items`` order.

    Args:
        jobs: worker processes for the behavioural check (each loads its own copy of the model); 1 runs
            it here, loading each base model once.
        log: receives one line per warning and per prompt that could not be audited.

    Raises:
        AuditInputError: an option that is wrong for every prompt (checked before any loading).
    """
    if jobs < 1:
        raise AuditInputError(f"--jobs {jobs} is not positive", "use --jobs 1 (the default) or more")
    check_options(config)
    if config.behaviour:
        from audit.behaviour.suite import load_suite

        load_suite(config.behaviour)  # a bad suite is wrong for every prompt: exit 2 before any work
    lists = load_wordlists(
        user_dirs=config.wordlist_dirs, languages=config.languages, allowlist=config.allowlist
    )
    outcomes: dict[str, Outcome] = {}
    groups: dict[ModelFiles, list[_Loaded]] = {}
    choose = _model_chooser(config.model)
    for item in items:
        try:
            prompt = load_prompt(item.path, key=config.key)
            loaded = _Loaded(item, prompt, choose(prompt))
        except AuditInputError as exc:
            outcomes[item.name] = _failed(item, exc, log)
            continue
        groups.setdefault(loaded.choice.files, []).append(loaded)
    pending: list[_Pending] = []
    for files, members in groups.items():
        for found in _audit_model(files, members, lists, config, jobs == 1, log):
            if isinstance(found, Outcome):
                outcomes[found.item.name] = found
            else:
                pending.append(found)
    if pending:  # jobs > 1: the behavioural checks run in worker processes
        for outcome in _behaviour_pool(pending, jobs, log):
            outcomes[outcome.item.name] = outcome
    return [outcomes[item.name] for item in items]


@dataclass(frozen=True)
class _Pending:
    """A scanned prompt waiting for its behavioural check."""

    item: Item
    scanned: Scanned
    files: ModelFiles


def _model_chooser(given: str | None) -> Callable[[SoftPrompt], ModelChoice]:
    """:func:`choose_model` memoised on what it reads (resolving a packaged model hashes its file)."""
    memo: dict[tuple, ModelChoice] = {}

    def choose(prompt: SoftPrompt) -> ModelChoice:
        peft = prompt.peft
        key = (peft.base_model, peft.gguf_file) if peft else (None, None)
        if key not in memo:
            memo[key] = choose_model(given, peft, prompt.path)  # errors are not memoised: they name the path
        return memo[key]

    return choose


def _failed(item: Item, exc: AuditInputError, log: Log) -> Outcome:
    log(f"prompt-audit: {item.name}: error: {exc}")
    return Outcome(item, error=str(exc))


def _audit_model(
    files: ModelFiles, members: list[_Loaded], lists, config: AuditConfig, behave: bool, log: Log
) -> Iterator[Outcome | _Pending]:
    """The prompts of one base model, loading it (and its statistics, term index and null model) once and
    projecting them in one pass. Yields an :class:`Outcome` per prompt, or a :class:`_Pending` awaiting
    its behavioural check when ``behave`` is False."""
    try:
        if config.behaviour:
            from audit.behaviour.stage import preflight

            preflight(config, files.spec)
        vocab = load_model(files, allow_pickle=config.allow_pickle_model, progress=config.progress)
        applied, _ = applicable_methods(config, vocab)
        stats = statistics(vocab, applied)
    except AuditInputError as exc:
        for member in members:
            yield _failed(member.item, exc, log)
        return
    ready: list[tuple[_Loaded, tuple[str, ...]]] = []
    for member in members:
        try:
            identity = check_model(
                member.prompt,
                vocab,
                files,
                given=config.model,
                mismatch_ok=config.model_mismatch_ok,
                allow_pickle=config.allow_pickle_model,
            )
        except AuditInputError as exc:
            yield _failed(member.item, exc, log)
            continue
        notes = member.choice.notes + identity
        for note in notes:
            if note.startswith(WARNING):
                log(f"prompt-audit: warning: {member.item.name}: {note.removeprefix(WARNING)}")
        ready.append((member, notes))
    if not ready:
        return
    tops = project_prompts([m.prompt for m, _ in ready], vocab, applied, stats)
    shared = SharedEvidence(vocab, stats, lists, applied)
    model = _LazyModel(files, config)
    for (member, notes), top in zip(ready, tops):
        item = member.item
        try:
            scanned = scan_prompt(
                member.prompt, vocab, lists, config, notes=notes, stats=stats, tops=top, shared=shared
            )
            if not scanned.config.behaviour:
                yield Outcome(item, assemble(scanned, None))
            elif not behave:
                yield _Pending(item, scanned, files)
            else:
                yield Outcome(item, assemble(scanned, _behaviour(scanned, model.get())))
        except AuditInputError as exc:
            yield _failed(item, exc, log)


class _LazyModel:
    """The causal LM of one base model, loaded on first use (a load that failed is not retried)."""

    def __init__(self, files: ModelFiles, config: AuditConfig) -> None:
        self.files, self.config = files, config
        self._lm = None
        self._error: AuditInputError | None = None

    def get(self):
        from audit.behaviour.lm import load_causal_lm

        if self._error is not None:
            raise self._error
        if self._lm is None:
            try:
                self._lm = load_causal_lm(
                    self.files, device=self.config.device, progress=self.config.progress
                )
            except AuditInputError as exc:
                self._error = exc
                raise
        return self._lm


def _behaviour(scanned: Scanned, lm) -> BehaviourResult:
    from audit.behaviour.stage import check

    tests = behaviour_tests(scanned)
    return check(scanned.prompt, scanned.model.spec, scanned.reference, scanned.config, tests, lm=lm)


# ---------------------------------------------------------------------------------------------------
# --jobs N: behavioural checks in worker processes, each with its own copy of the model

_WORKER_MODEL: dict[tuple, object] = {}  # (files, device) -> the worker's CausalLM; one model at a time


def _behaviour_pool(pending: list[_Pending], jobs: int, log: Log) -> list[Outcome]:
    """Runs the pending behavioural checks in ``jobs`` spawned processes; each gets cores // jobs torch
    threads (2 threads time-sharing one core are several times slower than 1, benchmarks/README.md)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
    outcomes = []
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(pending)), mp_context=context, initializer=_init_worker, initargs=(threads,)
    ) as pool:
        futures = []
        for p in pending:
            s = p.scanned  # only what the check reads: a Scanned holds the vocabulary statistics
            job = (s.prompt, p.files, s.model.spec, s.reference, s.config, behaviour_tests(s))
            futures.append(pool.submit(_behaviour_job, *job))
        for p, future in zip(pending, futures):
            try:
                outcomes.append(Outcome(p.item, assemble(p.scanned, future.result())))
            except AuditInputError as exc:
                outcomes.append(_failed(p.item, exc, log))
    return outcomes


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _behaviour_job(
    prompt: SoftPrompt, files: ModelFiles, spec: str, reference: str | None, config: AuditConfig, tests
) -> BehaviourResult:
    from audit.behaviour.lm import load_causal_lm
    from audit.behaviour.stage import check

    config = replace(config, progress=False)  # bars of several processes would interleave
    key = (files, config.device)
    if key not in _WORKER_MODEL:
        _WORKER_MODEL.clear()
        _WORKER_MODEL[key] = load_causal_lm(files, device=config.device, progress=False)
    return check(prompt, spec, reference, config, tests, lm=_WORKER_MODEL[key])
