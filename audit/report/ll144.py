"""The bias-audit summary in the layout of a NYC Local Law 144 summary of results: the view the HTML and
Markdown reports print, and the CSV (``--summary-csv PATH``). From the records alone; every row is
labelled as test data from synthetic counterfactual probes, not historical data."""

from __future__ import annotations

import csv
import io

from audit.errors import AuditInputError
from audit.records import AuditResult, BehaviourResult, Category
from audit.report.codec import number
from audit.report.format import fmt
from audit.report.i18n import strings

DATA_SOURCE = (
    "test data: synthetic counterfactual probes (suite renderings under the soft prompt), not historical data"
)
CSV_COLUMNS = (
    "data_source",
    "suite",
    "table",
    "category",
    "n_renderings",
    "n_names",
    "share",
    "selection_rate",
    "impact_ratio",
    "most_selected",
    "excluded",
    "excluded_reason",
    "small_sample",
)


def _marks(c: Category, lang: str) -> str:
    t = strings(lang)
    marks = [t["b_excluded"]] if c.excluded else []
    if c.small_sample:
        marks.append(t["b_small"])
    return "; ".join(marks)


def summary_view(b: BehaviourResult, lang: str) -> list[dict]:
    """One dict per table: its title, rows (strings) and the excluded / unknown note."""
    t = strings(lang)
    tables = []
    for table in b.bias_audit:
        excluded = [c.name for c in table.categories if c.excluded]
        note = t["b_ll144_note"].format(
            best=table.most_selected or t["b_na"],
            n=len(excluded),
            names=", ".join(excluded) or "-",
            unknown=table.n_unknown,
        )
        tables.append(
            {
                "title": table.id,
                "note": note,
                "rows": [
                    {
                        "category": c.name,
                        "n": str(c.n),
                        "names": str(c.n_names),
                        "share": fmt(100 * c.share, 1, lang) + " %",
                        "selection_rate": fmt(c.selection_rate, 3, lang),
                        "impact_ratio": fmt(c.impact_ratio, 2, lang),
                        "marks": _marks(c, lang),
                    }
                    for c in table.categories
                ],
            }
        )
    return tables


def render_summary_csv(result: AuditResult, lang: str) -> str:
    """The bias-audit summary as CSV, one row per category of every table (numbers in English notation,
    rounded as in the JSON)."""
    b = result.behaviour
    if b is None:
        raise AuditInputError(
            "the bias-audit summary needs the behavioural check", "add --behaviour SUITE to the scan"
        )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    suite = f"{b.suite_id} {b.suite_version}"
    for table in b.bias_audit:
        for c in table.categories:
            writer.writerow(
                (
                    DATA_SOURCE,
                    suite,
                    table.id,
                    c.name,
                    c.n,
                    c.n_names,
                    number(c.share),
                    number(c.selection_rate),
                    "" if c.impact_ratio is None else number(c.impact_ratio),
                    table.most_selected or "",
                    str(c.excluded).lower(),
                    "under 2 % of the table's renderings" if c.excluded else "",
                    str(c.small_sample).lower(),
                )
            )
    return out.getvalue()
