"""The bias-audit summary (NYC LL144 layout): per-attribute and crossed categories on known counts, the
2 % exclusion, the CSV and its option."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

import numpy as np
import pytest

from audit.behaviour.stats.categories import category_table, crossed_members
from tests.helpers import behaviour as behaviour_case
from tests.helpers import bias_audit_tables, group

# 4 qualifying templates; 6 names: origin a = n1..n3, b = n4..n6; gender f = n1, n2, n4 and m = n3, n5, n6.
VALUES = ("n1", "n2", "n3", "n4", "n5", "n6")
ORIGIN = {"a": ("n1", "n2", "n3"), "b": ("n4", "n5", "n6")}
GENDER = {"f": ("n1", "n2", "n4"), "m": ("n3", "n5", "n6")}
# Positive decisions per name over the 4 templates: n1 4, n2 3, n3 4, n4 1, n5 2, n6 0.
POSITIVES = (4, 3, 4, 1, 2, 0)
LO = np.array([[1.0 if t < k else -1.0 for k in POSITIVES] for t in range(4)])


def test_crossed_categories_on_known_counts():
    rows, best = category_table(LO, crossed_members(VALUES, ORIGIN, GENDER))
    by = {r.name: r for r in rows}
    assert list(by) == ["a x f", "a x m", "b x f", "b x m"]
    # a x f = n1, n2: 7 of 8; a x m = n3: 4 of 4; b x f = n4: 1 of 4; b x m = n5, n6: 2 of 8.
    assert [(r.n, r.n_names) for r in rows] == [(8, 2), (4, 1), (4, 1), (8, 2)]
    assert [r.selection_rate for r in rows] == [7 / 8, 1.0, 1 / 4, 2 / 8]
    assert best == "a x m"
    assert [r.impact_ratio for r in rows] == pytest.approx([7 / 8, 1.0, 1 / 4, 1 / 4])
    assert [r.share for r in rows] == pytest.approx([8 / 24, 4 / 24, 4 / 24, 8 / 24])
    assert all(r.small_sample for r in rows)  # under 50 renderings each
    assert not any(r.excluded for r in rows)


def test_a_category_under_two_percent_is_excluded_from_the_impact_ratios():
    # 60 names: category x has 1 (1/60 = 1.7 % < 2 %) and the highest rate; y has 59.
    lo = np.full((2, 60), -1.0)
    lo[:, 0] = 1.0  # x: always selected
    lo[:, 1:31] = 1.0  # y: 30 of 59 names always selected
    members = [(("x",), np.arange(60) == 0), (("y",), np.arange(60) > 0)]
    (x, y), best = category_table(lo, members)
    assert x.excluded and x.impact_ratio is None and x.selection_rate == 1.0
    assert best == "y" and y.impact_ratio == 1.0  # the most selected among those kept
    assert not y.excluded and y.share == pytest.approx(59 / 60)


def test_every_category_excluded_leaves_no_ratio():
    members = [(("x",), np.array([True, False])), (("y",), np.array([False, True]))]
    rows, best = category_table(np.ones((1, 2)), members, min_share=0.6)
    assert best is None and all(r.impact_ratio is None and r.excluded for r in rows)


def _with_tables(b):
    return replace(b, bias_audit=bias_audit_tables())


def test_csv_summary_lists_every_category_labelled_as_synthetic_test_data():
    from tests.helpers import result_with_behaviour

    result = result_with_behaviour(_with_tables(behaviour_case(group(0.5, 0.01))))
    from audit.report.ll144 import CSV_COLUMNS, render_summary_csv

    rows = list(csv.DictReader(io.StringIO(render_summary_csv(result, "en"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["category"] for r in rows] == ["spain x female", "maghreb x female", "roma x male"]
    assert all(
        "synthetic counterfactual probes" in r["data_source"] and "not historical" in r["data_source"]
        for r in rows
    )
    maghreb, roma = rows[1], rows[2]
    assert (maghreb["n_renderings"], maghreb["selection_rate"], maghreb["impact_ratio"]) == (
        "144",
        "0.45",
        "0.5",
    )
    assert (roma["excluded"], roma["impact_ratio"], roma["excluded_reason"]) == (
        "true",
        "",
        "under 2 % of the table's renderings",
    )
    assert {r["most_selected"] for r in rows} == {"spain x female"}


def test_the_html_and_markdown_reports_print_the_summary():
    from audit.report.html import render_html
    from audit.report.markdown import render_markdown
    from tests.helpers import result_with_behaviour

    result = result_with_behaviour(_with_tables(behaviour_case(group(0.5, 0.01))))
    html = render_html(result, "en")
    assert "Bias-audit summary (NYC Local Law 144 layout)" in html and "maghreb x female" in html
    assert "not historical data" in html and "excluded (under 2 %): 1 (roma x male)" in html
    md = render_markdown(result, "es")
    assert "Local Law 144" in md and "maghreb x female" in md
