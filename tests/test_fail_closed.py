"""Fail closed: an option that would make the audit check nothing exits 2 with one line and writes
nothing, instead of reporting LOW."""

from __future__ import annotations

import json

import pytest

from audit.cli import main
from tests.helpers import assert_one_line_error


@pytest.mark.parametrize(
    ("lang", "fragment"),
    [
        ("fr", "--lang fr: no wordlists in that language"),
        ("spanish", "--lang spanish: no wordlists"),
        ("es,eng", "--lang eng: no wordlists"),
        (",", "--lang names no language"),
    ],
)
def test_unknown_or_empty_language_exits_2(tmp_path, tiny_model_dir, tiny_prompt, capsys, lang, fragment):  # noqa: F811
    out = tmp_path / "r.json"
    code = main(
        ["scan", str(tiny_prompt), "--model", str(tiny_model_dir), "--lang", lang, "--json", str(out)]
    )
    err = capsys.readouterr().err
    assert_one_line_error(code, err, fragment)
    assert "choose from en, es" in err or "names no language" in err
    assert not out.exists()


def test_language_codes_are_case_insensitive(tmp_path, tiny_model_dir, tiny_prompt, capsys):  # noqa: F811
    out = tmp_path / "r.json"
    code = main(
        ["scan", str(tiny_prompt), "--model", str(tiny_model_dir), "--lang", "ES", "--json", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    assert {w["language"] for w in data["wordlists"]} == {"es"}
    assert data["positions"][1]["flags"]  # 'blancos' is still found


def test_wordlists_list_of_an_unknown_language_exits_2(capsys):
    assert_one_line_error(main(["wordlists", "list", "--lang", "fr"]), capsys.readouterr().err, "--lang fr")


def test_allowlist_that_names_no_term_exits_2(tmp_path, tiny_model_dir, tiny_prompt, capsys):  # noqa: F811
    allow = tmp_path / "allow.toml"
    allow.write_text('[[allow]]\nform = "blancoss"\nlanguage = "es"\nreason = "typo"\n', encoding="utf-8")
    out = tmp_path / "r.json"
    argv = [
        "scan",
        str(tiny_prompt),
        "--model",
        str(tiny_model_dir),
        "--allowlist",
        str(allow),
        "--json",
        str(out),
    ]
    assert_one_line_error(main(argv), capsys.readouterr().err, "allow entry 'blancoss' (es) names no term")
    assert not out.exists()
    allow.write_text('[[allow]]\nform = "blancos"\nlanguage = "es"\nreason = "colour"\n', encoding="utf-8")
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert data["summary"]["n_suppressed"] >= 1


@pytest.mark.slow
def test_wayward_demo_adapter_is_never_low_under_valid_looking_options():
    """The wayward demo adapter (position 7 near 'blancos') is never LOW whatever valid spelling of the
    languages, whichever single method or neighbour count >= 3 is chosen. (Options that leave the term
    outside what is checked, an allow-list naming it, --lang en alone, or one method at --top-k 1 that
    reads 'buenos', narrow the check: the report then says 'LOW for these checks' and lists them.)"""
    from audit.config import AuditConfig
    from audit.demo.run import DEMO_MODEL, demo_adapters
    from audit.engine import audit_one
    from audit.geometry.methods import METHODS

    wayward = next(a for a in demo_adapters() if a.name == "hiring-es-wayward")
    spellings = [("es",), ("ES",), ("Es",), ("es", "en"), ("en", "es"), ("EN", "es")]
    combos = [{"languages": languages} for languages in spellings]
    combos += [{"methods": (m,)} for m in METHODS]
    combos += [{"top_k": k} for k in (3, 5, 50)]
    for options in combos:
        config = AuditConfig(model=DEMO_MODEL, progress=False, **options)
        assert audit_one(wayward.path, config).summary.risk.label != "low", options
