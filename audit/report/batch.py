"""The files of a batch scan (``scan ... --out-dir OUT``) besides each prompt's own reports: ``index.html``
(one row per adapter) and ``summary.json`` (its schema: ``summary_schema.json`` next to this module), and
the terminal lines. From the records alone (no torch); Python computes every string, templates print.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from audit import __version__
from audit.records import AuditResult, BehaviourResult, Gap, Level, Unresolved
from audit.report.codec import dumps, encode
from audit.report.contract import SCHEMA_VERSION, document_schema
from audit.report.format import fmt as _fmt
from audit.report.format import sig as _sig
from audit.report.html import environment
from audit.report.i18n import batch_strings, strings
from audit.report.view import risk_badge

SUMMARY_KIND = "prompt-audit batch summary"


@dataclass(frozen=True)
class Row:
    """One adapter of a batch as the index and summary show it: an audit or the reason it has none.

    Attributes:
        files: report kind (``json``, ``html``, ``markdown``) -> file name inside the output folder.
    """

    name: str
    path: str
    result: AuditResult | None
    error: str | None
    files: dict[str, str]


@dataclass(frozen=True)
class RunInfo:
    """The run as a whole: its options and what became of its inputs."""

    fail_on: str
    methods: tuple[str, ...]
    top_k: int
    languages: tuple[str, ...]
    seed: int
    model: str | None  # --model, or None: each adapter's recorded base model
    behaviour: str | None  # --behaviour SUITE
    duplicates: tuple[str, ...]  # paths given more than once (or also found through a folder or glob)
    exit_code: int


def worst_risk(rows: Sequence[Row]) -> Level | None:
    """The highest overall risk among the audited rows (None when none was audited)."""
    risks = [r.result.summary.risk for r in rows if r.result is not None]
    return max(risks) if risks else None


def flagged_positions(result: AuditResult) -> list[tuple[int, Level]]:
    """(position, risk) of every position with an active flag or a raised risk, in prompt order."""
    return [(p.index, p.risk) for p in result.positions if p.flags or p.risk > Level.LOW]


# ---------------------------------------------------------------------------------------------------
# summary.json: records of its own (nesting the audit's Gap and Level), written by the one codec


@dataclass(frozen=True)
class SummaryConfig:
    """The options every adapter of the run was audited with."""

    methods: tuple[str, ...]
    top_k: int
    languages: tuple[str, ...]
    seed: int
    fail_on: str
    model: str | None  # --model, or None: each adapter's recorded base model
    behaviour: str | None  # --behaviour SUITE


@dataclass(frozen=True)
class Counts:
    adapters: int
    audited: int
    errors: int
    duplicates: int
    by_risk: dict[str, int]  # risk -> number of audited adapters


@dataclass(frozen=True)
class ModelEntry:
    """A base model of the run and the adapters audited against it."""

    spec: str
    vocab_size: int
    dim: int
    sha256: str
    adapters: tuple[str, ...]


@dataclass(frozen=True)
class FlaggedPosition:
    index: int
    risk: Level


@dataclass(frozen=True)
class BehaviourEntry:
    """An adapter's behavioural check in brief: its risk, its gaps, the groups it could not resolve
    (rule version 2) and the lowest impact ratio."""

    suite: str
    suite_version: str
    risk: Level
    lowest_impact_ratio: float | None
    gaps: tuple[Gap, ...]
    unresolved: tuple[Unresolved, ...] = ()


@dataclass(frozen=True)
class AdapterEntry:
    """One adapter: ``status`` "audited" (the audit's headline) or "error" (``error``, the one-line reason;
    the audit's fields are null)."""

    name: str
    path: str
    status: str
    error: str | None
    files: dict[str, str]  # report kind -> file name inside the output folder
    prompt_sha256: str | None
    n_tokens: int | None
    model: str | None
    risk: Level | None
    verdict: dict[str, str] | None  # report language -> sentence
    n_flags: int | None
    flagged_positions: tuple[FlaggedPosition, ...]
    behaviour: BehaviourEntry | None


@dataclass(frozen=True)
class BatchSummary:
    """``summary.json`` (schema ``summary_schema.json``): the run, its models, one entry per adapter."""

    kind: str
    tool_version: str
    config: SummaryConfig
    exit_code: int
    risk: Level | None  # the worst audited risk (None when none was audited)
    counts: Counts
    models: tuple[ModelEntry, ...]
    duplicates: tuple[str, ...]
    adapters: tuple[AdapterEntry, ...]


def batch_summary(rows: Sequence[Row], run: RunInfo) -> BatchSummary:
    """The batch summary. Deterministic: no times, rows in name order as given."""
    audited = [r for r in rows if r.result is not None]
    models: dict[str, list[str]] = {}
    specs = {}
    for row in audited:
        models.setdefault(row.result.model.spec, []).append(row.name)
        specs.setdefault(row.result.model.spec, row.result.model)
    return BatchSummary(
        kind=SUMMARY_KIND,
        tool_version=__version__,
        config=SummaryConfig(
            run.methods, run.top_k, run.languages, run.seed, run.fail_on, run.model, run.behaviour
        ),
        exit_code=run.exit_code,
        risk=worst_risk(rows),
        counts=Counts(
            adapters=len(rows),
            audited=len(audited),
            errors=len(rows) - len(audited),
            duplicates=len(run.duplicates),
            by_risk={level.label: sum(r.result.summary.risk == level for r in audited) for level in Level},
        ),
        models=tuple(
            ModelEntry(m.spec, m.vocab_size, m.dim, m.sha256, tuple(models[spec]))
            for spec, m in sorted(specs.items())
        ),
        duplicates=tuple(run.duplicates),
        adapters=tuple(_adapter(r) for r in rows),
    )


def _adapter(row: Row) -> AdapterEntry:
    result = row.result
    if result is None:
        return AdapterEntry(
            row.name, row.path, "error", row.error, {}, None, None, None, None, None, None, (), None
        )
    b = result.behaviour
    return AdapterEntry(
        name=row.name,
        path=row.path,
        status="audited",
        error=None,
        files=dict(row.files),
        prompt_sha256=result.prompt.sha256,
        n_tokens=result.prompt.n_tokens,
        model=result.model.spec,
        risk=result.summary.risk,
        verdict=dict(result.summary.verdict),
        n_flags=result.summary.n_flags,
        flagged_positions=tuple(FlaggedPosition(i, r) for i, r in flagged_positions(result)),
        behaviour=(
            BehaviourEntry(b.suite_id, b.suite_version, b.risk, _lowest_ratio(b), b.gaps, b.unresolved)
            if b is not None
            else None
        ),
    )


def _lowest_ratio(b: BehaviourResult) -> float | None:
    ratios = [g.impact_ratio for a in b.soft.attributes for g in a.groups if g.impact_ratio is not None]
    return min(ratios) if ratios else None


def summary_dict(rows: Sequence[Row], run: RunInfo) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, **encode(batch_summary(rows, run))}


def summary_schema() -> dict[str, Any]:
    """The JSON schema of ``summary.json``, derived from :class:`BatchSummary`."""
    return document_schema(
        BatchSummary,
        id_=f"https://prompt-audit.invalid/schema/batch-summary-{SCHEMA_VERSION}.json",
        title="prompt-audit batch summary",
        description="Written by `prompt-audit scan PROMPT... --out-dir OUT` as OUT/summary.json "
        "(docs/json.md). Keys sorted, floats rounded to 6 decimals, no times: identical inputs give "
        "identical bytes.",
        envelope={"schema_version": {"const": SCHEMA_VERSION}},
    )


def render_summary(rows: Sequence[Row], run: RunInfo) -> str:
    return dumps(summary_dict(rows, run))


# ---------------------------------------------------------------------------------------------------
# index.html


def render_index(rows: Sequence[Row], run: RunInfo, lang: str = "en") -> str:
    """``index.html``: one row per audited adapter (risk badge, verdict, flagged positions, behavioural gap
    with --behaviour, links to its reports) and one per adapter that could not be audited."""
    t = batch_strings(lang)
    worst = worst_risk(rows)
    audited = [r for r in rows if r.result is not None]
    entries = [_entry(r, r.result, lang) for r in audited if r.result is not None]
    errors = [{"name": r.name, "path": r.path, "reason": r.error or ""} for r in rows if r.result is None]
    model = run.model or t["recorded"]
    suites = sorted({f"{b.suite_id} {b.suite_version}" for r in audited if (b := r.result.behaviour)})
    view = {
        "lang": lang,
        "t": t,
        "intro": t["intro"].format(n=len(audited), errors=len(errors)),
        "worst": t["worst"].format(risk=_risk_word(worst, lang)) if worst is not None else "",
        "worst_class": worst.label if worst is not None else "",
        "exit": t["exit"].format(code=run.exit_code, fail_on=run.fail_on),
        "options": t["options"].format(
            methods=", ".join(run.methods),
            k=run.top_k,
            languages=", ".join(run.languages),
            seed=run.seed,
            model=model,
        ),
        "behaviour_head": t["behaviour"].format(suite=", ".join(suites)) if run.behaviour else "",
        "entries": entries,
        "errors": errors,
        "duplicates": t["duplicates"].format(paths=", ".join(run.duplicates)) if run.duplicates else "",
    }
    return environment().get_template("batch_index.html.j2").render(**view)


def _risk_word(level: Level, lang: str) -> str:
    return strings(lang)[f"risk_{level.label}"]


def _entry(row: Row, result: AuditResult, lang: str) -> dict[str, Any]:
    t = batch_strings(lang)
    flagged = flagged_positions(result)
    return {
        "name": row.name,
        "path": row.path,
        "model": result.model.spec,
        "risk": result.summary.risk.label,
        "badge": risk_badge(result, lang),
        "verdict": result.summary.verdict.get(lang, result.summary.verdict.get("en", "")),
        "n_flags": t["n_flags"].format(n=result.summary.n_flags),
        "flagged": ", ".join(f"{i} ({_risk_word(r, lang)})" for i, r in flagged) or t["none"],
        "behaviour": _behaviour_lines(result.behaviour, lang) if result.behaviour else [],
        "links": [(label, row.files[kind]) for kind, label in _link_labels(t) if kind in row.files],
    }


def _link_labels(t: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return (("html", t["report"]), ("json", "JSON"), ("markdown", "Markdown"))


def _behaviour_lines(b: BehaviourResult, lang: str) -> list[str]:
    t = batch_strings(lang)
    lines = [t["behaviour_risk"].format(risk=_risk_word(b.risk, lang))]
    for g in b.gaps:
        line = t["gap"].format(
            attribute=g.attribute,
            group=g.group,
            reference=g.reference_group,
            ratio=_fmt(g.impact_ratio, 2, lang),
            q=_sig(g.q_value, lang),
        )
        lines.append(line + (t["gap_base"] if g.in_base_model else ""))
    for u in b.unresolved:
        bound = (
            t["open_bound"].format(bound=_fmt(u.lower_bound, 2, lang)) if u.lower_bound is not None else ""
        )
        lines.append(
            t["open"].format(
                attribute=u.attribute,
                group=u.group,
                ratio=_fmt(u.impact_ratio, 2, lang),
                why=strings(lang)[f"b_open_{u.reason}"],
            )
            + bound
        )
    if not b.gaps and not b.unresolved:
        lines.append(t["cleared"].format(ratio=_fmt(_lowest_ratio(b), 2, lang)))
    return lines


# ---------------------------------------------------------------------------------------------------
# Terminal


def terminal_lines(rows: Sequence[Row], run: RunInfo, written: Sequence[str]) -> str:
    """One line per adapter (risk, flags, model, or the error), then where the reports are."""
    width = max((len(r.name) for r in rows), default=0)
    lines = []
    for row in rows:
        if row.result is None:
            lines.append(f"{row.name:<{width}}  ERROR   {row.error}")
            continue
        s = row.result.summary
        behaviour = f"; behaviour {row.result.behaviour.risk.label}" if row.result.behaviour else ""
        lines.append(
            f"{row.name:<{width}}  {s.risk.label.upper():<6}  {s.n_flags} flag(s){behaviour}; "
            f"{row.result.model.spec}"
        )
    for path in run.duplicates:
        lines.append(f"(given more than once, audited once: {path})")
    audited = sum(r.result is not None for r in rows)
    worst = worst_risk(rows)
    worst_text = f"; worst risk {worst.label.upper()}" if worst is not None else ""
    lines.append(f"{audited} audited, {len(rows) - audited} could not be audited{worst_text}")
    lines += [f"  {path}" for path in written]
    return "\n".join(lines) + "\n"
