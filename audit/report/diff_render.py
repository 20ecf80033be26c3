"""The diff's three forms: a Markdown comment (pull requests), one self-contained HTML page, and a few
terminal lines. They print :func:`audit.report.diff_view.diff_view`; templates only loop and print."""

from __future__ import annotations

from typing import Any

from audit.report.diff import AuditDiff
from audit.report.diff_view import FLAG_COLUMNS, GAP_COLUMNS, _shown, diff_view
from audit.report.html import environment
from audit.report.i18n import diff_strings

MAX_MARKDOWN_ROWS = 25  # per table: a pull-request comment stays short; the HTML diff lists everything


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


def render_diff_html(d: AuditDiff, lang: str = "en", **view: Any) -> str:
    """The diff as one self-contained, autoescaped HTML page."""
    return environment().get_template("diff.html.j2").render(**diff_view(d, lang, **view))


# ---------------------------------------------------------------------------------------------
# Terminal


def render_diff_terminal(d: AuditDiff) -> str:
    """A few lines for the terminal (English, like the scan's summary)."""
    t = diff_strings("en")
    vm = diff_view(d, "en")
    lines = [f"{t['title']}: {vm['headline']}", vm["summary"] if d.has_changes else t["no_changes"]]
    for f in d.appeared[:10]:
        lines.append(
            f"  + {f.severity.label:<6} position {f.hit.position} {f.hit.method} #{f.hit.rank} "
            f"{_shown(f.hit.token, t)!r} -> {f.term.lemma} ({f.term.category}, {f.term.language})"
        )
    if len(d.appeared) > 10:
        lines.append(f"  + ... and {len(d.appeared) - 10} more")
    for f in d.disappeared[:10]:
        lines.append(
            f"  - {f.severity.label:<6} position {f.hit.position} {f.hit.method} #{f.hit.rank} "
            f"{_shown(f.hit.token, t)!r}"
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
