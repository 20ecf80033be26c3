"""`scan --junit`: the file validates against the common JUnit XML schema (tests/data/junit-10.xsd), reads
back with xml.etree, and its failures are exactly the reasons for `--fail-on`'s exit code."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import xmlschema

from audit.cli import main
from audit.records import Level
from audit.report.junit import render_junit
from audit.report.load import read_result

SCHEMA = xmlschema.XMLSchema(str(Path(__file__).resolve().parent / "data" / "junit-10.xsd"))
SAMPLE = Path(__file__).resolve().parent.parent / "reports" / "sample"
BASELINE = SAMPLE / "hiring-es-baseline.json"
WAYWARD = SAMPLE / "hiring-es-wayward.json"


def _valid(xml: str) -> ET.Element:
    """Validates against the schema and parses back."""
    SCHEMA.validate(xml)
    return ET.fromstring(xml.encode("utf-8"))


def _cases(root: ET.Element) -> dict[tuple[str, str], ET.Element]:
    return {(s.get("name"), c.get("name")): c for s in root.iter("testsuite") for c in s.iter("testcase")}


def test_schema_is_strict_enough_to_catch_mistakes():
    good = '<testsuites><testsuite name="a" tests="1"><testcase name="x"/></testsuite></testsuites>'
    SCHEMA.validate(good)
    for bad in (
        '<testsuites><testsuite tests="1"><testcase name="x"/></testsuite></testsuites>',  # no name
        '<testsuites><testsuite name="a" tests="1"><testcase/></testsuite></testsuites>',  # case name
        '<testsuites><testsuite name="a" tests="1"><testcase name="x" verdict="y"/></testsuite></testsuites>',
        '<testsuites><testsuite name="a" tests="1"><testcase name="x"><failure/><error/></testcase>'
        "</testsuite></testsuites>",  # error after failure
    ):
        with pytest.raises(xmlschema.XMLSchemaValidationError):
            SCHEMA.validate(bad)


@pytest.fixture()
def tiny_prompt(tmp_path, tiny_model_dir):
    """Rows 0 and 1 of the tiny model's embeddings: reads 'buenos blancos' ('blancos' is flagged)."""
    from safetensors.torch import load_file

    emb = load_file(str(tiny_model_dir / "model.safetensors"))["embeddings.word_embeddings.weight"]
    path = tmp_path / "prompt.npy"
    np.save(path, emb[[0, 1]].numpy())
    return path


def test_scan_writes_junit(tmp_path, tiny_model_dir, tiny_prompt, capsys):
    out_xml, out_json = tmp_path / "junit.xml", tmp_path / "audit.json"
    base = ["scan", str(tiny_prompt), "--model", str(tiny_model_dir), "--quiet"]
    code = main(base + ["--junit", str(out_xml), "--json", str(out_json), "--fail-on", "medium"])
    out, err = capsys.readouterr()
    assert code == 1, err  # 'blancos' is position 1's top-1 reading
    assert f"  JUnit: {out_xml}" in out
    audit = json.loads(out_json.read_text(encoding="utf-8"))
    root = _valid(out_xml.read_text(encoding="utf-8"))
    assert root.tag == "testsuites" and (root.get("tests"), root.get("failures")) == ("1", "1")
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "prompt.npy"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["risk"] == audit["summary"]["risk"] and props["fail_on"] == "medium"
    assert props["prompt_sha256"] == audit["prompt"]["sha256"]
    (case,) = suite.findall("testcase")  # no behavioural check: geometry only
    assert case.get("name") == "geometry" and case.get("classname") == "prompt-audit.prompt.npy"
    failure = case.find("failure")
    assert failure is not None and failure.get("message") == audit["summary"]["verdict"]["en"]
    assert "position 1:" in failure.text and "blancos" in failure.text

    # --fail-on never: exit 0, the case passes and carries the verdict
    again = tmp_path / "pass.xml"
    assert main(base + ["--junit", str(again)]) == 0
    case = _valid(again.read_text(encoding="utf-8")).find("testsuite/testcase")
    assert case.find("failure") is None and case.find("system-out").text == audit["summary"]["verdict"]["en"]

    # an existing file is kept without --force
    again.write_text("keep me", encoding="utf-8")
    assert main(base + ["--junit", str(again)]) == 2
    assert again.read_text(encoding="utf-8") == "keep me"
    capsys.readouterr()


@pytest.mark.parametrize("fail_on", ["never", "low", "medium", "high"])
def test_failures_match_the_exit_code_with_behaviour(fail_on):
    """On the demo audits (both ran the behavioural check): a geometry and a behaviour case each; some case
    fails exactly when the overall risk is at or above --fail-on."""
    audits = [("baseline", read_result(BASELINE)), ("wayward", read_result(WAYWARD))]
    root = _valid(render_junit(audits, fail_on))
    cases = _cases(root)
    assert set(cases) == {(n, c) for n, _ in audits for c in ("geometry", "behaviour")}
    assert root.get("tests") == "4"
    for name, result in audits:
        failed = [c for (n, c), case in cases.items() if n == name and case.find("failure") is not None]
        exits_1 = fail_on != "never" and result.summary.risk >= Level.parse(fail_on)
        assert bool(failed) == exits_1, (name, failed)
    # the wayward prompt's position 7 is HIGH; its behaviour shows no gap (behavioural risk LOW)
    if fail_on != "never":
        failure = cases["wayward", "geometry"].find("failure")
        assert failure.get("message") == read_result(WAYWARD).summary.verdict["en"]
        assert failure.get("type") == "risk_high" and "position 7: risk high" in failure.text
        # LOW is at or above --fail-on low: every check fails then, as the exit code does
        assert (cases["wayward", "behaviour"].find("failure") is not None) == (fail_on == "low")


def test_behavioural_gap_fails_its_case(tmp_path):
    data = json.loads(BASELINE.read_text(encoding="utf-8"))
    data["behaviour"]["gaps"] = [
        {
            "attribute": "origin",
            "group": "maghrebi",
            "reference_group": "spanish",
            "impact_ratio": 0.5,
            "q_value": 0.001,
            "in_base_model": True,
        }
    ]
    data["behaviour"]["risk"] = "high"
    data["behaviour"]["verdict"]["es"] = "Comportamiento: brecha <origen> & más."
    path = tmp_path / "gap.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    result = read_result(path)
    root = _valid(render_junit([("gap", result)], "high", "es"))
    cases = _cases(root)
    assert cases["gap", "geometry"].find("failure") is None
    failure = cases["gap", "behaviour"].find("failure")
    assert failure.get("message") == "Comportamiento: brecha <origen> & más."
    assert "origin: group maghrebi vs spanish: impact ratio 0.500, q 0.001; also without the prompt" in (
        failure.text
    )
    assert root.get("failures") == "1"


def test_hostile_tokens_and_control_characters_stay_valid_xml(tmp_path):
    hostile = "\x1b[31m<b>&\"'\x00\ufffe]]>"
    data = json.loads(WAYWARD.read_text(encoding="utf-8"))
    for flag in next(p for p in data["positions"] if p["index"] == 7)["flags"]:
        flag["hit"]["token"] = hostile
    data["summary"]["verdict"]["en"] += " </failure>\x07"
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    result = read_result(path)
    xml = render_junit([("wayward<&>", result)], "low")
    root = _valid(xml)
    failure = _cases(root)["wayward<&>", "geometry"].find("failure")
    assert failure.get("message").endswith(" </failure>\\x07")
    assert "\\x1b[31m<b>&\"'\\x00\\ufffe]]>" in failure.text


def test_errors_are_error_cases():
    xml = render_junit([("ok", read_result(BASELINE))], "high", errors=[("broken", "broken.npy is not 2-D")])
    root = _valid(xml)
    error = _cases(root)["broken", "audit"].find("error")
    assert error.get("message") == "broken.npy is not 2-D"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "0", "1")
    assert render_junit([("ok", read_result(BASELINE))], "high") == render_junit(
        [("ok", read_result(BASELINE))], "high"
    )  # deterministic: no times, no host names
