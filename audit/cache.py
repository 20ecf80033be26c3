"""The one on-disk cache: every stage gets or builds its entries here, by a versioned key.

Location: $PROMPT_AUDIT_CACHE, else $XDG_CACHE_HOME/prompt-audit, else ~/.cache/prompt-audit; an entry
lives at ``<root>/<kind>/<key><suffix>`` (:func:`entry_path` is the only place that decides). Writes
are atomic (a temp file or folder in the same directory, then a rename), so an interrupted or
concurrent run never leaves a half-written entry. The cache is an optimisation: an entry that cannot
be read is rebuilt (one warning line), and a cache that cannot be written degrades to computing in
memory (one warning line).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
_warned: set[str] = set()


def root() -> Path:
    """The cache root (not created)."""
    configured = os.environ.get("PROMPT_AUDIT_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "prompt-audit"


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


def warn(message: str) -> None:
    """One stderr line per distinct message and process."""
    if message not in _warned:
        _warned.add(message)
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
        load: reads an entry; any exception means the entry is damaged: it is rebuilt.
    """
    path = entry_path(kind, key, suffix)
    if path.exists():
        try:
            return load(path)
        except Exception as exc:  # a damaged entry is a cache miss, never a failed audit
            warn(f"cache entry {path} is unreadable ({type(exc).__name__}); rebuilding it")
    value = build()
    store(path, value, save)
    return value


def store(path: Path, value: T, save: Callable[[T, Path], None]) -> None:
    """Saves ``value`` at ``path`` atomically; an unwritable cache only warns."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        warn(f"cannot write the cache in {path.parent} ({exc.strerror}); computing in memory")
        return
    tmp = staging / path.name
    try:
        save(value, tmp)
        if tmp.is_file():
            os.chmod(tmp, _default_mode())
        if path.is_dir():  # a concurrent run built the same folder entry first: keep theirs
            return
        os.replace(tmp, path)
    except OSError as exc:
        warn(f"cannot write the cache entry {path} ({exc.strerror}); computing in memory")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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


def save_safetensors(tensors: dict, path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)


def load_safetensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))
