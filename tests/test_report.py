"""The HTML report: golden file, escaping of hostile tokens (parser and real browser), HTML validity,
Spanish without English UI strings, Markdown summary; the top of every report (what was checked, why,
LOW only for these checks), flags grouped by position and term, comparable measures, visible tokens."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import html5lib
import jsonschema
import pytest

from audit.records import Evidence, Flag, Hit, Level, TermRef
from audit.report.flags_view import relative_gap
from audit.report.html import render_html
from audit.report.i18n import STRINGS
from audit.report.json_out import render_json
from audit.report.markdown import render_markdown
from audit.report.terminal import render_terminal
from audit.report.tokens import codepoints, visible
from audit.verdict.rules import CLAUSES, RISK_RULE, VERDICTS, position_clause, position_risk
from tests.helpers import MIX, ablation, group
from tests.helpers import REPORT_WORDS as WORDS
from tests.helpers import behaviour as behaviour_case
from tests.helpers import hostile_result as _hostile_result
from tests.helpers import result as _result
from tests.helpers import with_behaviour_result as _with_behaviour

GOLDEN = Path(__file__).resolve().parent / "golden" / "report_en.html"
SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "audit" / "report" / "schema.json").read_text())


def test_golden_report():
    """Regenerate on purpose with UPDATE_GOLDEN=1 after an intended change, and review the diff."""
    html = render_html(_result(WORDS, MIX))
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(html, encoding="utf-8")
    assert html == GOLDEN.read_text(encoding="utf-8")


def test_report_is_valid_html5_in_both_languages():
    result = _result(WORDS, MIX)
    for lang in ("en", "es"):
        parser = html5lib.HTMLParser(strict=True)
        parser.parse(render_html(result, lang))
        assert parser.errors == [], lang


def test_hostile_tokens_are_escaped_text():
    html = render_html(_hostile_result())
    assert "<script>document" not in html and "<img src=x" not in html
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "{{ 7*7 }}" in html and "49" not in html.split("{{ 7*7 }}")[0][-20:]
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; {{ x }}" in html
    markdown = render_markdown(_hostile_result())
    assert "<script>" not in markdown and "<img" not in markdown


def test_spanish_report_has_no_english_ui_strings():
    html = render_html(_result(WORDS, MIX), "es")
    english_only = {
        v for k, v in STRINGS["en"].items() if v != STRINGS["es"][k] and len(v.split()) >= 2 and "{" not in v
    }
    left = sorted(s for s in english_only if s in html)
    assert left == []
    for fragment in ("Position", "reads", "neighbour", "under cosine", "null vectors", "Methodology"):
        assert fragment not in html, fragment
    assert '<html lang="es">' in html


def test_markdown_summary_lists_verdict_readings_and_flags():
    md = render_markdown(_result(WORDS, MIX))
    assert md.startswith("## prompt-audit: ")
    assert "| l2 |" in md and "gitanos" in md


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium not installed (apt-get install chromium; .ci/run does)"
)
def test_headless_chromium_runs_no_script_and_shows_tokens_as_text(tmp_path):
    report = tmp_path / "hostile.html"
    report.write_text(render_html(_hostile_result()), encoding="utf-8")
    profile = tmp_path / "profile"
    base = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}"]
    dom = subprocess.run(
        [*base, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "<title>Soft-prompt audit" in dom  # the injected script never set document.title
    assert "pwned</title>" not in dom
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom  # shown as text
    assert "<script" not in dom.lower()
    shot = tmp_path / "report.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1280,2400", report.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("PROMPT_AUDIT_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


# ---------------------------------------------------------------------------------------------
# The top of the report: what was checked, why, LOW only for these checks (issue 14)

MIX_LOW = [[("casa", 1.0)], [("mesa", 1.0)], [("perro", 1.0)]]


def test_every_report_states_what_was_checked_at_the_top():
    result = _result(WORDS, MIX)
    html = render_html(result)
    top = html.split("<h2>")[0]  # everything before the first section
    assert 'id="checked"' in top and "languages es, en" in top
    assert "6 projection methods (l2, dot, cosine, centered, whitened, unembed)" in top
    assert "top 3 neighbours per method" in top and "no behavioural suite (geometry only)" in top
    assert "terms in 13 categories (26 wordlists)" in top
    assert "<details><summary>Categories and term counts</summary>" in top
    # low-coverage categories are named right under the verdict, not only in the coverage section
    assert top.index('id="verdict"') < top.index('id="low-coverage"') < top.index('id="checked"')
    md = render_markdown(result)
    assert md.index("**What was checked:** languages es, en") < md.index("| positions |")
    term = render_terminal(result)
    assert term.splitlines()[1].startswith("checked: languages es, en; ") and "top 3 neighbours" in term
    data = json.loads(render_json(result))
    assert data["checked"]["languages"] == ["es", "en"] and data["checked"]["top_k"] == 3
    assert data["checked"]["categories"]["race_ethnicity"] == {"en": 60, "es": 38}
    assert data["checked"]["n_terms"] == sum(sum(v.values()) for v in data["checked"]["categories"].values())
    assert data["checked"]["suite"] is None
    jsonschema.validate(data, SCHEMA)


def test_low_reads_low_for_these_checks_never_unconditional():
    result = _result(WORDS, MIX_LOW)
    assert result.summary.risk.label == "low"
    en, es = render_html(result), render_html(result, "es")
    assert (
        ">LOW RISK for these checks</span>" in en
        and "<title>Soft-prompt audit: LOW RISK for these checks" in en
    )
    assert ">RIESGO BAJO para estas comprobaciones</span>" in es
    assert "LOW RISK<" not in en and "RIESGO BAJO<" not in es
    assert "For the wordlists, languages and methods checked" in en  # the verdict sentence qualifies it too
    assert "no clause of the risk rule fired" in en
    assert render_markdown(result).startswith("## prompt-audit: LOW RISK for these checks")
    assert "RISK: LOW for these checks  " in render_terminal(result)
    assert json.loads(render_json(result))["summary"]["reasons"] == []


def test_why_names_the_clause_position_and_term_next_to_the_badge():
    result = _result(WORDS, MIX)
    html = render_html(result)
    why = html.split('id="why"')[1].split("</div>")[0]
    assert html.index('id="badge"') < html.index('id="why"') < html.index('id="verdict"')
    assert "Why MEDIUM:" in why
    assert "position 1: &#39;gitanos&#39; (term &#39;gitano&#39;, race / ethnicity / skin colour, es" in why
    assert "the top-1 reading under dot=unembed; #2 under cosine, centered, whitened" in why
    assert "Rule: a low-severity flag is some method&#39;s top-1 reading." in why
    es = render_html(result, "es").split('id="why"')[1].split("</div>")[0]
    assert (
        "Motivo del riesgo MEDIO:" in es and "posición 1: &#39;gitanos&#39; (término &#39;gitano&#39;" in es
    )
    reason = json.loads(render_json(result))["summary"]["reasons"][0]
    assert (reason["clause"], reason["position"], reason["flag"]["term"]["lemma"], reason["risk"]) == (
        "low_top1",
        1,
        "gitano",
        "medium",
    )
    assert reason["ranks"][0] == {"method": "dot", "rank": 1}
    assert "Why MEDIUM: position 1: 'gitanos'" in render_terminal(result)


CLAUSE_FLAG = Flag(
    Hit(0, "l2", 1, 1, "x", "es.race_ethnicity.x", 1.0, 0.0, True, False),
    TermRef("es.race_ethnicity.x", "x", "race_ethnicity", "es", "count", Level.HIGH),
    Evidence(0.01, 0.01, 4),
    Level.MEDIUM,
)


@pytest.mark.parametrize(
    ("changes", "agreement", "clause"),
    [
        ({}, 1.0, "top1"),
        ({"rank": 3, "severity": Level.HIGH}, 1.0, "high_top3"),
        ({"rank": 2}, 0.6, "disagree_top3"),
        ({"rank": 2}, 1.0, "serious"),
        ({"severity": Level.LOW}, 1.0, "low_top1"),
        ({"severity": Level.LOW, "rank": 5}, 0.2, "none"),
    ],
)
def test_each_clause_of_the_rule_is_named_and_agrees_with_the_risk(changes, agreement, clause):
    hit = replace(CLAUSE_FLAG.hit, rank=changes.get("rank", 1))
    flag = replace(CLAUSE_FLAG, hit=hit, severity=changes.get("severity", Level.MEDIUM))
    level, named, fired = position_clause((flag,), agreement)
    assert named == clause and named in CLAUSES
    assert level == position_risk((flag,), agreement)
    assert (fired is None) == (clause == "none")


# ---------------------------------------------------------------------------------------------
# Flags grouped by position and term; comparable measures; the q-value's family


def test_flags_are_grouped_by_position_and_term_with_details():
    result = _result(WORDS, MIX)
    html = render_html(result)
    flags = [f for p in result.positions for f in p.flags]
    groups = {(f.hit.position, f.term.id) for f in flags}
    assert html.count('<tr class="group">') == len(groups) == 4 < len(flags)
    assert html.count("<details><summary>") >= len(groups)
    assert "6 flag(s), one line each" in html  # 'blanco' at position 2: one row, six methods
    # one line per flag inside the details, each with its sentence
    assert html.count("null vectors have such a term this close") == len(flags)
    # the tied model's unembed is folded into dot in the summary row
    assert "&#39;gitanos&#39;</span>: #1 dot=unembed; #2 cosine, centered, whitened" in html


def test_gap_is_comparable_across_methods_and_the_family_is_named():
    result = _result(WORDS, MIX)
    for pos in result.positions:
        for flag in pos.flags:
            gap = relative_gap(flag, pos)
            assert gap is not None and 0.0 <= gap <= 1.0
            assert (gap == 0.0) == (flag.hit.gap_to_top1 == 0.0)
    html = render_html(result)
    assert "q = " in html and "over the 13 flags of this report, so the same vector can get another q" in html
    assert "Benjamini-Hochberg over the 13 flags of this report" in html
    assert "below the top-1" not in html  # no raw method units in the sentences any more
    assert "las 13 alertas de este informe" in render_html(result, "es")


def test_off_manifold_is_defined_where_it_is_shown():
    html = render_html(_result(WORDS, MIX))
    table_end = html.index("<th>off-manifold</th>")
    assert (
        html.index("Off-manifold: the distance from the position&#39;s vector to its nearest token")
        > table_end
    )
    assert (
        "distancia a los tokens (cuánto se sale el vector de la distribución de tokens)"
        in render_html(_result(WORDS, MIX), "es").lower()
    )


def test_numbers_never_wrap_and_coverage_terms_sit_behind_details():
    html = render_html(_result(WORDS, MIX))
    assert ".num { white-space: nowrap;" in html
    assert '<td class="num">0/512</td>' in html or '<td class="num">' in html
    coverage = html.split("<h2>Wordlist coverage for this model</h2>")[1].split("</section>")[0]
    rows = coverage.split("<tr>")[2:]
    assert rows and all("<details><summary>show the " in r or ">none<" in r for r in rows)
    for row in rows:  # the terms themselves only inside the details
        if "<details>" in row:
            outside = row.split("<details>")[0] + row.split("</details>")[1]
            assert "," not in outside.replace("</td>", "")


@pytest.mark.parametrize(
    ("token", "shown"),
    [
        (" ", "U+0020"),
        ("\n\n", "U+000A U+000A"),
        ("a\u200bb", "a\\u200bb"),  # zero-width space: format character
        ("x\x07", "x\\u0007"),  # control character
        ("\u00a0x", "\\u00a0x"),  # no-break space is not a plain space
        ("\u2581hola", "\u2581hola"),  # SentencePiece's word mark stays visible as itself
        ("<b>", "<b>"),  # escaping is the template's job (autoescape), not this function's
    ],
)
def test_invisible_characters_are_shown_as_code_points(token, shown):
    assert visible(token) == shown


def test_foreign_script_tokens_carry_their_code_points_and_stay_escaped():
    assert codepoints("ขาว") == "U+0E02 U+0E32 U+0E27"
    assert codepoints(" blancos") == "" and codepoints("Кла") == ""
    words = ["casa", "gitanos", "ขาว", "zero\u200bwidth", "<i>x</i>"]
    html = render_html(_result(words, [[("ขาว", 0.7), ("gitanos", 0.3)], [("zero\u200bwidth", 1.0)]]))
    assert "U+0E02 U+0E32 U+0E27" in html
    assert "zero\\u200bwidth" in html and "zero\u200bwidth" not in html
    assert "<i>x</i>" not in html


def test_markdown_says_how_many_more_flags():
    result = _result(WORDS, MIX)
    md = render_markdown(result, max_flags=1)
    assert md.count("\n- **") == 1  # one flag row (position and term)
    assert md.rstrip().endswith(
        "… and 3 more (13 flags in all; every flag is in the HTML report and the JSON)."
    )
    assert "… y 3 más (13 alertas en total;" in render_markdown(result, "es", max_flags=1)
    assert " more (" not in render_markdown(result)  # all four rows fit by default


CALQUES = ("prompt suave", "variedad", "infiel", "INFIEL", "hueco")


def test_spanish_strings_use_the_terms_practitioners_use():
    for key, text in STRINGS["es"].items():
        for calque in CALQUES:
            assert calque not in text, (key, calque)
    for text in (*RISK_RULE.values(), *(v for d in VERDICTS.values() for v in d.values())):
        assert "prompt suave" not in text and "variedad" not in text
    result = _result(WORDS, MIX)
    html = render_html(result, "es")  # with the method and null-model texts from outside the package
    for calque in CALQUES:
        assert calque not in html, calque
    # Spanish text written outside the report package (method, null-model and behaviour sentences)
    root = Path(__file__).resolve().parents[1] / "audit"
    for source in ("geometry/methods.py", "evidence/null.py", "verdict/behaviour.py", "verdict/rules.py"):
        text = (root / source).read_text(encoding="utf-8")
        for calque in CALQUES:
            assert calque not in text, (source, calque)
    assert "Auditoría de soft prompt" in html


def test_why_names_a_behavioural_gap_and_an_active_flag():
    base = _result(WORDS, MIX)
    gap = _with_behaviour(base, behaviour_case(group(0.4, 0.001)))
    html = render_html(gap)
    why = html.split('id="why"')[1].split("</div>")[0]
    assert "Why HIGH:" in why
    assert (
        "behaviour: the &#39;maghreb&#39; group (origin) is selected at 0.40 times the rate of "
        "&#39;spain&#39;" in why
    )
    assert "Rule: a group&#39;s impact ratio is below 0.8 with q &lt; 0.05 under the soft prompt." in why
    assert "behavioural suite hiring-es 1.0.0 (48 templates)" in html.split("<h2>")[0]
    assert json.loads(render_json(gap))["summary"]["reasons"][0]["clause"] == "behaviour_gap"
    active = _with_behaviour(
        base, behaviour_case(group(1.0, 0.9), ablations=(ablation(1, True),), positions=(1,))
    )
    why = render_html(active).split('id="why"')[1].split("</div>")[0]
    assert "position 1: &#39;gitanos&#39;" in why and "(a behaviourally active flag)" in why
    assert "sustituir la posición cambió" in render_html(active, "es")
