"""Writing report files: all-or-nothing, never overwriting what the user had unless asked."""

from __future__ import annotations

from pathlib import Path

from audit.cache import atomic_write_bytes
from audit.errors import AuditInputError


def check_writable(paths: list[Path], *, force: bool) -> None:
    """Fails before any work when an output exists (without --force) or names a directory."""
    for path in paths:
        if path.is_dir():
            raise AuditInputError(f"output path {path} is a directory", "pass a file path")
        if path.exists() and not force:
            raise AuditInputError(f"output file {path} already exists", "choose another path or pass --force")
        if path.parent.exists() and not path.parent.is_dir():
            raise AuditInputError(f"output folder {path.parent} is not a directory", "fix the path")


def write_outputs(contents: dict[Path, str]) -> None:
    """Writes every file via temp file + rename; on failure removes what this call wrote."""
    written: list[Path] = []
    try:
        for path, text in contents.items():
            atomic_write_bytes(path, text.encode("utf-8"))
            written.append(path)
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        raise AuditInputError(
            f"cannot write {path} ({exc.strerror})", "check the folder's permissions"
        ) from exc
