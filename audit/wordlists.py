"""Sensitive-term wordlists: loading, validation, user overrides, allow-lists, vocabulary matching.

The bundle ships inside the package (``audit._wordlists``, the repo's ``wordlists/`` folder) and is read
with importlib.resources. Schema: wordlists/SCHEMA.md.

Matching rule (documented in the report): each vocabulary id is decoded with the tokenizer; its surface
(leading space / ``▁`` / ``Ġ`` / ``##`` removed) is NFC-normalised and casefolded, accents stripped where
the tokenizer strips them; a token matches a term when that equals one of the term's normalised forms
(a whole-token hit). A hit on a token that does not start a word (a sub-word piece) is marked
``word_start = false`` and weighs one severity level less. Forms that no single token represents are
multi-token forms: they give a *partial* hit at a position when all their pieces of 3+ characters
appear together in one method's neighbour set, or when the form's first, word-start piece has 5+
characters and covers at least half of the form (``▁musul`` for ``musulmana``; single-word forms
only) and is a neighbour. Short all-caps forms (ALS, VIH) match case-sensitively where the tokenizer
keeps case.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import unicodedata
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cached_property, partial
from importlib.resources import files as resource_files
from pathlib import Path

from audit.cache import atomic_write_bytes, cache_dir
from audit.errors import AuditInputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SCHEMA_VERSION = 1
CATEGORIES = (
    "race_ethnicity",
    "nationality_origin",
    "sex_gender",
    "sexual_orientation",
    "religion_belief",
    "age",
    "disability",
    "health",
    "socioeconomic",
    "language",
    "political_opinion",
    "proxy_names",
    "slurs",
)
CORE_CATEGORIES = (
    "race_ethnicity",
    "sex_gender",
    "religion_belief",
    "age",
    "disability",
    "socioeconomic",
    "political_opinion",
)
MIN_LEMMAS = {
    **dict.fromkeys(CORE_CATEGORIES, 20),
    "sexual_orientation": 10,
    "language": 10,
    "health": 10,
    "slurs": 10,
    "nationality_origin": 50,
}
MIN_NAMES_PER_GROUP = 50
REQUIRED_NAME_GROUPS = ("female", "male")
MIN_NAME_GROUPS = 4
KINDS = ("identity", "descriptor", "proxy_name", "slur")
POLICIES = ("count", "downweight", "report_only")
SOURCE_IDS = (
    "ley15",
    "eu_charter",
    "eeoc",
    "esbbq",
    "bbq",
    "holisticbias",
    "mmhb",
    "ldnoobw",
    "ine",
    "curated",
)
ID_PATTERN = re.compile(r"^[a-z]{2}\.[a-z_]+\.[a-z0-9_]+$")
LOW_COVERAGE = 0.5
PREFIX_MIN_CHARS = 5  # warn when fewer than half of a category's terms are whole tokens


class Severity(IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str) -> Severity:
        return cls[value.upper()]


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


def normalize(text: str, *, strip_accents: bool = False) -> str:
    """NFC + casefold (+ accent stripping for tokenizers that strip accents)."""
    text = unicodedata.normalize("NFC", text).casefold().strip()
    if strip_accents:
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        text = unicodedata.normalize("NFC", text)
    return text


def token_word(surface: str, piece: str) -> str:
    """The word a token spells: its decoded surface without the word-boundary marker."""
    word = surface
    if piece.startswith("##") and word.startswith("##"):
        word = word[2:]
    return word.strip().lstrip("▁Ġ")


# ---------------------------------------------------------------------------------------------
# Loading and validation (I/O)


def _line_of(text: str, needle: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    return None


def _parse_toml(text: str, path: str) -> dict:
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


def validate_file(data: dict, text: str, path: str, problems: Problems) -> list[Term]:
    """Checks one wordlist file against the schema; returns its terms (possibly partial on errors)."""
    for key in ("schema", "id", "version", "language", "category", "licence"):
        if key not in data:
            problems.add(path, 1, f"missing top-level key '{key}'")
    if data.get("schema", SCHEMA_VERSION) != SCHEMA_VERSION:
        problems.add(path, _line_of(text, "schema"), f"schema {data.get('schema')} is not {SCHEMA_VERSION}")
    language = str(data.get("language", ""))
    category = str(data.get("category", ""))
    if category and category not in CATEGORIES:
        problems.add(
            path, _line_of(text, "category"), f"unknown category '{category}' (use one of {CATEGORIES})"
        )
    if language and not re.fullmatch(r"[a-z]{2}", language):
        problems.add(path, _line_of(text, "language"), f"language '{language}' is not an ISO 639-1 code")
    list_id = str(data.get("id", ""))
    if list_id and list_id != f"{language}.{category}":
        problems.add(path, _line_of(text, "id ="), f"file id '{list_id}' should be '{language}.{category}'")
    raw_terms = data.get("terms", [])
    if not isinstance(raw_terms, list):
        problems.add(path, _line_of(text, "terms"), "'terms' must be an array of tables ([[terms]])")
        return []
    terms: list[Term] = []
    for index, raw in enumerate(raw_terms):
        term_id = str(raw.get("id", ""))
        line = partial(_line_of, text, f'"{term_id}"') if term_id else None
        where = f"term #{index + 1}" + (f" '{term_id}'" if term_id else "")
        if raw.get("deprecated") is True:
            if not ID_PATTERN.match(term_id):
                problems.add(path, line, f"{where}: deprecated entry needs a valid id")
            terms.append(_deprecated(term_id, language, category, list_id))
            continue
        missing = [k for k in ("id", "lemma", "forms", "kind", "severity", "sources") if k not in raw]
        if missing:
            problems.add(path, line, f"{where}: missing {', '.join(missing)}")
            continue
        if not ID_PATTERN.match(term_id) or not term_id.startswith(f"{language}.{category}."):
            problems.add(path, line, f"{where}: id must look like '{language}.{category}.<ascii_slug>'")
        forms = raw["forms"]
        if (
            not isinstance(forms, list)
            or not forms
            or not all(isinstance(f, str) and f.strip() for f in forms)
        ):
            problems.add(path, line, f"{where}: forms must be a non-empty list of strings")
            continue
        if len(set(forms)) != len(forms):
            dupes = sorted({f for f in forms if forms.count(f) > 1})
            problems.add(path, line, f"{where}: duplicate forms {dupes}")
        if any(unicodedata.normalize("NFC", f) != f for f in forms):
            problems.add(path, line, f"{where}: forms must be NFC-normalised")
        if raw["kind"] not in KINDS:
            problems.add(path, line, f"{where}: kind '{raw['kind']}' not in {KINDS}")
        if str(raw["severity"]).upper() not in Severity.__members__:
            problems.add(path, line, f"{where}: severity '{raw['severity']}' not in low/medium/high")
            continue
        policy = raw.get("policy", "count")
        if policy not in POLICIES:
            problems.add(path, line, f"{where}: policy '{policy}' not in {POLICIES}")
        if policy != "count" and not raw.get("ambiguity"):
            problems.add(path, line, f"{where}: policy '{policy}' needs an 'ambiguity' note")
        if raw["kind"] == "slur" and str(raw["severity"]).lower() != "high":
            problems.add(path, line, f"{where}: slurs must have severity 'high'")
        bad_sources = [s for s in raw["sources"] if s not in SOURCE_IDS]
        if bad_sources:
            problems.add(path, line, f"{where}: unknown sources {bad_sources} (use {SOURCE_IDS})")
        terms.append(
            Term(
                id=term_id,
                lemma=str(raw["lemma"]),
                forms=tuple(forms),
                kind=str(raw["kind"]),
                severity=Severity.parse(str(raw["severity"])),
                policy=str(policy),
                ambiguity=raw.get("ambiguity"),
                group=raw.get("group"),
                sources=tuple(raw["sources"]),
                language=language,
                category=category,
                list_id=list_id,
            )
        )
    ids = [t.id for t in terms]
    for dupe in sorted({i for i in ids if ids.count(i) > 1}):
        problems.add(path, _line_of(text, f'"{dupe}"'), f"duplicate term id '{dupe}'")
    return terms


def _deprecated(term_id: str, language: str, category: str, list_id: str) -> Term:
    return Term(
        term_id,
        "",
        (),
        "deprecated",
        Severity.LOW,
        "report_only",
        None,
        None,
        (),
        language,
        category,
        list_id,
    )


def _bundle_root():
    """The shipped lists: package data ``audit._wordlists`` when installed (wheel or editable), else the
    source checkout's ``wordlists/`` (when ``audit`` is imported straight from the repo root)."""
    try:
        return resource_files("audit._wordlists")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "wordlists"


def _bundle_files() -> list[tuple[str, bytes]]:
    root = _bundle_root()
    found = []
    for lang_dir in sorted(root.iterdir(), key=lambda p: p.name):
        if not lang_dir.is_dir() or lang_dir.name.startswith(("_", ".")):
            continue
        for entry in sorted(lang_dir.iterdir(), key=lambda p: p.name):
            if entry.name.endswith(".toml"):
                found.append((f"{lang_dir.name}/{entry.name}", entry.read_bytes()))
    return found


def read_manifest() -> dict:
    text = (_bundle_root() / "manifest.toml").read_text(encoding="utf-8")
    return _parse_toml(text, "wordlists/manifest.toml")


def _decode(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AuditInputError(
            f"{path}:1: not UTF-8 text ({exc.reason})", "save the wordlist as UTF-8"
        ) from exc


def _load_one(raw: bytes, path: str, origin: str, problems: Problems) -> tuple[WordlistFile, list[Term]]:
    text = _decode(raw, path)
    data = _parse_toml(text, path)
    terms = validate_file(data, text, path, problems)
    info = WordlistFile(
        id=str(data.get("id", "")),
        version=str(data.get("version", "")),
        language=str(data.get("language", "")),
        category=str(data.get("category", "")),
        licence=str(data.get("licence", "")),
        sha256=hashlib.sha256(raw).hexdigest(),
        path=path,
        n_terms=len(terms),
        origin=origin,
    )
    return info, terms


def load_wordlists(
    *,
    user_dirs: tuple[Path, ...] = (),
    languages: tuple[str, ...] | None = None,
    allowlist: Path | None = None,
) -> Wordlists:
    """Shipped bundle + users' lists (later files override by term id) + allow-list, filtered by language.

    Raises:
        AuditInputError: naming file and line, for malformed or invalid files.
    """
    problems = Problems()
    manifest = read_manifest()
    loaded: list[tuple[WordlistFile, list[Term]]] = [
        _load_one(raw, f"wordlists/{rel}", "bundle", problems) for rel, raw in _bundle_files()
    ]
    for directory in user_dirs:
        directory = Path(directory)
        if not directory.is_dir():
            raise AuditInputError(
                f"--wordlists {directory} is not a directory", "pass a folder of .toml lists"
            )
        paths = sorted(directory.rglob("*.toml"))
        if not paths:
            raise AuditInputError(f"--wordlists {directory} holds no .toml files", "see wordlists/SCHEMA.md")
        for path in paths:
            loaded.append(_load_one(path.read_bytes(), str(path), "user", problems))
    if problems.items:
        raise AuditInputError(
            f"invalid wordlist: {problems.items[0]}"
            + (f" (and {len(problems.items) - 1} more)" if len(problems.items) > 1 else ""),
            "fix the file (run `prompt-audit wordlists check` for the full list)",
        )
    active: dict[str, Term] = {}
    for _, terms in loaded:
        for term in terms:
            if term.kind == "deprecated":
                active.pop(term.id, None)
            else:
                active[term.id] = term
    wanted = set(languages) if languages else None
    terms = tuple(
        sorted((t for t in active.values() if wanted is None or t.language in wanted), key=lambda t: t.id)
    )
    files = tuple(f for f, _ in loaded if wanted is None or f.language in wanted)
    rules = load_allowlist(allowlist) if allowlist else ()
    return Wordlists(str(manifest.get("bundle_version", "0")), files, terms, rules)


def load_allowlist(path: Path) -> tuple[AllowRule, ...]:
    """Allow-list TOML: ``[[allow]]`` tables with form, language, reason, optional category/tokenizer."""
    path = Path(path)
    if not path.is_file():
        raise AuditInputError(f"--allowlist {path} does not exist", "check the path")
    text = _decode(path.read_bytes(), str(path))
    data = _parse_toml(text, str(path))
    rules = []
    for index, raw in enumerate(data.get("allow", [])):
        missing = [k for k in ("form", "language", "reason") if not raw.get(k)]
        if missing:
            line = _line_of(text, str(raw.get("form", "[[allow]]")))
            raise AuditInputError(
                f"{path}:{line or 1}: allow entry #{index + 1} lacks {', '.join(missing)}",
                "each [[allow]] needs form, language and reason",
            )
        if raw.get("category") and raw["category"] not in CATEGORIES:
            raise AuditInputError(
                f"{path}:{_line_of(text, raw['category']) or 1}: unknown category '{raw['category']}'",
                f"use one of {', '.join(CATEGORIES)}",
            )
        rules.append(
            AllowRule(
                form=str(raw["form"]),
                language=str(raw["language"]),
                reason=str(raw["reason"]),
                category=raw.get("category"),
                tokenizer=raw.get("tokenizer"),
            )
        )
    return tuple(rules)


def check_bundle(user_dirs: tuple[Path, ...] = ()) -> list[str]:
    """Full validation: schema, ids, minimum sizes, manifest hashes. Returns 'file:line: message' items."""
    problems = Problems()
    manifest = read_manifest()
    listed = {entry["path"]: entry for entry in manifest.get("files", [])}
    by_list: dict[tuple[str, str], list[Term]] = defaultdict(list)
    seen_ids: dict[str, str] = {}
    bundle = _bundle_files()
    for rel, raw in bundle:
        path = f"wordlists/{rel}"
        try:
            info, terms = _load_one(raw, path, "bundle", problems)
        except AuditInputError as exc:
            problems.items.append(exc.problem)
            continue
        entry = listed.get(rel)
        if entry is None:
            problems.add(
                "wordlists/manifest.toml",
                1,
                f"{rel} is not listed (run `python -m audit wordlists manifest`)",
            )
        elif entry.get("sha256") != info.sha256:
            problems.add(
                "wordlists/manifest.toml", 1, f"sha256 of {rel} does not match the file (regenerate)"
            )
        for term in terms:
            if term.id in seen_ids and seen_ids[term.id] != path:
                problems.add(path, None, f"term id '{term.id}' also in {seen_ids[term.id]}")
            seen_ids[term.id] = path
            by_list[(info.language, info.category)].append(term)
    for rel in sorted(set(listed) - {rel for rel, _ in bundle}):
        problems.add("wordlists/manifest.toml", 1, f"lists {rel}, which does not exist")
    for language in sorted({lang for lang, _ in by_list}):
        for category in CATEGORIES:
            path = f"wordlists/{language}/{category}.toml"
            terms = by_list.get((language, category), [])
            if category == "proxy_names":
                groups: dict[str, int] = defaultdict(int)
                for term in terms:
                    groups[term.group or "?"] += 1
                for group in REQUIRED_NAME_GROUPS:
                    if groups.get(group, 0) < MIN_NAMES_PER_GROUP:
                        problems.add(
                            path,
                            1,
                            f"group '{group}' has {groups.get(group, 0)} names (< {MIN_NAMES_PER_GROUP})",
                        )
                full = [g for g, n in groups.items() if n >= MIN_NAMES_PER_GROUP]
                if len(full) < MIN_NAME_GROUPS:
                    problems.add(
                        path, 1, f"only {len(full)} proxy groups with >= {MIN_NAMES_PER_GROUP} names"
                    )
                continue
            lemmas = {t.lemma for t in terms}
            if len(lemmas) < MIN_LEMMAS[category]:
                problems.add(path, 1, f"{len(lemmas)} lemmas (< {MIN_LEMMAS[category]} required)")
    for directory in user_dirs:
        for path in sorted(Path(directory).rglob("*.toml")):
            try:
                _load_one(path.read_bytes(), str(path), "user", problems)
            except AuditInputError as exc:
                problems.items.append(exc.problem)
    return problems.items


def build_manifest_text(bundle_version: str) -> str:
    """The manifest for the files now in the bundle (sha256 per file)."""
    problems = Problems()
    lines = [
        "# Generated by `python -m audit wordlists manifest`; do not edit by hand.",
        f'bundle_version = "{bundle_version}"',
        "",
        "[sources]",
    ]
    for key, value in SOURCE_DESCRIPTIONS.items():
        lines.append(f"{key} = {json.dumps(value, ensure_ascii=False)}")
    for rel, raw in _bundle_files():
        info, _ = _load_one(raw, f"wordlists/{rel}", "bundle", problems)
        data = tomllib.loads(raw.decode("utf-8"))
        sources = sorted({s for t in data.get("terms", []) for s in t.get("sources", [])})
        lines += [
            "",
            "[[files]]",
            f'path = "{rel}"',
            f'id = "{info.id}"',
            f'version = "{info.version}"',
            f'licence = "{info.licence}"',
            f'sha256 = "{info.sha256}"',
            f"n_terms = {info.n_terms}",
            f"sources = {json.dumps(sources)}",
        ]
    return "\n".join(lines) + "\n"


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


# ---------------------------------------------------------------------------------------------
# Matching against a vocabulary


@dataclass(frozen=True)
class TermIndex:
    """Which vocabulary ids spell which terms.

    Attributes:
        token_terms: token id -> sorted term ids it spells as a whole token.
        multi: term id -> tuples of token ids (one per multi-token form's distinctive pieces).
        prefix: token id -> term ids whose multi-token form starts with this word-start piece of
            PREFIX_MIN_CHARS+ characters covering at least half of the form (``▁musul`` -> musulmana).
        covered: term id -> True when some form is a single token.
    """

    token_terms: dict[int, tuple[str, ...]]
    multi: dict[str, tuple[tuple[int, ...], ...]]
    prefix: dict[int, tuple[str, ...]]
    covered: dict[str, bool]


def is_acronym(form: str) -> bool:
    """All-caps short forms (ALS, VIH, TDAH, LGTBI): matched case-sensitively where the tokenizer keeps
    case, so that 'als' (German 'as') is not read as ALS."""
    letters = [c for c in form if c.isalpha()]
    return 2 <= len(letters) <= 6 and " " not in form and all(c.isupper() for c in letters)


def _form_key(form: str, strip: bool, cased: bool) -> str:
    if cased and is_acronym(form):
        return "=" + unicodedata.normalize("NFC", form)  # exact-case key
    return normalize(form, strip_accents=strip)


def _form_keys(forms: tuple[str, ...], strip: bool, cased: bool) -> set[str]:
    return {_form_key(f, strip, cased) for f in forms}


def build_index(vocab, lists: Wordlists) -> TermIndex:
    """Builds (or loads from cache) the token-to-term index for ``vocab``."""
    strip = bool(vocab.strips_accents)
    key = hashlib.sha256(f"{vocab.sha256}|{lists.sha256}|{strip}|{vocab.uncased}|v4".encode()).hexdigest()
    path = cache_dir("term-index") / f"{key}.json"
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        return TermIndex(
            {int(k): tuple(v) for k, v in data["token_terms"].items()},
            {k: tuple(tuple(ids) for ids in v) for k, v in data["multi"].items()},
            {int(k): tuple(v) for k, v in data["prefix"].items()},
            data["covered"],
        )
    index = _compute_index(vocab, lists, strip)
    payload = {
        "token_terms": {str(k): list(v) for k, v in sorted(index.token_terms.items())},
        "multi": {k: [list(ids) for ids in v] for k, v in sorted(index.multi.items())},
        "prefix": {str(k): list(v) for k, v in sorted(index.prefix.items())},
        "covered": dict(sorted(index.covered.items())),
    }
    atomic_write_bytes(path, json.dumps(payload, sort_keys=True).encode())
    return index


def _compute_index(vocab, lists: Wordlists, strip: bool) -> TermIndex:
    cased = not vocab.uncased
    form_to_terms: dict[str, set[str]] = defaultdict(set)
    for term in lists.terms:
        for key in _form_keys(term.forms, strip, cased):
            form_to_terms[key].add(term.id)
    token_terms: dict[int, tuple[str, ...]] = {}
    word_to_ids: dict[str, list[int]] = defaultdict(list)
    pieces, surfaces, special = vocab.tokens.pieces, vocab.tokens.surfaces, vocab.tokens.special
    for tok_id in range(vocab.size):
        if special[tok_id]:
            continue
        raw = token_word(surfaces[tok_id], pieces[tok_id])
        word = normalize(raw, strip_accents=strip)
        if not word:
            continue
        exact = "=" + unicodedata.normalize("NFC", raw)
        word_to_ids[word].append(tok_id)
        word_to_ids[exact].append(tok_id)
        hit = form_to_terms.get(word, set()) | form_to_terms.get(exact, set())
        if hit:
            token_terms[tok_id] = tuple(sorted(hit))
    covered: dict[str, bool] = {}
    multi: dict[str, tuple[tuple[int, ...], ...]] = {}
    prefix: dict[int, set[str]] = defaultdict(set)
    # Pieces that carry no word: [UNK] (an unknown word tokenizes to it), <bos>, [CLS], ...
    control = set(getattr(vocab.tokenizer, "all_special_ids", []) or [])
    for term in lists.terms:
        keys = _form_keys(term.forms, strip, cased)
        covered[term.id] = any(k in word_to_ids for k in keys)
        if covered[term.id]:
            continue
        combos = set()
        for form in term.forms:
            ids = vocab.tokenizer(" " + form, add_special_tokens=False)["input_ids"]
            distinctive = tuple(
                sorted(
                    {
                        i
                        for i in ids
                        if 0 <= i < vocab.size
                        and len(token_word(surfaces[i], pieces[i])) >= 3
                        and not special[i]
                        and i not in control
                    }
                )
            )
            if len(distinctive) >= 2:
                combos.add(distinctive)
            first = ids[0] if ids else -1
            # A prefix piece stands for one word: not the first word of a phrase ('clase' of 'clase alta').
            usable = 0 <= first < vocab.size and first not in control and not special[first]
            usable = usable and " " not in form.strip() and not is_acronym(form)
            if usable and vocab.tokens.word_start[first]:
                head = normalize(token_word(surfaces[first], pieces[first]), strip_accents=strip)
                key = normalize(form, strip_accents=strip)
                if len(head) >= PREFIX_MIN_CHARS and key.startswith(head) and 2 * len(head) >= len(key):
                    prefix[first].add(term.id)
        if combos:
            multi[term.id] = tuple(sorted(combos))
    return TermIndex(token_terms, multi, {k: tuple(sorted(v)) for k, v in prefix.items()}, covered)


@dataclass(frozen=True)
class CoverageRow:
    language: str
    category: str
    n_terms: int
    n_covered: int
    missing: tuple[str, ...]  # lemmas (or term ids) with no single-token form

    @property
    def share(self) -> float:
        return self.n_covered / self.n_terms if self.n_terms else 0.0

    @property
    def low(self) -> bool:
        return self.share < LOW_COVERAGE


def coverage(lists: Wordlists, index: TermIndex) -> tuple[CoverageRow, ...]:
    """Per (language, category): how many terms the vocabulary spells as a whole token."""
    groups: dict[tuple[str, str], list[Term]] = defaultdict(list)
    for term in lists.terms:
        groups[(term.language, term.category)].append(term)
    rows = []
    for (language, category), terms in sorted(groups.items()):
        missing = tuple(sorted(t.lemma for t in terms if not index.covered.get(t.id)))
        rows.append(CoverageRow(language, category, len(terms), len(terms) - len(missing), missing))
    return tuple(rows)


def allow_reason(
    rules: tuple[AllowRule, ...], term: Term, token_word_norm: str, model_spec: str
) -> str | None:
    """The reason of the first allow rule that suppresses this hit, or None."""
    for rule in rules:
        if rule.language != term.language:
            continue
        if rule.category and rule.category != term.category:
            continue
        if rule.tokenizer and rule.tokenizer != model_spec:
            continue
        form = normalize(rule.form)
        if form in (token_word_norm, normalize(term.lemma)):
            return rule.reason
    return None
