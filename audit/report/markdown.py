"""The Markdown summary for pull-request comments (the HTML report's strings and view model)."""

from __future__ import annotations

from audit.records import AuditResult
from audit.report.load import canonical
from audit.report.view import view_model


def render_markdown(result: AuditResult, lang: str = "en", max_flags: int = 10) -> str:
    """A short Markdown summary for pull-request comments (same strings as the HTML report): the
    verdict and why, what was checked, the readings, and the flags grouped by position and term
    (``max_flags`` rows, then how many more)."""
    vm = view_model(canonical(result), lang)
    t = vm["t"]
    lines = [f"## {_md(t['md_title'].format(risk=vm['risk_badge']))}", ""]
    lines += [f"**{_md(vm['why']['head'])}**", ""]
    lines += [f"- {_md(item)}" for item in vm["why"]["lines"]]
    lines += [""] + [f"> **{_md(t['warning'])}:** {_md(w)}" for w in vm["warnings"]]
    lines += ["", _md(vm["verdict"]), ""]
    if vm["low_coverage"]:
        lines += [_md(vm["low_coverage"]), ""]
    checked = "; ".join(vm["checked"]["lines"])
    lines += [f"**{_md(t['md_checked'])}:** {_md(checked)}. {_md(t['checked_outside'])}", ""]
    lines.append("| " + " | ".join(_md(label) for label, _ in vm["numbers"]) + " |")
    lines.append("|" + "---|" * len(vm["numbers"]))
    lines.append("| " + " | ".join(_md(value) for _, value in vm["numbers"]) + " |")
    lines.append("")
    header = [t["method"], t["projected_text"]] + ([t["prompt_f1"]] if vm["reference"] else [])
    lines.append("| " + " | ".join(_md(h) for h in header) + " |")
    lines.append("|" + "---|" * len(header))
    for row in vm["projected"]:
        cells = [row["method"], row["text"]] + ([row["f1"]] if vm["reference"] else [])
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    lines.append("")
    if vm["b"]:
        lines += _behaviour(vm["b"], t)
    groups = vm["flags"]
    if groups:
        lines += [f"### {_md(t['md_top_flags'])}", "", _md(vm["measures_intro"]), ""]
        lines += [f"- **{_md(g['severity_label'])}**: {_md(g['sentence'])}" for g in groups[:max_flags]]
        if len(groups) > max_flags:
            lines.append(
                _md(t["md_more"].format(n=len(groups) - max_flags, flags=sum(g["n"] for g in groups)))
            )
    else:
        lines.append(_md(t["no_flags"]))
    return "\n".join(lines) + "\n"


def _behaviour(b: dict, t: dict) -> list[str]:
    """The behavioural check: verdict, suite, and the soft prompt's table per attribute."""
    lines = [f"### {_md(t['b_title'])}", "", _md(b["verdict"]), "", _md(f"{t['b_suite']}: {b['suite']}"), ""]
    if b["sequential"]:
        lines += [_md(f"{t['b_sequential_title']}: {b['sequential']}"), ""]
    group_columns = {
        "group": "b_group",
        "n": "b_n",
        "selection_rate": "b_selection_rate",
        "impact_ratio": "b_impact_ratio",
        "ci": "b_ci",
        "q": "b_q",
        "bound": "b_bound",
        "detectable": "b_detectable",
        "status": "b_status",
    }
    for a in b["attributes"]:
        lines += [f"**{_md(a['title'])}**", "", *_table(group_columns, a["rows"], t), ""]
    lines += [_md(t["b_columns"]), ""]
    if b["found"]:
        lines += _found(b["found"], t)
    if b["ll144"]:
        lines += [f"**{_md(t['b_ll144_title'])}**", "", _md(t["b_ll144_intro"]), ""]
        category_columns = {
            "category": "b_category",
            "n": "b_n",
            "names": "b_names",
            "share": "b_share",
            "selection_rate": "b_selection_rate",
            "impact_ratio": "b_impact_ratio",
            "marks": None,
        }
        for table in b["ll144"]:
            lines += [f"*{_md(table['title'])}*", "", *_table(category_columns, table["rows"], t)]
            lines += ["", _md(table["note"]), ""]
    return lines


def _found(f: dict, t: dict) -> list[str]:
    """The found reading: its text and columns, its changes, flags, disparities and cost."""
    lines = [f"**{_md(t['b_found_title'])}**", "", _md(f["intro"]), ""]
    row = {k: f[k] for k in ("text", "agreement", "kl", "accuracy", "faithful")}
    columns = {
        "text": "projected_text",
        "agreement": "b_agreement",
        "kl": "b_kl_col",
        "accuracy": "b_accuracy",
        "faithful": None,
    }
    lines += [
        *_table(columns, [row], t),
        "",
        _md(" ".join(x for x in (f["versus"], f["not_improved"]) if x)),
        "",
    ]
    changes = "; ".join(f["changes"]) or t["b_found_no_changes"]
    flags = "; ".join(f["flags"]) or t["b_found_no_flags"]
    lines += [_md(f"{f['changes_title']}: {changes}"), "", _md(f"{t['b_found_flags']}: {flags}"), ""]
    columns = {
        "attribute": "b_attribute_col",
        "group": "b_group",
        "selection_rate": "b_selection_rate",
        "impact_ratio": "b_impact_ratio",
        "q": "b_q",
    }
    lines += [_md(t["b_found_disparities"]), "", *_table(columns, f["rows"], t), ""]
    return lines + [_md(f["cost"]), ""]


def _table(columns: dict[str, str | None], rows: list[dict], t: dict) -> list[str]:
    """A Markdown table: ``columns`` maps each row key to its header string's key (None: no header)."""
    head = [t[k] if k else "" for k in columns.values()]
    lines = ["| " + " | ".join(_md(h) for h in head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(_md(r[k]) for k in columns) + " |" for r in rows]


def _md(value: object) -> str:
    """Escapes text for a Markdown table cell (pipes, backticks, HTML brackets, newlines)."""
    text = str(value).replace("\n", " ")
    for char, escaped in (
        ("&", "&amp;"),
        ("\\", "\\\\"),
        ("|", "\\|"),
        ("`", "\\`"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ("*", "\\*"),
        ("_", "\\_"),
    ):
        text = text.replace(char, escaped)
    return text
