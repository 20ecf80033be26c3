"""Loading: packaged suites by id, suite files by path, and parsing a file's bytes into a Suite."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from importlib.resources import files as resource_files
from pathlib import Path

from audit.behaviour.suite.locate import _Locator, _Problems
from audit.behaviour.suite.records import PACKAGE, PACKAGED_DISPLAY, Suite
from audit.behaviour.suite.validate import _validate
from audit.errors import AuditInputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _suites_root():
    try:
        return resource_files(PACKAGE)
    except ModuleNotFoundError:  # pragma: no cover - imported from a source tree without the package
        return Path(__file__).resolve().parent.parent / "suites"


def packaged_suites() -> tuple[str, ...]:
    """Ids of the suites shipped with prompt-audit, sorted."""
    root = _suites_root()
    return tuple(sorted(p.name[: -len(".toml")] for p in root.iterdir() if p.name.endswith(".toml")))


def load_suite(spec: str | Path) -> Suite:
    """Loads and validates a suite: a packaged id (``hiring-es``) or a path to a ``.toml`` file.

    Raises:
        AuditInputError: unknown id, missing file, or any problem in the file (``file:line``).
    """
    packaged = packaged_suites()
    text_spec = str(spec)
    looks_like_path = (
        isinstance(spec, Path)
        or text_spec.endswith(".toml")
        or "/" in text_spec
        or os.sep in text_spec
        or (text_spec not in packaged and Path(text_spec).is_file())
    )
    if not looks_like_path:
        if text_spec not in packaged:
            raise AuditInputError(
                f"unknown behaviour suite '{text_spec}'",
                f"use a packaged suite ({', '.join(packaged)}) or a path to a .toml file",
            )
        raw = (_suites_root() / f"{text_spec}.toml").read_bytes()
        suite = parse_suite(raw, f"{PACKAGED_DISPLAY}/{text_spec}.toml", packaged=True)
        if suite.id != text_spec:
            raise AuditInputError(
                f"{suite.path}:1: packaged suite file declares id '{suite.id}'",
                f'set id = "{text_spec}" (a packaged suite\'s id is its file name)',
            )
        return suite
    path = Path(spec)
    if not path.is_file():
        raise AuditInputError(
            f"behaviour suite file {path} does not exist",
            f"check the path, or use a packaged suite ({', '.join(packaged)})",
        )
    return parse_suite(path.read_bytes(), str(path))


def parse_suite(raw: bytes, path: str, *, packaged: bool = False) -> Suite:
    """Validates a suite file's bytes; ``path`` is how errors name the file."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AuditInputError(f"{path}:1: not UTF-8 text ({exc.reason})", "save the suite as UTF-8") from exc
    data = _parse_toml(text, path)
    problems = _Problems(path)
    parts = _validate(data, _Locator(text), problems)
    problems.raise_if_any()
    if parts is None:  # pragma: no cover - every path returning None records a problem first
        raise AuditInputError(f"{path}:1: invalid behaviour suite", "see audit/behaviour/suites/FORMAT.md")
    return Suite(**parts, path=path, sha256=hashlib.sha256(raw).hexdigest(), packaged=packaged)


def _parse_toml(text: str, path: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line = getattr(exc, "lineno", None)  # Python >= 3.14
        match = re.search(r"line (\d+)", message)
        if line is None and match:
            line = int(match.group(1))
        if line is None and "end of document" in message:
            line = max(1, len(text.splitlines()))
        detail = getattr(exc, "msg", None) or re.sub(r"\s*\(at [^)]*\)$", "", message)
        raise AuditInputError(
            f"{path}:{line or 1}: malformed TOML ({detail})", "fix the TOML syntax on that line"
        ) from exc
