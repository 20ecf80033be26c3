"""Loading and validating wordlists: the shipped bundle, users' lists (override by term id), allow-lists.

The bundle ships inside the package (``audit._wordlists``, the repo's ``wordlists/`` folder) and is read
with importlib.resources. Every problem names its ``file:line``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import partial
from pathlib import Path

from audit.errors import AuditInputError
from audit.records import Severity
from audit.terms.match import normalize
from audit.terms.schema import (
    ID_PATTERN,
    KINDS,
    POLICIES,
    SCHEMA_VERSION,
    SOURCE_IDS,
    AllowRule,
    Problems,
    Term,
    WordlistFile,
    Wordlists,
    bundle_root,
    categories,
    line_of,
    parse_toml,
)


def validate_file(data: dict, text: str, path: str, problems: Problems) -> list[Term]:
    """Checks one wordlist file against the schema; returns its terms (possibly partial on errors)."""
    for key in ("schema", "id", "version", "language", "category", "licence"):
        if key not in data:
            problems.add(path, 1, f"missing top-level key '{key}'")
    if data.get("schema", SCHEMA_VERSION) != SCHEMA_VERSION:
        problems.add(path, line_of(text, "schema"), f"schema {data.get('schema')} is not {SCHEMA_VERSION}")
    language = str(data.get("language", ""))
    category = str(data.get("category", ""))
    if category and category not in categories():
        problems.add(
            path,
            line_of(text, "category"),
            f"unknown category '{category}' (use one of {', '.join(categories())})",
        )
    if language and not re.fullmatch(r"[a-z]{2}", language):
        problems.add(path, line_of(text, "language"), f"language '{language}' is not an ISO 639-1 code")
    list_id = str(data.get("id", ""))
    if list_id and list_id != f"{language}.{category}":
        problems.add(path, line_of(text, "id ="), f"file id '{list_id}' should be '{language}.{category}'")
    raw_terms = data.get("terms", [])
    if not isinstance(raw_terms, list):
        problems.add(path, line_of(text, "terms"), "'terms' must be an array of tables ([[terms]])")
        return []
    terms: list[Term] = []
    for index, raw in enumerate(raw_terms):
        term_id = str(raw.get("id", ""))
        line = partial(line_of, text, f'"{term_id}"') if term_id else None
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
        problems.add(path, line_of(text, f'"{dupe}"'), f"duplicate term id '{dupe}'")
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


def bundle_files() -> list[tuple[str, bytes]]:
    root = bundle_root()
    found = []
    for lang_dir in sorted(root.iterdir(), key=lambda p: p.name):
        if not lang_dir.is_dir() or lang_dir.name.startswith(("_", ".")):
            continue
        for entry in sorted(lang_dir.iterdir(), key=lambda p: p.name):
            if entry.name.endswith(".toml"):
                found.append((f"{lang_dir.name}/{entry.name}", entry.read_bytes()))
    return found


def read_manifest() -> dict:
    text = (bundle_root() / "manifest.toml").read_text(encoding="utf-8")
    return parse_toml(text, "wordlists/manifest.toml")


def _decode(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AuditInputError(
            f"{path}:1: not UTF-8 text ({exc.reason})", "save the wordlist as UTF-8"
        ) from exc


def load_one(raw: bytes, path: str, origin: str, problems: Problems) -> tuple[WordlistFile, list[Term]]:
    text = _decode(raw, path)
    data = parse_toml(text, path)
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
        load_one(raw, f"wordlists/{rel}", "bundle", problems) for rel, raw in bundle_files()
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
            loaded.append(load_one(path.read_bytes(), str(path), "user", problems))
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
    wanted = _languages(languages, {t.language for t in active.values()}) if languages is not None else None
    terms = tuple(
        sorted((t for t in active.values() if wanted is None or t.language in wanted), key=lambda t: t.id)
    )
    if not terms:  # fail closed: an audit against no terms would report LOW having checked nothing
        raise AuditInputError(
            "no sensitive terms to audit against (every listed term is deprecated)", "check --wordlists"
        )
    files = tuple(f for f, _ in loaded if wanted is None or f.language in wanted)
    rules = load_allowlist(allowlist, terms) if allowlist else ()
    return Wordlists(str(manifest.get("bundle_version", "0")), files, terms, rules)


def _languages(requested: tuple[str, ...], available: set[str]) -> set[str]:
    """The requested languages, case-insensitively; an unknown or empty choice is an error (fail closed)."""
    choices = ", ".join(sorted(available))
    wanted = {code.strip().lower() for code in requested if code.strip()}
    if not wanted:
        raise AuditInputError("--lang names no language", f"choose from {choices} (default es,en)")
    unknown = sorted(wanted - available)
    if unknown:
        raise AuditInputError(
            f"--lang {','.join(unknown)}: no wordlists in that language",
            f"choose from {choices} (ISO 639-1 codes), or add lists with --wordlists",
        )
    return wanted


def load_allowlist(path: Path, terms: tuple[Term, ...] = ()) -> tuple[AllowRule, ...]:
    """Allow-list TOML: ``[[allow]]`` tables with form, language, reason, optional category/tokenizer.

    With ``terms``, a rule whose form matches none of their lemmas or forms is an error: a typo would
    otherwise silently suppress nothing."""
    path = Path(path)
    if not path.is_file():
        raise AuditInputError(f"--allowlist {path} does not exist", "check the path")
    text = _decode(path.read_bytes(), str(path))
    data = parse_toml(text, str(path))
    rules = []
    for index, raw in enumerate(data.get("allow", [])):
        missing = [k for k in ("form", "language", "reason") if not raw.get(k)]
        if missing:
            line = line_of(text, str(raw.get("form", "[[allow]]")))
            raise AuditInputError(
                f"{path}:{line or 1}: allow entry #{index + 1} lacks {', '.join(missing)}",
                "each [[allow]] needs form, language and reason",
            )
        if raw.get("category") and raw["category"] not in categories():
            raise AuditInputError(
                f"{path}:{line_of(text, raw['category']) or 1}: unknown category '{raw['category']}'",
                f"use one of {', '.join(categories())}",
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
    if terms:
        known = {(t.language, normalize(f)) for t in terms for f in (t.lemma, *t.forms)}
        for rule in rules:
            if (rule.language, normalize(rule.form)) not in known:
                line = line_of(text, rule.form) or 1
                raise AuditInputError(
                    f"{path}:{line}: allow entry '{rule.form}' ({rule.language}) names no term of the active "
                    "wordlists",
                    "fix the form or language (see `prompt-audit wordlists list`), or remove the entry",
                )
    return tuple(rules)
