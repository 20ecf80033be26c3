"""`prompt-audit diff`: the demo's baseline vs wayward audits, identical inputs, edited audits (rank and
severity changes, behavioural gaps, no behavioural check), hostile tokens, bad inputs; without torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import html5lib
import pytest

from audit.cli import main
from audit.records import Level
from audit.report.contract import SCHEMA_VERSION
from audit.report.diff import diff_audits, read_pair
from audit.report.diff_render import render_diff_markdown
from audit.report.i18n import DIFF_STRINGS as STRINGS

SAMPLE = Path(__file__).resolve().parent.parent / "reports" / "sample"
BASELINE = SAMPLE / "hiring-es-baseline.json"
WAYWARD = SAMPLE / "hiring-es-wayward.json"


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _edited(tmp_path: Path, source: Path, name: str, edit) -> Path:
    """A copy of a sample audit changed by ``edit(data)``."""
    data = json.loads(source.read_text(encoding="utf-8"))
    edit(data)
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _flags_at(data: dict, index: int) -> list[dict]:
    return next(p for p in data["positions"] if p["index"] == index)["flags"]


def test_baseline_vs_wayward_shows_the_position_7_flags(tmp_path, capsys):
    old, new = read_pair(BASELINE, WAYWARD)
    d = diff_audits(old, new, old_label="old", new_label="new")
    assert (d.old.risk, d.new.risk) == (Level.LOW, Level.HIGH)
    assert len(d.appeared) == 24 and not d.disappeared and not d.changed
    assert {f.hit.position for f in d.appeared} == {7}
    keys = {(f.hit.method, f.hit.rank, f.hit.token.strip(), f.term.id) for f in d.appeared}
    assert ("centered", 1, "blancos", "es.race_ethnicity.blanco") in keys
    assert ("l2", 2, "blancos", "es.race_ethnicity.blanco") in keys
    assert max(f.severity for f in d.appeared) == Level.MEDIUM  # the demo's flags are medium at most
    assert [r.method for r in d.readings] == ["centered", "whitened"]
    for r in d.readings:
        assert [(c.position, c.old.strip(), c.new.strip()) for c in r.tokens] == [(7, "buenos", "blancos")]
    assert d.behaviour == "both" and not d.gaps_opened and not d.gaps_closed
    assert [c.field for c in d.context] == []  # same model, wordlists, settings, suite and tool
    # report-only terms ("rojos") appear but never count toward --fail-on-new
    assert len(d.new_flags_at_or_above(Level.LOW)) == 18

    out_md, out_html = tmp_path / "diff.md", tmp_path / "diff.html"
    argv = ["diff", BASELINE, WAYWARD, "--markdown", out_md, "--html", out_html, "--fail-on-new", "medium"]
    code, out, err = run(argv, capsys)
    assert code == 1, err
    assert "risk LOW → HIGH" in out and "18 flag(s) new at --fail-on-new medium" in out
    md = out_md.read_text(encoding="utf-8")
    assert md.startswith("## prompt-audit diff: risk LOW → HIGH\n")
    assert "### Flags that appeared (24)" in md
    assert "| medium | 7 | centered | 1 | blancos | blanco |" in md
    assert "| centered | Eres gerente de contratación. Clasifica buenos currículums: |" in md
    assert "7: buenos → blancos" in md
    assert "No behavioural gap opened or closed." in md
    assert "Flags that disappeared" not in md  # only sections with changes in a PR comment
    html = out_html.read_text(encoding="utf-8")
    html5lib.HTMLParser(strict=True).parse(html)
    assert '<span class="badge high">NEW: HIGH</span>' in html and html.count('<tr class="added">') == 24

    assert run(["diff", BASELINE, WAYWARD, "--fail-on-new", "high"], capsys)[0] == 0
    assert run(["diff", BASELINE, WAYWARD, "--fail-on-new", "low"], capsys)[0] == 1
    assert run(["diff", BASELINE, WAYWARD], capsys)[0] == 0  # no gate without --fail-on-new
    # the other way round the flags disappear: nothing new
    code, out, _ = run(["diff", WAYWARD, BASELINE, "--fail-on-new", "low"], capsys)
    assert code == 0 and "0 flag(s) appeared, 24 disappeared" in out


def test_identical_inputs_have_no_differences(tmp_path, capsys):
    old, new = read_pair(WAYWARD, WAYWARD)
    d = diff_audits(old, new, old_label="a", new_label="b")
    assert not d.has_changes
    assert not (d.appeared or d.disappeared or d.changed or d.readings or d.gaps_opened or d.gaps_closed)
    out_md, out_html = tmp_path / "same.md", tmp_path / "same.html"
    code, out, err = run(
        ["diff", WAYWARD, WAYWARD, "--fail-on-new", "low", "--markdown", out_md, "--html", out_html], capsys
    )
    assert code == 0, err
    assert "No differences" in out
    md = out_md.read_text(encoding="utf-8")
    assert "No differences: the risk, the verdict, the flags, the readings" in md
    assert "###" not in md.split("### Behavioural check")[0]  # no flag or reading sections
    html = out_html.read_text(encoding="utf-8")
    html5lib.HTMLParser(strict=True).parse(html)
    # deterministic: the same inputs give the same bytes
    again = tmp_path / "again.md"
    assert run(["diff", WAYWARD, WAYWARD, "--markdown", again], capsys)[0] == 0
    assert again.read_bytes() == out_md.read_bytes()


def test_rank_and_severity_changes(tmp_path, capsys):
    def edit(data):
        flags = _flags_at(data, 7)
        moved = next(
            f for f in flags if f["hit"]["method"] == "l2" and f["hit"]["token"].strip() == "blancos"
        )
        moved["hit"]["rank"] = 5
        raised = next(
            f for f in flags if f["hit"]["method"] == "cosine" and f["hit"]["token"].strip() == "blanco"
        )
        raised["severity"] = "high"

    new = _edited(tmp_path, WAYWARD, "edited.json", edit)
    d = diff_audits(*read_pair(WAYWARD, new), old_label="a", new_label="b")
    assert not d.appeared and not d.disappeared
    changes = {(c.new.hit.method, c.new.hit.token.strip()): c for c in d.changed}
    assert set(changes) == {("l2", "blancos"), ("cosine", "blanco")}
    assert (changes["l2", "blancos"].old.hit.rank, changes["l2", "blancos"].new.hit.rank) == (2, 5)
    assert changes["cosine", "blanco"].new.severity == Level.HIGH
    # a severity that rose to the gate's level is new at that level; one already above it is not
    assert run(["diff", WAYWARD, new, "--fail-on-new", "high"], capsys)[0] == 1
    assert run(["diff", WAYWARD, new, "--fail-on-new", "medium"], capsys)[0] == 0
    md = render_diff_markdown(d)
    assert "### Flags that changed rank or severity (2)" in md
    assert "| 2 → 5 |" in md and "| medium → high |" in md


def _gap(group: str) -> dict:
    return {
        "attribute": "origin",
        "group": group,
        "reference_group": "spanish",
        "impact_ratio": 0.5,
        "q_value": 0.001,
        "in_base_model": False,
    }


def test_behavioural_gaps_open_and_close(tmp_path, capsys):
    def open_gap(data):
        data["behaviour"]["gaps"] = [_gap("maghrebi")]
        data["behaviour"]["risk"] = "high"

    gap = _edited(tmp_path, BASELINE, "gap.json", open_gap)
    d = diff_audits(*read_pair(BASELINE, gap), old_label="a", new_label="b")
    assert [(g.attribute, g.group) for g in d.gaps_opened] == [("origin", "maghrebi")]
    assert not d.gaps_closed and d.has_changes
    md = render_diff_markdown(d)
    assert "**Gaps that opened**" in md and "| origin | maghrebi | spanish | 0.500 | 0.001 | no |" in md
    back = diff_audits(*read_pair(gap, BASELINE), old_label="a", new_label="b")
    assert [g.group for g in back.gaps_closed] == ["maghrebi"] and not back.gaps_opened
    # a gap is not a flag: --fail-on-new gates flags only
    assert run(["diff", BASELINE, gap, "--fail-on-new", "low"], capsys)[0] == 0


@pytest.mark.parametrize("how", ["null", "absent"])
def test_behaviour_missing_on_either_side(tmp_path, capsys, how):
    def drop(data):
        if how == "null":
            data["behaviour"] = None
        else:
            del data["behaviour"]

    bare_old = _edited(tmp_path, BASELINE, "bare-old.json", drop)
    bare_new = _edited(tmp_path, WAYWARD, "bare-new.json", drop)
    cases = [
        (bare_old, WAYWARD, "new_only"),
        (BASELINE, bare_new, "old_only"),
        (bare_old, bare_new, "neither"),
    ]
    for old_path, new_path, expected in cases:
        d = diff_audits(*read_pair(old_path, new_path), old_label="a", new_label="b")
        assert d.behaviour == expected
        assert not d.gaps_opened and not d.gaps_closed
        out_md = tmp_path / f"{expected}.md"
        code, _, err = run(
            ["diff", old_path, new_path, "--markdown", out_md, "--fail-on-new", "medium"], capsys
        )
        assert code == 1, err  # the position-7 flags are still new
        md = out_md.read_text(encoding="utf-8")
        assert STRINGS["en"][f"b_{expected}"] in md
        assert "| behavioural risk |" in md
    assert "| behavioural risk | not run | LOW |" in (tmp_path / "new_only.md").read_text(encoding="utf-8")


def test_hostile_tokens_are_escaped(tmp_path, capsys):
    hostile = "<script>alert('x')</script>|`*_[a](b)"

    def edit(data):
        pos = next(p for p in data["positions"] if p["index"] == 7)
        for flag in pos["flags"]:
            if flag["hit"]["token"].strip() == "blancos":
                flag["hit"]["token"] = hostile
        pos["projections"]["centered"]["token"] = hostile

    new = _edited(tmp_path, WAYWARD, "hostile.json", edit)
    out_md, out_html = tmp_path / "h.md", tmp_path / "h.html"
    assert run(["diff", BASELINE, new, "--markdown", out_md, "--html", out_html], capsys)[0] == 0
    html = out_html.read_text(encoding="utf-8")
    html5lib.HTMLParser(strict=True).parse(html)
    assert "<script>" not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    md = out_md.read_text(encoding="utf-8")
    assert "<script>" not in md and "&lt;script&gt;" in md
    row = next(line for line in md.splitlines() if "&lt;script&gt;" in line and line.startswith("| medium"))
    assert row.replace("\\|", "").count("|") == 10  # 9 cells: the token's pipe is escaped


def test_spanish_output(tmp_path, capsys):
    out_md, out_html = tmp_path / "es.md", tmp_path / "es.html"
    argv = ["diff", BASELINE, WAYWARD, "--lang", "es", "--markdown", out_md, "--html", out_html]
    assert run(argv, capsys)[0] == 0
    en, es = STRINGS["en"], STRINGS["es"]
    english_only = {
        v for k, v in en.items() if k != "title" and v != es[k] and len(v.split()) >= 2 and "{" not in v
    }
    for path in (out_md, out_html):
        text = path.read_text(encoding="utf-8")
        assert sorted(s for s in english_only if s in text) == [], path.name
        assert "Alertas nuevas" in text and "riesgo BAJO → ALTO" in text
    assert '<html lang="es">' in out_html.read_text(encoding="utf-8")


def _one_line_error(code, err, fragment):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("prompt-audit: error:") and fragment in lines[0], lines[0]


def test_bad_inputs_exit_2_and_write_nothing(tmp_path, capsys):
    junk = tmp_path / "junk.json"
    junk.write_text("not json", encoding="utf-8")
    other = tmp_path / "other.json"
    other.write_text('{"name": "something else"}', encoding="utf-8")
    summary_like = tmp_path / "summary.json"
    summary_like.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "adapters": []}), encoding="utf-8")
    truncated = _edited(tmp_path, WAYWARD, "truncated.json", lambda d: d["positions"][0].pop("risk"))
    v1 = _edited(tmp_path, WAYWARD, "v1.json", lambda d: d.update(schema_version="1"))
    later = str(int(SCHEMA_VERSION) + 1)
    v_next = _edited(tmp_path, BASELINE, "next.json", lambda d: d.update(schema_version=later))
    cases = [
        ([tmp_path / "missing.json", WAYWARD], "does not exist"),
        ([BASELINE, tmp_path], "is a directory"),
        ([junk, WAYWARD], "is not JSON"),
        ([BASELINE, other], "is not a prompt-audit result"),
        ([summary_like, WAYWARD], "is not a prompt-audit result (no prompt"),
        ([BASELINE, truncated], "is not a complete prompt-audit result (positions[0].risk: missing"),
        # another schema version is refused, named, with the fix: no reading across versions
        (
            [BASELINE, v1],
            f"v1.json has schema_version '1'; this prompt-audit reads '{SCHEMA_VERSION}': rerun the scan",
        ),
        (
            [v_next, WAYWARD],
            f"next.json has schema_version '{later}'; this prompt-audit reads '{SCHEMA_VERSION}': rerun",
        ),
    ]
    out_md, out_html = tmp_path / "out.md", tmp_path / "out.html"
    for paths, fragment in cases:
        code, out, err = run(["diff", *paths, "--markdown", out_md, "--html", out_html], capsys)
        _one_line_error(code, err, fragment)
        assert out == ""
        assert not out_md.exists() and not out_html.exists()

    # an existing output is kept unless --force (as scan and render do)
    out_md.write_text("keep me", encoding="utf-8")
    code, _, err = run(["diff", BASELINE, WAYWARD, "--markdown", out_md, "--html", out_html], capsys)
    _one_line_error(code, err, "already exists")
    assert out_md.read_text(encoding="utf-8") == "keep me" and not out_html.exists()
    code, _, err = run(["diff", BASELINE, WAYWARD, "--markdown", out_md, "--force"], capsys)
    assert code == 0 and out_md.read_text(encoding="utf-8").startswith("## prompt-audit diff")
    # an output that is one of the inputs, even with --force
    copy = _edited(tmp_path, WAYWARD, "copy.json", lambda d: None)
    code, _, err = run(["diff", BASELINE, copy, "--html", copy, "--force"], capsys)
    _one_line_error(code, err, "is one of the audits compared")
    assert json.loads(copy.read_text(encoding="utf-8"))["schema_version"] == SCHEMA_VERSION
    code, _, err = run(["diff", BASELINE, WAYWARD, "--fail-on-new", "never"], capsys)
    _one_line_error(code, err, "invalid choice")


# Runs a snippet in a fresh interpreter where importing torch, numpy, transformers or scipy fails.
NO_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "numpy", "transformers", "safetensors", "scipy"):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, _Block())
"""


def test_diff_imports_no_torch(tmp_path):
    out_md, out_html = tmp_path / "d.md", tmp_path / "d.html"
    code = textwrap.dedent(
        """
        from audit.cli import main
        code = main(sys.argv[1:])
        heavy = [m for m in ("torch", "numpy", "transformers", "scipy") if m in sys.modules]
        assert not heavy, heavy
        raise SystemExit(code)
        """
    )
    args = ["diff", str(BASELINE), str(WAYWARD), "--markdown", str(out_md), "--html", str(out_html)]
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH + code, *args, "--fail-on-new", "medium"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert out_md.exists() and out_html.exists()


def test_help_lists_diff(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "diff" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["diff", "--help"])
    out = capsys.readouterr().out
    for option in ("--html", "--markdown", "--fail-on-new", "--lang", "--force"):
        assert option in out


def test_different_methods_and_lengths(tmp_path):
    """NEW ran without 'unembed' and has one position fewer: the reading says so, the context names it."""

    def edit(data):
        data["positions"].pop()  # position 11 (':') is gone
        data["methods"].remove("unembed")
        data["projected_text"].pop("unembed")
        for pos in data["positions"]:
            pos["projections"].pop("unembed")
            pos["neighbors"].pop("unembed")
            pos["flags"] = [f for f in pos["flags"] if f["hit"]["method"] != "unembed"]

    new = _edited(tmp_path, WAYWARD, "fewer.json", edit)
    d = diff_audits(*read_pair(WAYWARD, new), old_label="a", new_label="b")
    assert {f.hit.method for f in d.disappeared} == {"unembed"} and not d.appeared
    readings = {r.method: r for r in d.readings}
    assert readings["unembed"].new_text is None
    assert (11, ":", None) in [(c.position, c.old, c.new) for c in readings["unembed"].tokens]
    assert [(c.position, c.old, c.new) for c in readings["l2"].tokens] == [(11, ":", None)]
    assert [c.field for c in d.context] == ["ctx_methods"]
    md = render_diff_markdown(d)
    assert "| unembed |" in md and "(not run)" in md and "11: : → (absent)" in md
