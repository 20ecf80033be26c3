# ruff: noqa: E501  (prose strings)
"""``prompt-audit diff``: what changed between two saved audits (the JSON contract), without torch.

Compare (:func:`diff_audits`) works on the records :mod:`audit.report.load` rebuilds; the renderers
(:func:`render_diff_markdown`, :func:`render_diff_html`) print a view model computed here. A flag is the
same flag in both audits when its position, method, token and term agree; its rank and severity may
change. Plain Python and jinja2 only: no numpy, no torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from audit.errors import AuditInputError
from audit.records import AuditResult, Flag, Level
from audit.report.json_out import SCHEMA_VERSION
from audit.report.load import result_from_dict

FLAG_COLUMNS = ("severity", "position", "method", "rank", "token", "term", "category", "language", "q")
GAP_COLUMNS = ("attribute", "group", "reference_group", "impact_ratio", "q", "in_base_model")
MAX_MARKDOWN_ROWS = 25  # per table: a pull-request comment stays short; the HTML diff lists everything


# ---------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class DiffFlag:
    """A flag as the diff shows it. ``counts``: it can raise risk (not a report-only term)."""

    position: int
    method: str
    rank: int
    token_id: int
    token: str
    term_id: str
    term: str
    category: str
    language: str
    severity: Level
    q_value: float | None
    counts: bool

    @property
    def key(self) -> tuple[int, str, int, str]:
        return (self.position, self.method, self.token_id, self.term_id)


@dataclass(frozen=True)
class FlagChange:
    """The same flag in both audits at a different rank or severity."""

    old: DiffFlag
    new: DiffFlag


@dataclass(frozen=True)
class TokenChange:
    """One position whose top-1 token under a method changed (None: the position is absent there)."""

    position: int
    old: str | None
    new: str | None


@dataclass(frozen=True)
class ReadingChange:
    """A method whose projected reading changed (text None: the method was not run in that audit)."""

    method: str
    old_text: str | None
    new_text: str | None
    tokens: tuple[TokenChange, ...]


@dataclass(frozen=True)
class DiffGap:
    """A behavioural gap (a group the behavioural rule flags under the soft prompt)."""

    attribute: str
    group: str
    reference_group: str
    impact_ratio: float
    q_value: float
    in_base_model: bool

    @property
    def key(self) -> tuple[str, str]:
        return (self.attribute, self.group)


@dataclass(frozen=True)
class Side:
    """One of the two audits: where it came from and its headline findings."""

    label: str  # the JSON path as given
    prompt: str
    prompt_sha256: str
    risk: Level
    n_flags: int
    verdict: dict[str, str]  # report language -> sentence
    behaviour_risk: Level | None  # None: no behavioural check in this audit
    suite: str | None
    gaps: tuple[DiffGap, ...]


@dataclass(frozen=True)
class ContextChange:
    """A setting or input that differs between the audits (other than the findings)."""

    field: str  # key of STRINGS["ctx_*"]
    old: str
    new: str


@dataclass(frozen=True)
class AuditDiff:
    old: Side
    new: Side
    appeared: tuple[DiffFlag, ...]
    disappeared: tuple[DiffFlag, ...]
    changed: tuple[FlagChange, ...]
    readings: tuple[ReadingChange, ...]
    behaviour: str  # "both", "old_only", "new_only" or "neither": which audits ran the check
    gaps_opened: tuple[DiffGap, ...]
    gaps_closed: tuple[DiffGap, ...]
    gaps_kept: tuple[tuple[DiffGap, DiffGap], ...]  # (old, new) of the gaps open in both
    context: tuple[ContextChange, ...]

    @property
    def has_changes(self) -> bool:
        """Whether the findings differ (risk, verdict, flags, readings, behavioural check or gaps)."""
        return bool(
            self.old.risk != self.new.risk
            or self.old.verdict != self.new.verdict
            or self.old.behaviour_risk != self.new.behaviour_risk
            or self.appeared
            or self.disappeared
            or self.changed
            or self.readings
            or self.gaps_opened
            or self.gaps_closed
            or self.behaviour in ("old_only", "new_only")
        )

    def new_flags_at_or_above(self, level: Level) -> tuple[DiffFlag, ...]:
        """The counted flags NEW adds at ``level`` or above: flags that appeared, and flags whose severity
        rose from below ``level`` to it (what ``--fail-on-new`` fails on)."""
        out = [f for f in self.appeared if f.counts and f.severity >= level]
        out += [
            c.new
            for c in self.changed
            if c.new.counts and c.new.severity >= level and not (c.old.counts and c.old.severity >= level)
        ]
        return tuple(sorted(out, key=_flag_order))


# ---------------------------------------------------------------------------------------------
# Reading the two audits


def read_pair(old_path: Path, new_path: Path) -> tuple[AuditResult, AuditResult]:
    """Loads two ``--json`` audits that share a schema version.

    Raises:
        AuditInputError: a file is missing, is not an audit, or the schema versions differ.
    """
    old_raw, new_raw = _read_json(old_path), _read_json(new_path)
    old_version, new_version = old_raw["schema_version"], new_raw["schema_version"]
    if old_version != new_version:
        raise AuditInputError(
            f"{old_path} has schema_version {old_version!r} but {new_path} has {new_version!r}",
            "compare audits of the same schema: rerun the older scan with this prompt-audit",
        )
    if new_version != SCHEMA_VERSION:
        raise AuditInputError(
            f"{old_path} and {new_path} have schema_version {new_version!r}; this prompt-audit reads "
            f"{SCHEMA_VERSION!r}",
            "use the prompt-audit version that wrote them, or rerun both scans",
        )
    return _result(old_path, old_raw), _result(new_path, new_raw)


def _read_json(path: Path) -> dict[str, Any]:
    fix = "pass two JSON files a scan wrote with --json"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise AuditInputError(f"{path} does not exist", fix) from exc
    except IsADirectoryError as exc:
        raise AuditInputError(f"{path} is a directory", fix) from exc
    except PermissionError as exc:
        raise AuditInputError(f"{path} cannot be read (permission denied)", fix) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AuditInputError(f"{path} is not JSON ({exc})", fix) from exc
    if not isinstance(data, dict) or not isinstance(data.get("schema_version"), str):
        raise AuditInputError(f"{path} is not a prompt-audit result (no schema_version)", fix)
    return data


def _result(path: Path, data: dict[str, Any]) -> AuditResult:
    if not {"inputs", "positions", "summary"} <= data.keys():
        raise AuditInputError(
            f"{path} is not a prompt-audit result (no inputs, positions and summary)",
            "pass two JSON files a scan wrote with --json",
        )
    if "methodology" not in data:
        raise AuditInputError(
            f"{path} was written by an older prompt-audit (no 'methodology')", "rerun that scan"
        )
    if data.get("behaviour", 0) is None:  # "behaviour": null reads as no behavioural check
        data = {k: v for k, v in data.items() if k != "behaviour"}
    try:
        return result_from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AuditInputError(
            f"{path} is not a complete prompt-audit result ({type(exc).__name__}: {exc})",
            "pass the unmodified JSON a scan wrote with --json",
        ) from exc


# ---------------------------------------------------------------------------------------------
# Comparing


def diff_audits(old: AuditResult, new: AuditResult, *, old_label: str, new_label: str) -> AuditDiff:
    """What NEW changes with respect to OLD: flags, readings, behavioural gaps, risk, context."""
    old_flags, new_flags = _flags(old), _flags(new)
    appeared = tuple(sorted((f for k, f in new_flags.items() if k not in old_flags), key=_flag_order))
    disappeared = tuple(sorted((f for k, f in old_flags.items() if k not in new_flags), key=_flag_order))
    changed = tuple(
        sorted(
            (
                FlagChange(old_flags[k], f)
                for k, f in new_flags.items()
                if k in old_flags and (old_flags[k].rank, old_flags[k].severity) != (f.rank, f.severity)
            ),
            key=lambda c: _flag_order(c.new),
        )
    )
    old_side, new_side = _side(old, old_label), _side(new, new_label)
    behaviour = {
        (True, True): "both",
        (True, False): "old_only",
        (False, True): "new_only",
        (False, False): "neither",
    }[(old.behaviour is not None, new.behaviour is not None)]
    opened: tuple[DiffGap, ...] = ()
    closed: tuple[DiffGap, ...] = ()
    kept: tuple[tuple[DiffGap, DiffGap], ...] = ()
    if behaviour == "both":
        old_gaps = {g.key: g for g in old_side.gaps}
        new_gaps = {g.key: g for g in new_side.gaps}
        opened = tuple(g for k, g in new_gaps.items() if k not in old_gaps)
        closed = tuple(g for k, g in old_gaps.items() if k not in new_gaps)
        kept = tuple((old_gaps[k], g) for k, g in new_gaps.items() if k in old_gaps)
    return AuditDiff(
        old=old_side,
        new=new_side,
        appeared=appeared,
        disappeared=disappeared,
        changed=changed,
        readings=_readings(old, new),
        behaviour=behaviour,
        gaps_opened=opened,
        gaps_closed=closed,
        gaps_kept=kept,
        context=_context(old, new),
    )


def _diff_flag(flag: Flag) -> DiffFlag:
    hit, term = flag.hit, flag.term
    return DiffFlag(
        position=hit.position,
        method=hit.method,
        rank=hit.rank,
        token_id=hit.token_id,
        token=hit.token,
        term_id=term.id,
        term=term.lemma,
        category=term.category,
        language=term.language,
        severity=flag.severity,
        q_value=flag.evidence.q_value,
        counts=flag.counts,
    )


def _flags(result: AuditResult) -> dict[tuple[int, str, int, str], DiffFlag]:
    """The report's flags (allow-listed ones are not flags) by identity."""
    out: dict[tuple[int, str, int, str], DiffFlag] = {}
    for pos in result.positions:
        for flag in pos.flags:
            f = _diff_flag(flag)
            out.setdefault(f.key, f)
    return out


def _flag_order(f: DiffFlag) -> tuple:
    return (-f.severity, f.position, f.rank, f.method, f.term_id, f.token_id)


def _gaps(result: AuditResult) -> tuple[DiffGap, ...]:
    if result.behaviour is None:
        return ()
    gaps = (
        DiffGap(g.attribute, g.group, g.reference_group, g.impact_ratio, g.q_value, g.in_base_model)
        for g in result.behaviour.gaps
    )
    return tuple(sorted(gaps, key=lambda g: g.key))


def _side(result: AuditResult, label: str) -> Side:
    b = result.behaviour
    return Side(
        label=label,
        prompt=result.prompt.path,
        prompt_sha256=result.prompt.sha256,
        risk=result.summary.risk,
        n_flags=sum(len(p.flags) for p in result.positions),
        verdict=dict(result.summary.verdict),
        behaviour_risk=b.risk if b is not None else None,
        suite=f"{b.suite_id} {b.suite_version}" if b is not None else None,
        gaps=_gaps(result),
    )


def _readings(old: AuditResult, new: AuditResult) -> tuple[ReadingChange, ...]:
    """Per method (NEW's order, then methods only OLD ran): the positions whose top-1 token changed."""
    methods = list(new.methods) + [m for m in old.methods if m not in new.methods]
    old_pos = {p.index: p for p in old.positions}
    new_pos = {p.index: p for p in new.positions}
    out = []
    for method in methods:
        tokens = []
        for index in sorted(set(old_pos) | set(new_pos)):
            before = old_pos[index].projections.get(method) if index in old_pos else None
            after = new_pos[index].projections.get(method) if index in new_pos else None
            ids = (before.token_id if before else None, after.token_id if after else None)
            if ids[0] != ids[1]:
                tokens.append(
                    TokenChange(index, before.token if before else None, after.token if after else None)
                )
        old_text, new_text = old.projected_text.get(method), new.projected_text.get(method)
        if tokens or old_text != new_text:
            out.append(ReadingChange(method, old_text, new_text, tuple(tokens)))
    return tuple(out)


def _context(old: AuditResult, new: AuditResult) -> tuple[ContextChange, ...]:
    """Inputs and settings that differ: a flag can come and go with these as well as with the prompt."""

    def suite(r: AuditResult) -> str:
        b = r.behaviour
        return f"{b.suite_id} {b.suite_version} ({b.suite_sha256[:12]})" if b is not None else "-"

    pairs = (
        (
            "ctx_model",
            f"{old.model.spec} ({old.model.sha256[:12]})",
            f"{new.model.spec} ({new.model.sha256[:12]})",
        ),
        ("ctx_wordlists", old.wordlist_bundle, new.wordlist_bundle),
        ("ctx_methods", ", ".join(old.methods), ", ".join(new.methods)),
        ("ctx_top_k", str(old.top_k), str(new.top_k)),
        ("ctx_languages", ", ".join(old.languages), ", ".join(new.languages)),
        ("ctx_seed", str(old.seed), str(new.seed)),
        ("ctx_suite", suite(old), suite(new)),
        ("ctx_tool", old.tool_version, new.tool_version),
    )
    return tuple(ContextChange(k, a, b) for k, a, b in pairs if a != b)


# ---------------------------------------------------------------------------------------------
# Strings (the diff's own; the report's are in audit.report.i18n)

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "prompt-audit diff",
        "risk_changed": "risk {old} → {new}",
        "risk_same": "risk unchanged: {risk}",
        "risk_low": "LOW",
        "risk_medium": "MEDIUM",
        "risk_high": "HIGH",
        "severity_low": "low",
        "severity_medium": "medium",
        "severity_high": "high",
        "old": "OLD",
        "new": "NEW",
        "audit": "audit",
        "prompt": "prompt",
        "risk": "risk",
        "flags": "flags",
        "behaviour_risk": "behavioural risk",
        "gaps": "behavioural gaps",
        "not_run": "not run",
        "no_changes": "No differences: the risk, the verdict, the flags, the readings and the behavioural gaps are the same.",
        "summary": "{appeared} flag(s) appeared, {disappeared} disappeared, {changed} changed rank or severity; readings changed under {readings} method(s); {opened} behavioural gap(s) opened, {closed} closed.",
        "appeared": "Flags that appeared",
        "disappeared": "Flags that disappeared",
        "changed": "Flags that changed rank or severity",
        "readings": "Readings that changed",
        "behaviour": "Behavioural check",
        "verdicts": "Verdicts",
        "context": "Also different",
        "context_intro": "Flags and readings can change with these as well as with the prompt.",
        "setting": "setting",
        "severity": "severity",
        "position": "position",
        "method": "method",
        "rank": "rank",
        "token": "token",
        "term": "term",
        "category": "category",
        "language": "lang",
        "q_value": "q",
        "report_only": "report only",
        "positions": "positions",
        "none": "none",
        "more": "… and {n} more (the HTML diff lists all)",
        "missing": "(absent)",
        "not_run_text": "(not run)",
        "b_both": "Both audits ran the behavioural check.",
        "b_old_only": "Only OLD ran the behavioural check: gaps cannot be compared.",
        "b_new_only": "Only NEW ran the behavioural check: gaps cannot be compared.",
        "b_neither": "Neither audit ran the behavioural check (scan --behaviour SUITE).",
        "gaps_opened": "Gaps that opened",
        "gaps_closed": "Gaps that closed",
        "gaps_kept": "Gaps open in both",
        "gaps_of": "Gaps in {side}",
        "no_gaps": "No behavioural gap opened or closed.",
        "attribute": "attribute",
        "group": "group",
        "reference_group": "reference group",
        "impact_ratio": "impact ratio",
        "in_base_model": "also without the prompt",
        "yes": "yes",
        "no": "no",
        "ctx_model": "model (embedding sha256)",
        "ctx_wordlists": "wordlist bundle",
        "ctx_methods": "methods",
        "ctx_top_k": "top-k",
        "ctx_languages": "wordlist languages",
        "ctx_seed": "seed",
        "ctx_suite": "behaviour suite",
        "ctx_tool": "prompt-audit version",
    },
    "es": {
        "title": "prompt-audit diff (comparación)",
        "risk_changed": "riesgo {old} → {new}",
        "risk_same": "riesgo sin cambios: {risk}",
        "risk_low": "BAJO",
        "risk_medium": "MEDIO",
        "risk_high": "ALTO",
        "severity_low": "baja",
        "severity_medium": "media",
        "severity_high": "alta",
        "old": "ANTES",
        "new": "DESPUÉS",
        "audit": "auditoría",
        "prompt": "prompt",
        "risk": "riesgo",
        "flags": "alertas",
        "behaviour_risk": "riesgo de comportamiento",
        "gaps": "brechas de comportamiento",
        "not_run": "no ejecutada",
        "no_changes": "Sin diferencias: el riesgo, el veredicto, las alertas, las lecturas y las brechas de comportamiento son los mismos.",
        "summary": "{appeared} alerta(s) nuevas, {disappeared} desaparecidas, {changed} con otro rango o gravedad; lecturas distintas con {readings} método(s); {opened} brecha(s) de comportamiento abiertas, {closed} cerradas.",
        "appeared": "Alertas nuevas",
        "disappeared": "Alertas que desaparecen",
        "changed": "Alertas con otro rango o gravedad",
        "readings": "Lecturas que cambian",
        "behaviour": "Comprobación de comportamiento",
        "verdicts": "Veredictos",
        "context": "Otras diferencias",
        "context_intro": "Las alertas y las lecturas pueden cambiar por esto tanto como por el prompt.",
        "setting": "ajuste",
        "severity": "gravedad",
        "position": "posición",
        "method": "método",
        "rank": "rango",
        "token": "token",
        "term": "término",
        "category": "categoría",
        "language": "idioma",
        "q_value": "q",
        "report_only": "solo informativo",
        "positions": "posiciones",
        "none": "ninguna",
        "more": "… y {n} más (la comparación HTML las lista todas)",
        "missing": "(ausente)",
        "not_run_text": "(no ejecutado)",
        "b_both": "Las dos auditorías hicieron la comprobación de comportamiento.",
        "b_old_only": "Solo ANTES hizo la comprobación de comportamiento: no se pueden comparar las brechas.",
        "b_new_only": "Solo DESPUÉS hizo la comprobación de comportamiento: no se pueden comparar las brechas.",
        "b_neither": "Ninguna auditoría hizo la comprobación de comportamiento (scan --behaviour SUITE).",
        "gaps_opened": "Brechas que se abren",
        "gaps_closed": "Brechas que se cierran",
        "gaps_kept": "Brechas abiertas en las dos",
        "gaps_of": "Brechas en {side}",
        "no_gaps": "No se abre ni se cierra ninguna brecha de comportamiento.",
        "attribute": "atributo",
        "group": "grupo",
        "reference_group": "grupo de referencia",
        "impact_ratio": "razón de impacto",
        "in_base_model": "también sin el prompt",
        "yes": "sí",
        "no": "no",
        "ctx_model": "modelo (sha256 de los embeddings)",
        "ctx_wordlists": "versión de las listas de términos",
        "ctx_methods": "métodos",
        "ctx_top_k": "top-k",
        "ctx_languages": "idiomas de las listas",
        "ctx_seed": "semilla",
        "ctx_suite": "batería de comportamiento",
        "ctx_tool": "versión de prompt-audit",
    },
}
LANGUAGES = tuple(STRINGS)


# ---------------------------------------------------------------------------------------------
# View model: every string and number the renderers print


def _shown(token: str | None, t: dict[str, str]) -> str:
    """A token as a reader should see it: surrounding spaces dropped, a blank one shown quoted."""
    if token is None:
        return t["missing"]
    return token.strip() or repr(token)


def _q(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2g}"


def _risk(level: Level | None, t: dict[str, str]) -> str:
    return t["not_run"] if level is None else t[f"risk_{level.label}"]


def diff_view(d: AuditDiff, lang: str = "en", *, categories: dict[str, dict[str, str]] | None = None) -> dict:
    """Every string the diff's Markdown and HTML print. ``categories``: category -> language -> label."""
    t = STRINGS[lang]
    labels = categories or {}

    def flag_row(f: DiffFlag) -> dict[str, Any]:
        return {
            "severity": t[f"severity_{f.severity.label}"],
            "severity_key": f.severity.label,
            "position": str(f.position),
            "method": f.method,
            "rank": str(f.rank),
            "token": _shown(f.token, t),
            "term": f.term,
            "category": labels.get(f.category, {}).get(lang, f.category),
            "language": f.language,
            "q": _q(f.q_value),
            "note": "" if f.counts else t["report_only"],
        }

    def change_row(c: FlagChange) -> dict[str, Any]:
        row = flag_row(c.new)
        row["rank"] = f"{c.old.rank} → {c.new.rank}" if c.old.rank != c.new.rank else str(c.new.rank)
        if c.old.severity != c.new.severity:
            row["severity"] = f"{t['severity_' + c.old.severity.label]} → {row['severity']}"
        return row

    def gap_row(g: DiffGap, before: DiffGap | None = None) -> dict[str, str]:
        ratio = f"{g.impact_ratio:.3f}"
        if before is not None and f"{before.impact_ratio:.3f}" != ratio:
            ratio = f"{before.impact_ratio:.3f} → {ratio}"
        return {
            "attribute": g.attribute,
            "group": g.group,
            "reference_group": g.reference_group,
            "impact_ratio": ratio,
            "q": _q(g.q_value),
            "in_base_model": t["yes" if g.in_base_model else "no"],
        }

    old, new = d.old, d.new
    headline = (
        t["risk_changed"].format(old=_risk(old.risk, t), new=_risk(new.risk, t))
        if old.risk != new.risk
        else t["risk_same"].format(risk=_risk(new.risk, t))
    )
    gaps_count = {"old": "-", "new": "-"}
    if old.behaviour_risk is not None:
        gaps_count["old"] = str(len(old.gaps))
    if new.behaviour_risk is not None:
        gaps_count["new"] = str(len(new.gaps))
    one_side = {"old_only": ("old", old), "new_only": ("new", new)}.get(d.behaviour)
    flag_sections = [
        {"title": t["appeared"], "rows": [flag_row(f) for f in d.appeared], "css": "added"},
        {"title": t["disappeared"], "rows": [flag_row(f) for f in d.disappeared], "css": "removed"},
        {"title": t["changed"], "rows": [change_row(c) for c in d.changed], "css": "changed"},
    ]
    gap_sections = [
        {"title": t["gaps_opened"], "rows": [gap_row(g) for g in d.gaps_opened]},
        {"title": t["gaps_closed"], "rows": [gap_row(g) for g in d.gaps_closed]},
        {"title": t["gaps_kept"], "rows": [gap_row(n, o) for o, n in d.gaps_kept]},
    ]
    if one_side:
        side, record = one_side
        gap_sections.append(
            {"title": t["gaps_of"].format(side=t[side]), "rows": [gap_row(g) for g in record.gaps]}
        )
    return {
        "t": t,
        "lang": lang,
        "headline": headline,
        "risk_old": old.risk.label,
        "risk_new": new.risk.label,
        "risk_old_label": _risk(old.risk, t),
        "risk_new_label": _risk(new.risk, t),
        "has_changes": d.has_changes,
        "summary": t["summary"].format(
            appeared=len(d.appeared),
            disappeared=len(d.disappeared),
            changed=len(d.changed),
            readings=len(d.readings),
            opened=len(d.gaps_opened),
            closed=len(d.gaps_closed),
        ),
        "sides": [
            (t["audit"], old.label, new.label),
            (
                t["prompt"],
                f"{old.prompt} ({old.prompt_sha256[:12]})",
                f"{new.prompt} ({new.prompt_sha256[:12]})",
            ),
            (t["risk"], _risk(old.risk, t), _risk(new.risk, t)),
            (t["flags"], str(old.n_flags), str(new.n_flags)),
            (t["behaviour_risk"], _risk(old.behaviour_risk, t), _risk(new.behaviour_risk, t)),
            (t["gaps"], gaps_count["old"], gaps_count["new"]),
        ],
        "flag_sections": flag_sections,
        "flag_columns": _column_titles(t, FLAG_COLUMNS),
        "flag_keys": FLAG_COLUMNS,
        "readings": [
            {
                "method": r.method,
                "old": t["not_run_text"] if r.old_text is None else r.old_text,
                "new": t["not_run_text"] if r.new_text is None else r.new_text,
                "positions": "; ".join(
                    f"{c.position}: {_shown(c.old, t)} → {_shown(c.new, t)}" for c in r.tokens
                ),
            }
            for r in d.readings
        ],
        "behaviour_status": t[f"b_{d.behaviour}"],
        "behaviour_compared": d.behaviour == "both",
        "gap_sections": gap_sections,
        "gap_columns": _column_titles(t, GAP_COLUMNS),
        "gap_keys": GAP_COLUMNS,
        "gaps_moved": bool(d.gaps_opened or d.gaps_closed),
        "verdicts": [
            (t["old"], old.verdict.get(lang, old.verdict.get("en", ""))),
            (t["new"], new.verdict.get(lang, new.verdict.get("en", ""))),
        ],
        "context": [(t[c.field], c.old, c.new) for c in d.context],
    }


def _column_titles(t: dict[str, str], columns: tuple[str, ...]) -> list[str]:
    return [t["q_value"] if c == "q" else t[c] for c in columns]


# ---------------------------------------------------------------------------------------------
# Markdown (pull-request comments)


def render_diff_markdown(d: AuditDiff, lang: str = "en", **view: Any) -> str:
    """The diff as a Markdown comment: headline, the two sides, then only the sections with changes."""
    vm = diff_view(d, lang, **view)
    t = vm["t"]
    lines = [f"## {_md(t['title'])}: {_md(vm['headline'])}", ""]
    lines += _table(["", t["old"], t["new"]], [list(row) for row in vm["sides"]], t)
    lines += [f"**{_md(vm['summary'])}**" if vm["has_changes"] else _md(t["no_changes"]), ""]
    for section in vm["flag_sections"]:
        if section["rows"]:
            lines += [f"### {_md(section['title'])} ({len(section['rows'])})", ""]
            rows = [
                [r[k] + (f" ({r['note']})" if k == "term" and r["note"] else "") for k in FLAG_COLUMNS]
                for r in section["rows"]
            ]
            lines += _table(vm["flag_columns"], rows, t)
    if vm["readings"]:
        lines += [f"### {_md(t['readings'])}", ""]
        rows = [[r["method"], r["old"], r["new"], r["positions"]] for r in vm["readings"]]
        lines += _table([t["method"], t["old"], t["new"], t["positions"]], rows, t)
    lines += [f"### {_md(t['behaviour'])}", "", _md(vm["behaviour_status"]), ""]
    for section in vm["gap_sections"]:
        if section["rows"]:
            lines += [f"**{_md(section['title'])}**", ""]
            lines += _table(vm["gap_columns"], [[r[k] for k in GAP_COLUMNS] for r in section["rows"]], t)
    if vm["behaviour_compared"] and not vm["gaps_moved"]:
        lines += [_md(t["no_gaps"]), ""]
    lines += [f"### {_md(t['verdicts'])}", ""]
    lines += [f"- **{_md(side)}**: {_md(text)}" for side, text in vm["verdicts"]]
    lines.append("")
    if vm["context"]:
        lines += [f"### {_md(t['context'])}", "", _md(t["context_intro"]), ""]
        lines += _table([t["setting"], t["old"], t["new"]], [list(row) for row in vm["context"]], t)
    return "\n".join(lines).rstrip("\n") + "\n"


def _table(header: list[str], rows: list[list[str]], t: dict[str, str]) -> list[str]:
    lines = ["| " + " | ".join(_md(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows[:MAX_MARKDOWN_ROWS]]
    if len(rows) > MAX_MARKDOWN_ROWS:
        lines += ["", _md(t["more"].format(n=len(rows) - MAX_MARKDOWN_ROWS))]
    return lines + [""]


def _md(value: object) -> str:
    """Escapes text for Markdown (table cells too): pipes, backticks, emphasis, HTML brackets, newlines."""
    text = str(value).replace("\r", " ").replace("\n", " ")
    for char, escaped in (
        ("&", "&amp;"),
        ("\\", "\\\\"),
        ("|", "\\|"),
        ("`", "\\`"),
        ("*", "\\*"),
        ("_", "\\_"),
        ("[", "\\["),
        ("]", "\\]"),
        ("<", "&lt;"),
        (">", "&gt;"),
    ):
        text = text.replace(char, escaped)
    return text


# ---------------------------------------------------------------------------------------------
# HTML


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("audit.report", "templates"),
        autoescape=select_autoescape(
            enabled_extensions=("html", "j2"), default=True, default_for_string=True
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_diff_html(d: AuditDiff, lang: str = "en", **view: Any) -> str:
    """The diff as one self-contained, autoescaped HTML page."""
    return _environment().get_template("diff.html.j2").render(**diff_view(d, lang, **view))


def category_labels(*results: AuditResult) -> dict[str, dict[str, str]]:
    """Category labels of both audits (NEW's win)."""
    out: dict[str, dict[str, str]] = {}
    for result in results:
        out.update(result.category_labels)
    return out


# ---------------------------------------------------------------------------------------------
# Terminal


def render_diff_terminal(d: AuditDiff) -> str:
    """A few lines for the terminal (English, like the scan's summary)."""
    t = STRINGS["en"]
    vm = diff_view(d, "en")
    lines = [f"{t['title']}: {vm['headline']}", vm["summary"] if d.has_changes else t["no_changes"]]
    for f in d.appeared[:10]:
        lines.append(
            f"  + {f.severity.label:<6} position {f.position} {f.method} #{f.rank} "
            f"{_shown(f.token, t)!r} -> {f.term} ({f.category}, {f.language})"
        )
    if len(d.appeared) > 10:
        lines.append(f"  + ... and {len(d.appeared) - 10} more")
    for f in d.disappeared[:10]:
        lines.append(
            f"  - {f.severity.label:<6} position {f.position} {f.method} #{f.rank} {_shown(f.token, t)!r}"
        )
    for r in d.readings:
        changes = "; ".join(f"{c.position}: {_shown(c.old, t)!r} -> {_shown(c.new, t)!r}" for c in r.tokens)
        lines.append(f"  reading under {r.method}: {changes}")
    for g in d.gaps_opened:
        lines.append(
            f"  gap opened: {g.attribute} {g.group} vs {g.reference_group}, ratio {g.impact_ratio:.3f}"
        )
    for g in d.gaps_closed:
        lines.append(f"  gap closed: {g.attribute} {g.group} vs {g.reference_group}")
    return "\n".join(lines) + "\n"
