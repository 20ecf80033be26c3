"""The one on-disk cache: every stage gets or builds its entries here, by a versioned key.

Location: $PROMPT_AUDIT_CACHE, else $XDG_CACHE_HOME/prompt-audit, else ~/.cache/prompt-audit; an entry
lives at ``<root>/<kind>/<key><suffix>`` (:func:`entry_path` is the only place that decides), a file or
a folder, with its checksum record ``<entry>.check.json`` beside it (format version, size and sha256 of
every file; sampled blocks for files over 64 MiB, see FULL_HASH_LIMIT). Writes are atomic (a temp file
or folder in the same directory, then renames: the record first, so an entry is never visible without
one, both under a lock on the kind's folder that readers share), so an interrupted or concurrent run
never leaves a half-written or mismatched entry. The cache is an optimisation: every read is checked
against the record first, and an entry that fails the check or cannot be read is rebuilt (one warning
line); a cache that cannot be written degrades to computing in memory (one warning line per process).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from audit.errors import AuditInputError

try:
    import fcntl
except ImportError:  # Windows: writes stay atomic, only not locked
    fcntl = None

T = TypeVar("T")
_warned: set[str] = set()

CACHE_FORMAT = "2"  # layout of the checksum records; an entry recorded under another one is rebuilt
# Files up to this size are hashed whole on every read; larger ones (a converted vocabulary, a model) by
# their size and SAMPLE_BLOCKS evenly spaced blocks, so that a warm scan does not hash a gigabyte: a
# truncated or resized file is always caught, a same-length corruption only where a block lands (safetensors
# still checks its own header on load).
FULL_HASH_LIMIT = 64 << 20
SAMPLE_BLOCKS, SAMPLE_BYTES = 64, 64 << 10
RECORD_SUFFIX = ".check.json"


class DamagedEntry(ValueError):
    """A cache entry that does not match its checksum record: treated as missing."""


def root_and_source() -> tuple[Path, str]:
    """The cache root (not created) and the setting it comes from."""
    configured = os.environ.get("PROMPT_AUDIT_CACHE")
    if configured:
        return Path(configured), "$PROMPT_AUDIT_CACHE"
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "prompt-audit", "$XDG_CACHE_HOME"
    return Path.home() / ".cache" / "prompt-audit", "default"


def root() -> Path:
    """The cache root (not created)."""
    return root_and_source()[0]


def cache_dir(*parts: str) -> Path:
    """``<root>/<parts...>``, created if missing."""
    path = root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def entry_path(kind: str, key: str, suffix: str = "") -> Path:
    """Where the entry ``key`` of ``kind`` lives (its folder is created when it can be)."""
    folder = root() / kind
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass  # unwritable: get_or_build computes in memory
    return folder / f"{key}{suffix}"


def record_path(path: Path) -> Path:
    """The checksum record of the entry at ``path``."""
    return path.with_name(path.name + RECORD_SUFFIX)


def warn(message: str, *, once: str | None = None) -> None:
    """One stderr line per distinct message (or per ``once`` key) and process."""
    key = once or message
    if key not in _warned:
        _warned.add(key)
        print(f"prompt-audit: warning: {message}", file=sys.stderr)


def get_or_build(
    kind: str,
    key: str,
    *,
    build: Callable[[], T],
    save: Callable[[T, Path], None],
    load: Callable[[Path], T],
    suffix: str = "",
) -> T:
    """The cached value of ``key``, or ``build()`` saved atomically under it.

    Args:
        kind: the stage's folder (``stats``, ``null``, ...); key: versioned content key.
        build: computes the value. save: writes it to a temp path (a file, or a folder it creates).
        load: reads an entry that passed :func:`check` (under the kind's shared lock: it must not
            write the cache); any exception means the entry is damaged: it is rebuilt.
    """
    path = entry_path(kind, key, suffix)
    if path.exists():
        try:
            with locked(path.parent, shared=True):
                check(path)
                return load(path)
        except Exception as exc:  # a damaged entry is a cache miss, never a failed audit
            warn_damaged(path, exc)
    value = build()
    store(path, value, save)
    return value


def warn_damaged(path: Path, exc: Exception) -> None:
    """The one warning for an entry that failed its check or its load: it is rebuilt."""
    reason = str(exc).strip().split("\n", 1)[0][:200]
    if isinstance(exc, DamagedEntry):
        damage = f"failed its check ({reason})"
    else:
        damage = f"is unreadable ({type(exc).__name__}{': ' + reason if reason else ''})"
    warn(f"cache entry {path} {damage}; rebuilding it")


def check(path: Path) -> None:
    """Raises :class:`DamagedEntry` unless the entry at ``path`` matches its checksum record."""
    try:
        record = json.loads(record_path(path).read_bytes())
    except FileNotFoundError:
        raise DamagedEntry("no checksum record") from None
    except (OSError, ValueError):
        raise DamagedEntry("unreadable checksum record") from None
    if not isinstance(record, dict) or record.get("format") != CACHE_FORMAT:
        format_ = record.get("format") if isinstance(record, dict) else None
        raise DamagedEntry(f"checksum record of cache format {format_!r}, expected {CACHE_FORMAT!r}")
    try:
        expected = {name: (int(size), str(digest)) for name, (size, digest) in record["files"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise DamagedEntry("unreadable checksum record") from None
    files = _files(path)
    if sorted(expected) != sorted(files):
        raise DamagedEntry("its files differ from the checksum record")
    for name, file in files.items():  # sizes first: a truncated entry is caught without hashing it
        size = file.stat().st_size
        if size != expected[name][0]:
            raise DamagedEntry(f"{name} has {size} bytes, recorded {expected[name][0]}")
    for name, file in files.items():
        if _sha256(file) != expected[name][1]:
            raise DamagedEntry(f"{name} fails its sha256 checksum")


def _files(path: Path) -> dict[str, Path]:
    """The files of an entry (itself, or every file under its folder), by path relative to its kind."""
    found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {p.relative_to(path.parent).as_posix(): p for p in found}


def _sha256(path: Path, chunk: int = 1 << 20) -> str:
    """The file's sha256, or above FULL_HASH_LIMIT the sha256 of its size and sampled blocks (the first
    and last included), prefixed ``sampled:``."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as handle:
        if size <= FULL_HASH_LIMIT:
            while block := handle.read(chunk):
                digest.update(block)
            return digest.hexdigest()
        digest.update(str(size).encode())
        last = size - SAMPLE_BYTES
        for k in range(SAMPLE_BLOCKS):
            handle.seek(last * k // (SAMPLE_BLOCKS - 1))
            digest.update(handle.read(SAMPLE_BYTES))
    return "sampled:" + digest.hexdigest()


def file_digest(path: Path) -> str:
    """The digest a checksum record keeps for ``path`` (sampled above FULL_HASH_LIMIT)."""
    return _sha256(path)


def store(path: Path, value: T, save: Callable[[T, Path], None]) -> None:
    """Saves ``value`` at ``path`` atomically, with its checksum record; an unwritable cache only warns.

    A folder entry already there is kept when it passes its check (a concurrent run wrote it), else
    replaced."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        _cannot_write(path.parent, exc)
        return
    tmp = staging / path.name
    try:
        save(value, tmp)
        mode = _default_mode()  # mkstemp and safetensors write 0600; keep the umask's default
        for file in _files(tmp).values():
            os.chmod(file, mode)
        files = {name: [file.stat().st_size, _sha256(file)] for name, file in _files(tmp).items()}
        record = staging / record_path(path).name
        record.write_text(json.dumps({"format": CACHE_FORMAT, "files": files}, sort_keys=True))
        os.chmod(record, mode)
        # Locked, so that two writers' records and entries never interleave (rebuilt entries need not
        # be byte-identical: safetensors orders its metadata at random), and readers see both or neither.
        with locked(path.parent):
            if path.is_dir():
                if _passes(path):
                    return
                shutil.rmtree(path)
            os.replace(record, record_path(path))  # the record first: no entry is ever without one
            os.replace(tmp, path)
    except AuditInputError:  # a save that converts its input (a GGUF file) found it unreadable
        raise
    except Exception as exc:  # disk full mid-write: an OSError, or a SafetensorError from safetensors
        _cannot_write(path, exc)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _passes(path: Path) -> bool:
    try:
        check(path)
    except DamagedEntry:
        return False
    return True


@contextmanager
def locked(folder: Path, *, shared: bool = False) -> Iterator[None]:
    """An advisory lock (flock) on a kind's folder: exclusive to publish an entry, shared to read one.
    Without fcntl (Windows) or a lock file that cannot be opened (a read-only cache), no lock."""
    fd = None
    if fcntl is not None:
        for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
            try:
                fd = os.open(folder / ".lock", flags, 0o666)
                break
            except OSError:
                continue
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            except OSError:
                pass  # a file system without locks: the renames stay atomic, only not paired
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _cannot_write(where: Path, exc: Exception) -> None:
    reason = getattr(exc, "strerror", None) or f"{type(exc).__name__}: {exc}"
    warn(f"cannot write the cache at {where} ({reason}); computing in memory", once="cache-write")


def _default_mode() -> int:
    """0o666 minus the process umask: what a plain open() would have created (mkstemp makes 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` via a temp file in the same directory and a rename (report files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_bytes(data: bytes, path: Path) -> None:
    path.write_bytes(data)


def save_text(text: str, path: Path) -> None:
    path.write_text(text, encoding="utf-8")


def load_sha256(path: Path) -> str:
    """A memoised sha256 (a ``hashes`` entry), after :func:`check`."""
    value = path.read_text(encoding="utf-8").strip()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError("not a sha256")
    return value


def save_safetensors(tensors: dict, path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)


def load_safetensors(path: Path) -> dict:
    """The tensors of a cache entry, after :func:`check` (raises :class:`DamagedEntry` if it fails)."""
    from safetensors.torch import load_file

    with locked(path.parent, shared=True):
        check(path)
        return load_file(str(path))
