"""The files of a batch scan (``scan ... --out-dir OUT``) besides each prompt's own reports: ``index.html``
(one row per adapter) and ``summary.json`` (its schema: ``summary_schema.json`` next to this module), and
the terminal lines. From the records alone (no torch); Python computes every string, templates print.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from audit import __version__
from audit.records import AuditResult, BehaviourResult, Level
from audit.report.html import _fmt, _sig, environment, risk_badge
from audit.report.json_out import SCHEMA_VERSION, _num

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


STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Soft-prompt audits",
        "intro": "{n} adapter(s) audited with the same options, {errors} could not be audited. Each row "
        "links to the adapter's full report; the verdict is its report's first sentence.",
        "worst": "Worst risk: {risk}",
        "exit": "exit code {code} (--fail-on {fail_on})",
        "adapter": "adapter",
        "model": "model",
        "risk": "risk",
        "verdict": "verdict",
        "flagged": "flagged positions",
        "behaviour": "behavioural gap ({suite})",
        "reports": "reports",
        "report": "report",
        "none": "none",
        "n_flags": "{n} flag(s)",
        "errors": "Could not be audited",
        "errors_intro": "These adapters have no report: the reason is the one-line error a single scan of "
        "each would have given (exit code 2).",
        "reason": "reason",
        "duplicates": "Given more than once, audited once: {paths}",
        "gap": "{attribute}: {group} vs {reference}, impact ratio {ratio}, q {q}",
        "gap_base": " (also without the prompt)",
        "no_gap": "no significant gap (lowest impact ratio {ratio})",
        "behaviour_risk": "behaviour {risk}",
        "options": "Options: methods {methods}; top {k}; languages {languages}; seed {seed}; model {model}.",
        "recorded": "each adapter's recorded base model",
    },
    "es": {
        "title": "Auditorías de soft prompts",
        "intro": "{n} adaptador(es) auditados con las mismas opciones; {errors} no se pudieron auditar. Cada "
        "fila enlaza con el informe completo del adaptador; el veredicto es la primera frase de su informe.",
        "worst": "Riesgo más alto: {risk}",
        "exit": "código de salida {code} (--fail-on {fail_on})",
        "adapter": "adaptador",
        "model": "modelo",
        "risk": "riesgo",
        "verdict": "veredicto",
        "flagged": "posiciones con alertas",
        "behaviour": "brecha de comportamiento ({suite})",
        "reports": "informes",
        "report": "informe",
        "none": "ninguna",
        "n_flags": "{n} alerta(s)",
        "errors": "No se pudieron auditar",
        "errors_intro": "Estos adaptadores no tienen informe: el motivo es el error de una línea que habría "
        "dado el escaneo de cada uno por separado (código de salida 2).",
        "reason": "motivo",
        "duplicates": "Indicados más de una vez, auditados una sola vez: {paths}",
        "gap": "{attribute}: {group} frente a {reference}, razón de impacto {ratio}, q {q}",
        "gap_base": " (también sin el prompt)",
        "no_gap": "ninguna brecha significativa (razón de impacto más baja {ratio})",
        "behaviour_risk": "comportamiento {risk}",
        "options": "Opciones: métodos {methods}; top {k}; idiomas {languages}; semilla {seed}; "
        "modelo {model}.",
        "recorded": "el modelo base que registra cada adaptador",
    },
}


def worst_risk(rows: Sequence[Row]) -> Level | None:
    """The highest overall risk among the audited rows (None when none was audited)."""
    risks = [r.result.summary.risk for r in rows if r.result is not None]
    return max(risks) if risks else None


def flagged_positions(result: AuditResult) -> list[tuple[int, Level]]:
    """(position, risk) of every position with an active flag or a raised risk, in prompt order."""
    return [(p.index, p.risk) for p in result.positions if p.flags or p.risk > Level.LOW]


# ---------------------------------------------------------------------------------------------------
# summary.json


def summary_dict(rows: Sequence[Row], run: RunInfo) -> dict[str, Any]:
    """The batch summary (schema ``summary_schema.json``): the run, its models and one entry per adapter.
    Deterministic: no times, rows in name order as given."""
    worst = worst_risk(rows)
    audited = [r for r in rows if r.result is not None]
    models: dict[str, dict[str, Any]] = {}
    for row in audited:
        m = row.result.model
        entry = models.setdefault(
            m.spec,
            {"spec": m.spec, "vocab_size": m.vocab_size, "dim": m.dim, "sha256": m.sha256, "adapters": []},
        )
        entry["adapters"].append(row.name)
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": SUMMARY_KIND,
        "tool": {"name": "prompt-audit", "version": __version__},
        "config": {
            "methods": list(run.methods),
            "top_k": run.top_k,
            "languages": list(run.languages),
            "seed": run.seed,
            "fail_on": run.fail_on,
            "model": run.model,
            "behaviour": run.behaviour,
        },
        "exit_code": run.exit_code,
        "risk": worst.label if worst is not None else None,
        "counts": {
            "adapters": len(rows),
            "audited": len(audited),
            "errors": len(rows) - len(audited),
            "duplicates": len(run.duplicates),
            "by_risk": {level.label: sum(r.result.summary.risk == level for r in audited) for level in Level},
        },
        "models": sorted(models.values(), key=lambda m: m["spec"]),
        "duplicates": list(run.duplicates),
        "adapters": [_adapter_dict(r) for r in rows],
    }


def _adapter_dict(row: Row) -> dict[str, Any]:
    result = row.result
    if result is None:
        return {
            "name": row.name,
            "path": row.path,
            "status": "error",
            "error": row.error,
            "files": {},
        }
    summary = result.summary
    return {
        "name": row.name,
        "path": row.path,
        "status": "audited",
        "prompt_sha256": result.prompt.sha256,
        "n_tokens": result.prompt.n_tokens,
        "model": result.model.spec,
        "risk": summary.risk.label,
        "verdict": dict(summary.verdict),
        "n_flags": summary.n_flags,
        "flagged_positions": [{"index": i, "risk": r.label} for i, r in flagged_positions(result)],
        "behaviour": _behaviour_dict(result.behaviour) if result.behaviour else None,
        "files": dict(row.files),
    }


def _behaviour_dict(b: BehaviourResult) -> dict[str, Any]:
    return {
        "suite": b.suite_id,
        "suite_version": b.suite_version,
        "risk": b.risk.label,
        "lowest_impact_ratio": _num(_lowest_ratio(b)),
        "gaps": [
            {
                "attribute": g.attribute,
                "group": g.group,
                "reference_group": g.reference_group,
                "impact_ratio": _num(g.impact_ratio),
                "q_value": _num(g.q_value),
                "in_base_model": g.in_base_model,
            }
            for g in b.gaps
        ],
    }


def _lowest_ratio(b: BehaviourResult) -> float | None:
    ratios = [g.impact_ratio for a in b.soft.attributes for g in a.groups if g.impact_ratio is not None]
    return min(ratios) if ratios else None


def render_summary(rows: Sequence[Row], run: RunInfo) -> str:
    return json.dumps(summary_dict(rows, run), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------------
# index.html


def render_index(rows: Sequence[Row], run: RunInfo, lang: str = "en") -> str:
    """``index.html``: one row per audited adapter (risk badge, verdict, flagged positions, behavioural gap
    with --behaviour, links to its reports) and one per adapter that could not be audited."""
    t = STRINGS[lang]
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
    from audit.report.i18n import strings

    return strings(lang)[f"risk_{level.label}"]


def _entry(row: Row, result: AuditResult, lang: str) -> dict[str, Any]:
    t = STRINGS[lang]
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
    t = STRINGS[lang]
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
    if not b.gaps:
        lines.append(t["no_gap"].format(ratio=_fmt(_lowest_ratio(b), 2, lang)))
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
