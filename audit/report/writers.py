"""Report formats, in one registry: the CLI's options, a batch's outputs, ``prompt-audit render`` and the
docs read :data:`AUDIT_FORMATS` and :data:`RUN_FORMATS`; nothing else lists them.

A new format is one module with a render function plus one :func:`register` call (docs/extending.md).
Importing this module is cheap (no torch, no jinja2): each format's renderer is imported when it renders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from audit.records import AuditResult

if TYPE_CHECKING:
    from audit.report.batch import Row, RunInfo


@dataclass(frozen=True)
class AuditFormat:
    """A report of one audit.

    Attributes:
        name: the option (``--json PATH``) and the format's key.
        suffix: a batch writes ``DIR/<adapter><suffix>``.
        label: how the terminal names a file written in it (``wrote JSON ...``).
        help: the option's help text.
        render: ``(result, report language) -> text``.
        in_batch: a batch always writes it (``json``, ``html``); otherwise only when its option is given
            without a PATH (``--markdown``).
        from_json: ``prompt-audit render`` can write it from a saved audit.
    """

    name: str
    suffix: str
    label: str
    help: str
    render: Callable[[AuditResult, str], str]
    in_batch: bool = False
    from_json: bool = True


@dataclass(frozen=True)
class RunFormat:
    """A file about a whole run (a batch, or one scan).

    Attributes:
        name: the format's key; with ``filename`` None, also the option (``--junit PATH``).
        label: how the terminal names a file written in it.
        help: the option's help text, or what the file is.
        render: ``(rows, run, report language) -> text``.
        filename: a batch writes it as ``DIR/<filename>`` (``index.html``); None: only at its option's path.
    """

    name: str
    label: str
    help: str
    render: Callable[[Sequence[Row], RunInfo, str], str]
    filename: str | None = None


AUDIT_FORMATS: dict[str, AuditFormat] = {}
RUN_FORMATS: dict[str, RunFormat] = {}


def register(fmt: AuditFormat | RunFormat) -> AuditFormat | RunFormat:
    """Adds a report format (its name must be new among both kinds: it becomes an option)."""
    if fmt.name in AUDIT_FORMATS or fmt.name in RUN_FORMATS:
        raise ValueError(f"report format {fmt.name!r} is already registered")
    (AUDIT_FORMATS if isinstance(fmt, AuditFormat) else RUN_FORMATS)[fmt.name] = fmt
    return fmt


def _json(result: AuditResult, lang: str) -> str:
    from audit.report.json_out import render_json

    return render_json(result)


def _html(result: AuditResult, lang: str) -> str:
    from audit.report.html import render_html

    return render_html(result, lang)


def _markdown(result: AuditResult, lang: str) -> str:
    from audit.report.markdown import render_markdown

    return render_markdown(result, lang)


def _summary_csv(result: AuditResult, lang: str) -> str:
    from audit.report.ll144 import render_summary_csv

    return render_summary_csv(result, lang)


def _junit(rows: Sequence[Row], run: RunInfo, lang: str) -> str:
    from audit.report.junit import render_junit

    audits = [(r.name, r.result) for r in rows if r.result is not None]
    errors = [(r.name, r.error or "") for r in rows if r.result is None]
    return render_junit(audits, run.fail_on, lang, errors=errors)


def _index(rows: Sequence[Row], run: RunInfo, lang: str) -> str:
    from audit.report.batch import render_index

    return render_index(rows, run, lang)


def _summary(rows: Sequence[Row], run: RunInfo, lang: str) -> str:
    from audit.report.batch import render_summary

    return render_summary(rows, run)


register(
    AuditFormat("json", ".json", "JSON", "write the JSON result here", _json, in_batch=True, from_json=False)
)
register(AuditFormat("html", ".html", "HTML", "write the HTML report here", _html, in_batch=True))
register(
    AuditFormat(
        "markdown", ".md", "Markdown", "write a short Markdown summary here (for PR comments)", _markdown
    )
)
register(
    AuditFormat(
        "summary-csv",
        ".csv",
        "CSV bias-audit summary",
        "with --behaviour: write the bias-audit summary (NYC Local Law 144 layout: category, n, selection "
        "rate, impact ratio, excluded categories; synthetic test data) as CSV here",
        _summary_csv,
    )
)
register(
    RunFormat(
        "junit",
        "JUnit",
        "write a JUnit XML report here for CI: one test case per check (geometry; behaviour with "
        "--behaviour), failing when that check's risk is at or above --fail-on",
        _junit,
    )
)
register(RunFormat("index", "index", "the batch's index page", _index, filename="index.html"))
register(
    RunFormat("summary", "summary", "the batch's machine-readable summary", _summary, filename="summary.json")
)
