"""What to audit: PROMPT arguments (paths, folders of adapters, globs) to named :class:`Item` s.

Names are derived from the paths alone (stable across runs); ``OUT/<name>.json`` is where a batch writes
a prompt's report.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from audit.errors import AuditInputError
from audit.inputs.prompts import PEFT_CONFIG, PEFT_WEIGHTS

GLOB_CHARS = frozenset("*?[")
RESERVED_NAMES = frozenset({"index", "summary"})  # index.html and summary.json live next to the reports


@dataclass(frozen=True)
class Item:
    """One prompt to audit: its report name (``OUT/<name>.json``), its path as given or found, and the
    reference text to compare its readings with when it is not the run's (``AuditConfig.reference_text``,
    else the adapter's ``prompt_tuning_init_text``)."""

    name: str
    path: Path
    reference_text: str | None = None


def single(path: str | Path, *, name: str | None = None) -> Item:
    """A prompt path taken as it is (a folder of adapters is an error, not expanded): a single scan."""
    path = Path(path)
    return Item(name or adapter_names([path])[path.resolve()], path)


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
