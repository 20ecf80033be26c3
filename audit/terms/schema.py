"""Sensitive-term wordlists: the schema (categories, kinds, policies, sources) and typed records.

The categories and their report labels are data (``wordlists/categories.toml``); schema of the lists:
wordlists/SCHEMA.md.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib.resources import files as resource_files
from pathlib import Path

from audit.errors import AuditInputError
from audit.records import Severity

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SCHEMA_VERSION = 1
KINDS = ("identity", "descriptor", "proxy_name", "slur")
POLICIES = ("count", "downweight", "report_only")
SOURCE_DESCRIPTIONS = {
    "ley15": "Spain, Ley 15/2022 (BOE-A-2022-11589), art. 2.1 protected grounds",
    "eu_charter": "EU Charter of Fundamental Rights, art. 21",
    "eeoc": "US Title VII and laws enforced by the EEOC (ADEA, ADA, GINA)",
    "esbbq": "EsBBQ/CaBBQ vocabulary (langtech-bsc, Apache-2.0 / CC BY 4.0): cross-reference",
    "bbq": "BBQ vocabulary and proper names (nyu-mll, CC BY 4.0): cross-reference",
    "holisticbias": "HolisticBias v1.1 descriptors (CC BY-SA 4.0): cross-reference only, nothing copied",
    "mmhb": "MMHB Spanish HolisticBias (treated as CC BY-SA): cross-reference only, nothing copied",
    "ldnoobw": "LDNOOBW lists (CC BY 4.0): cross-reference",
    "ine": "INE (Instituto Nacional de Estadística) name-frequency statistics",
    "curated": "curated by the prompt-audit developers",
}
SOURCE_IDS = tuple(SOURCE_DESCRIPTIONS)
ID_PATTERN = re.compile(r"^[a-z]{2}\.[a-z_]+\.[a-z0-9_]+$")
LOW_COVERAGE = 0.5  # warn when fewer than half of a category's terms are whole tokens
PREFIX_MIN_CHARS = 5  # a word-start piece this long can stand for a multi-token form (partial hit)


def bundle_root():
    """The shipped lists: package data ``audit._wordlists`` when installed (wheel or editable), else the
    source checkout's ``wordlists/`` (when ``audit`` is imported straight from the repo root)."""
    try:
        return resource_files("audit._wordlists")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "wordlists"


def line_of(text: str, needle: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    return None


def parse_toml(text: str, path: str) -> dict:
    """TOML with errors as ``path:line`` (exit 2)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        match = re.search(r"line (\d+)", str(exc))
        if line is None and match:
            line = int(match.group(1))
        if line is None and "end of document" in str(exc):
            line = max(1, len(text.splitlines()))
        message = getattr(exc, "msg", None) or str(exc)
        raise AuditInputError(
            f"{path}:{line or 1}: malformed TOML ({message})", "fix the file or remove it from --wordlists"
        ) from exc


@dataclass(frozen=True)
class NameRule:
    """Size rule of a first-name proxy category: per group, instead of distinct lemmas."""

    min_per_group: int
    required_groups: tuple[str, ...]
    min_groups: int


@dataclass(frozen=True)
class Category:
    id: str
    label: dict[str, str]  # report language -> label
    min_lemmas: int = 0
    names: NameRule | None = None


@cache
def categories() -> dict[str, Category]:
    """The categories, in file order, from the bundle's ``categories.toml``."""
    path = "wordlists/categories.toml"
    data = parse_toml((bundle_root() / "categories.toml").read_text(encoding="utf-8"), path)
    found = {}
    for key, raw in data.items():
        if key == "schema":
            continue
        names = raw.get("names")
        rule = None
        if names:
            rule = NameRule(names["min_per_group"], tuple(names["required_groups"]), names["min_groups"])
        found[key] = Category(key, dict(raw["label"]), int(raw.get("min_lemmas", 0)), rule)
    return found


@dataclass(frozen=True)
class Term:
    id: str
    lemma: str
    forms: tuple[str, ...]
    kind: str
    severity: Severity
    policy: str
    ambiguity: str | None
    group: str | None
    sources: tuple[str, ...]
    language: str
    category: str
    list_id: str


@dataclass(frozen=True)
class WordlistFile:
    id: str
    version: str
    language: str
    category: str
    licence: str
    sha256: str
    path: str  # bundle-relative for shipped files, absolute for user files
    n_terms: int
    origin: str  # "bundle" or "user"


@dataclass(frozen=True)
class AllowRule:
    form: str
    language: str
    reason: str
    category: str | None = None
    tokenizer: str | None = None


@dataclass(frozen=True)
class Wordlists:
    """The active terms after user overrides, deprecations and the language filter."""

    bundle_version: str
    files: tuple[WordlistFile, ...]
    terms: tuple[Term, ...]
    allow: tuple[AllowRule, ...] = ()

    @property
    def sha256(self) -> str:
        digest = hashlib.sha256(self.bundle_version.encode())
        for f in sorted(self.files, key=lambda f: (f.origin, f.id, f.sha256)):
            digest.update(f"{f.origin}|{f.id}|{f.sha256}".encode())
        for rule in self.allow:
            digest.update(repr(rule).encode())
        return digest.hexdigest()

    def term(self, term_id: str) -> Term:
        return self.by_id[term_id]

    @cached_property
    def by_id(self) -> dict[str, Term]:
        return {t.id: t for t in self.terms}


@dataclass
class Problems:
    """Validation problems, each as 'file:line: message'."""

    items: list[str] = field(default_factory=list)

    def add(self, path: str, line: int | None | Callable[[], int | None], message: str) -> None:
        """``line`` may be a callable, so finding the line costs nothing on valid files."""
        if callable(line):
            line = line()
        self.items.append(f"{path}:{line or 1}: {message}")


# ---------------------------------------------------------------------------------------------
# Normalisation
