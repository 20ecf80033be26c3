"""What the on-disk cache holds, per model and kind, and removing it (``prompt-audit cache info|clear``).

Entries are keyed by content, not by model name, so an entry's model is read from the links the stages
leave: statistics and null models are keyed by the vocabulary's sha256 (the statistics also record the
model spec), a matrix-hash memo holds that sha256, a GGUF conversion records it and its source file,
and the inference model of a GGUF is keyed by the GGUF's sha256. Token tables, term indexes and
behavioural runs carry no such link: they belong to no model here (`cache clear` or `--older-than`
removes them). Nothing here imports torch.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from audit.cache import CACHE_FORMAT, RECORD_SUFFIX, locked, record_path
from audit.errors import AuditInputError

NO_MODEL = "(no one model)"
SHA256 = re.compile(r"[0-9a-f]{64}")
KEY_VERSION = re.compile(r"-v(\w+)$")
STAGING_GRACE_S = 3600.0  # a temp folder younger than this may belong to a running scan


@dataclass(frozen=True)
class Entry:
    """One cache entry (a file or a folder) and its checksum record, as found on disk."""

    kind: str
    path: Path
    size: int  # bytes, the record included
    mtime: float  # when it was written (seconds since the epoch)
    version: str  # the stage version in its key ('v4'), '-' for a hashed key
    model: str | None = None  # the sha256 grouping it with a model, None when it has no link


def info_lines(root: Path, source: str) -> list[str]:
    """``cache info``: location, totals, then one row per (model, kind) with its size and versions."""
    entries = entries_in(root)
    head = [f"cache: {root} ({source})"]
    if not entries:
        return [*head, "empty"]
    names = model_names(entries)
    head.append(
        f"{_size(sum(e.size for e in entries))} in {len(entries)} entries (checksum records: format "
        f"{CACHE_FORMAT}; key versions: the stage's version in each key, '-' inside a hashed key)"
    )
    groups: dict[tuple[str, str, str], list[Entry]] = {}
    for entry in entries:
        if entry.model is None:
            name, ident = NO_MODEL, "-"
        else:
            name, ident = " / ".join(names[entry.model]) or "?", entry.model[:12]
        groups.setdefault((name, ident, entry.kind), []).append(entry)
    rows = [("model", "id", "kind", "entries", "size", "key versions")]
    for (name, ident, kind), group in sorted(
        groups.items(), key=lambda item: (item[0][0] == NO_MODEL, item[0])
    ):
        versions = ",".join(sorted({e.version for e in group}))
        rows.append((name, ident, kind, str(len(group)), _size(sum(e.size for e in group)), versions))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = [
        "  ".join(
            cell.rjust(w) if i in (3, 4) else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    ]
    return [*head, "", *table]


def clear(root: Path, *, model: str | None = None, older_than: float | None = None) -> list[str]:
    """Removes the entries of ``model`` (a name or id prefix) written more than ``older_than`` days ago
    (each filter only when given) and returns one line per entry removed, then a total."""
    entries = entries_in(root)
    if model is not None:
        names = model_names(entries)
        wanted = {m for m, n in names.items() if model in n or (len(model) >= 8 and m.startswith(model))}
        if not wanted:
            raise AuditInputError(
                f"no cached model matches '{model}'",
                "`prompt-audit cache info` lists the cached models by name and id",
            )
        entries = [e for e in entries if e.model in wanted]
    now = time.time()
    if older_than is not None:
        entries = [e for e in entries if now - e.mtime > older_than * 86400]
    lines = []
    for entry in entries:
        with locked(entry.path.parent):  # not while a scan reads it or publishes a new one
            _remove(entry.path)
            _remove(record_path(entry.path))
        lines.append(f"removed {entry.kind}/{entry.path.name} ({_size(entry.size)})")
    if model is None:  # temp folders an interrupted run left behind
        grace = max(STAGING_GRACE_S, (older_than or 0) * 86400)
        for path in _staging(root):
            if now - path.stat().st_mtime > grace:
                _remove(path)
                lines.append(f"removed {path.parent.name}/{path.name} (left by an interrupted run)")
    total = sum(e.size for e in entries)
    lines.append(
        f"removed {len(entries)} entries, {_size(total)}, from {root}" if lines else "nothing to remove"
    )
    return lines


def entries_in(root: Path) -> list[Entry]:
    """Every entry under ``root`` (sorted by kind and name); a record whose entry is gone counts as one."""
    entries = []
    for folder in _listdir(root):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        for path in _listdir(folder):
            if path.name.startswith("."):
                continue  # a write in progress, or one an interrupted run left
            if path.name.endswith(RECORD_SUFFIX):
                entry = path.with_name(path.name[: -len(RECORD_SUFFIX)])
                if entry.exists():
                    continue
                path = entry  # an orphaned record: removable like an entry
            entries.append(_entry(folder.name, path))
    return entries


def model_names(entries: list[Entry]) -> dict[str, tuple[str, ...]]:
    """The names each model id (a vocabulary's or GGUF's sha256) is known by, from the entries' links."""
    names: dict[str, set[str]] = {}
    for entry in entries:
        if entry.model is None:
            continue
        found = names.setdefault(entry.model, set())
        if entry.kind == "stats":
            found.add(_safetensors_metadata(entry.path).get("spec", ""))
        if entry.kind == "gguf":
            found.add(_safetensors_metadata(entry.path / "embeddings.safetensors").get("source", ""))
    return {m: tuple(sorted(n for n in found if n)) for m, found in names.items()}


def _entry(kind: str, path: Path) -> Entry:
    files = [path] if not path.is_dir() else [p for p in path.rglob("*") if p.is_file()]
    record = record_path(path)
    size = sum(p.stat().st_size for p in files if p.exists()) + (
        record.stat().st_size if record.exists() else 0
    )
    mtime = (path if path.exists() else record).stat().st_mtime
    version = KEY_VERSION.search(_stem(path))
    return Entry(kind, path, size, mtime, f"v{version.group(1)}" if version else "-", _model_of(kind, path))


def _model_of(kind: str, path: Path) -> str | None:
    """The sha256 linking an entry to a model: the vocabulary's, else (GGUF files) the GGUF's."""
    stem = _stem(path)
    head = stem.split("-", 1)[0]
    if kind in ("stats", "null") and SHA256.fullmatch(head):
        return head
    if kind == "gguf":
        return _safetensors_metadata(path / "embeddings.safetensors").get("sha256") or stem
    if kind == "lm":
        return _gguf_vocab(path.parent.parent, head)
    if kind == "hashes":  # a memo of a matrix's sha256 (-v2) or of a GGUF file's (-file)
        value = _read_small(path).strip()
        return _gguf_vocab(path.parent.parent, value) if SHA256.fullmatch(value) else None
    if kind == "models":  # a packaged GGUF file, assembled here: its conversion names it as source
        for conversion in _listdir(path.parent.parent / "gguf"):
            meta = _safetensors_metadata(conversion / "embeddings.safetensors")
            if meta.get("source") == path.name:
                return meta.get("sha256") or conversion.name
    return None


def _stem(path: Path) -> str:
    """The entry's key: its name without the kind's suffix (keys hold dots: '-s1.000000-')."""
    return path.stem if path.suffix in (".safetensors", ".json", ".txt", ".f8", ".gguf") else path.name


def _gguf_vocab(root: Path, sha: str) -> str:
    """The vocabulary sha256 of the GGUF file ``sha`` when its conversion is cached, else ``sha``."""
    return _safetensors_metadata(root / "gguf" / sha / "embeddings.safetensors").get("sha256") or sha


def _safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header (read without torch); {} when unreadable."""
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > 100_000_000:
                return {}
            header = json.loads(handle.read(length))
        meta = header.get("__metadata__") or {}
        return {str(k): str(v) for k, v in meta.items()}
    except (OSError, ValueError, struct.error, AttributeError):
        return {}


def _read_small(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[:200]
    except OSError:
        return ""


def _listdir(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise AuditInputError(
            f"cannot read the cache folder {folder} ({exc.strerror})",
            "check its permissions, or point PROMPT_AUDIT_CACHE elsewhere",
        ) from exc


def _staging(root: Path) -> list[Path]:
    return [
        p
        for f in _listdir(root)
        if f.is_dir()
        for p in _listdir(f)
        if p.name.startswith(".") and p.name.endswith(".tmp")
    ]


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass  # already gone (another clear)
    except OSError as exc:
        raise AuditInputError(
            f"cannot remove {path} ({exc.strerror})", "check the cache folder's permissions"
        ) from exc


def _size(n: int) -> str:
    """Decimal units, as disk tools and download pages state sizes."""
    if n < 1000:
        return f"{n} B"
    power = 1
    while power < 3 and n >= 1000 ** (power + 1):
        power += 1
    return f"{n / 1000**power:.1f} {('kB', 'MB', 'GB')[power - 1]}"
