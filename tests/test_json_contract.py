"""The JSON contract written once (docs/json.md): the generic codec round-trips every record, the schema
and the records agree field for field (and the check fails when they do not), another schema version is
refused with one line, floats and bytes are canonical, and the report package imports records only."""

from __future__ import annotations

import ast
import dataclasses
import html
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import jsonschema
import pytest

from audit.cli import main
from audit.records import (
    AblationGroup,
    AuditResult,
    FaithfulSearch,
    FoundReading,
    Gap,
    Level,
    Neighbor,
    Reading,
    ReadingChange,
    ReadingFlag,
    SearchSwap,
    Sequential,
    SequentialLook,
)
from audit.report import codec, strings_en, strings_es
from audit.report.batch import (
    BatchSummary,
    BehaviourEntry,
    FlaggedPosition,
    Row,
    RunInfo,
    render_summary,
    summary_schema,
)
from audit.report.codec import ContractError, canonical, decode, encode
from audit.report.contract import (
    AUDIT_SCHEMA,
    SCHEMA_VERSION,
    SUMMARY_SCHEMA,
    audit_schema,
    mismatches,
    reachable,
    schema_text,
)
from audit.report.json_out import render_json
from audit.report.load import read_result, result_from_dict
from tests.helpers import CALIBRATION, bias_audit_tables
from tests.helpers import with_behaviour_result as _with_behaviour
from tests.test_behaviour_verdict import _behaviour as behaviour_case
from tests.test_behaviour_verdict import ablation, group
from tests.test_report import MIX, MIX_LOW, WORDS, _hostile_result, _result

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "reports" / "sample"
SAMPLE_FAITHFUL = ROOT / "reports" / "sample-faithful"  # the demo with --faithful-reading
SCHEMA = json.loads(AUDIT_SCHEMA.read_text(encoding="utf-8"))
GAP = Gap("origin", "maghreb", "spain", 0.4, 0.001, False)


def _results() -> dict[str, AuditResult]:
    """Audits built by the fast tests: geometry only, hostile tokens, LOW, and with behavioural checks
    (a gap, an active flag, an unfaithful reading, an inconclusive suite)."""
    base = _result(WORDS, MIX)
    reading = Reading(("centered", "whitened"), "... blancos ...", 0.6, 0.2, 0.7, False, ())
    moved = AblationGroup("maghreb", False, 0.5, -0.25, 0.6, -0.3, -1.2, 0.004)
    active = replace(ablation(1, True), groups=(moved,))
    return {
        "geometry": base,
        "hostile": _hostile_result(),
        "low": _result(WORDS, MIX_LOW),
        "gap": _with_behaviour(base, behaviour_case(group(0.4, 0.001), readings=(reading,))),
        "active": _with_behaviour(base, behaviour_case(group(1.0, 0.9), ablations=(active,), positions=(1,))),
        "inconclusive": _with_behaviour(base, behaviour_case(group(0.5, 0.3, cannot=True))),
        "evidence": _with_behaviour(
            base,
            replace(
                behaviour_case(group(0.62, 0.4, bound=0.18)),
                calibration=CALIBRATION,
                bias_audit=bias_audit_tables(),
            ),
        ),
        "sequential": _with_behaviour(
            base,
            replace(
                behaviour_case(group(1.0, 0.9, bound=0.93)),
                sequential=Sequential(
                    "a plan",
                    (SequentialLook(4, 1056, 0.0025, True, Level.LOW),),
                    3,
                    0.0025,
                    4224,
                    16,
                ),
            ),
        ),
        "found": _with_behaviour(
            base, replace(behaviour_case(group(0.4, 0.001), readings=(reading,)), found=FOUND)
        ),
    }


FOUND = FoundReading(
    text=" Clasifica <b>españoles</b>",
    token_ids=(5, 9),
    tokens=(" Clasifica", " <b>españoles</b>"),
    agreement=0.91,
    kl=0.12,
    accuracy=0.7,
    faithful=True,
    attributes=(),
    nearest_methods=("l2",),
    changes=(ReadingChange(1, " buenos", " <b>españoles</b>"),),
    flags=(
        ReadingFlag(
            1,
            " españoles",
            "es.nationality_origin.espanol",
            "español",
            "nationality_origin",
            "es",
            True,
            None,
        ),
    ),
    search=FaithfulSearch(
        "a search",
        ("l2",),
        True,
        6.0,
        None,
        "budget",
        286,
        48,
        130,
        13,
        6,
        13396,
        5.8549,
        (SearchSwap(1, " buenos", " <b>españoles</b>", 0.9, 0.2),),
    ),
)


@pytest.fixture(scope="module")
def results() -> dict[str, AuditResult]:
    return _results()


def _records(value, seen: set[type]):
    """Every record nested in ``value`` (depth first)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        seen.add(type(value))
        yield value
        for f in dataclasses.fields(value):
            yield from _records(getattr(value, f.name), seen)
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _records(v, seen)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _records(v, seen)


def test_load_of_dump_is_the_record_for_every_record(results):
    seen: set[type] = set()
    for name, result in results.items():
        saved = canonical(result)
        assert result_from_dict(json.loads(render_json(result))) == saved, name
        for record in _records(saved, seen):  # each nested record on its own too
            assert decode(type(record), encode(record)) == record, (name, type(record).__name__)
    # every record type an audit can hold was exercised
    assert {cls for cls in reachable(AuditResult).values()} <= seen | {type(None)}, sorted(
        c.__name__ for c in set(reachable(AuditResult).values()) - seen
    )


@pytest.mark.parametrize("folder", [SAMPLE, SAMPLE_FAITHFUL], ids=["sample", "sample-faithful"])
def test_the_committed_sample_reads_back_to_the_same_bytes(folder):
    """reports/sample*/*.json (`prompt-audit demo` regenerates them from the models)."""
    paths = sorted(folder.glob("*.json"))
    assert len(paths) == 3
    for path in paths:
        text = path.read_text(encoding="utf-8")
        result = read_result(path)
        assert render_json(result) == text, path.name
        jsonschema.validate(json.loads(text), SCHEMA)


def test_the_faithful_sample_reports_a_found_reading_no_less_faithful_than_every_projection():
    """reports/sample-faithful: the search's contract on the real demo adapters (whatever it found)."""
    for path in sorted(SAMPLE_FAITHFUL.glob("*.json")):
        result = read_result(path)
        b = result.behaviour
        found, search = b.found, b.found.search
        best = max(b.readings, key=lambda r: (r.agreement, -r.kl))
        assert (found.agreement, -found.kl) >= (best.agreement, -best.kl), path.name
        assert search.improved == ((found.agreement, -found.kl) > (best.agreement, -best.kl)), path.name
        assert search.suite_runs <= search.budget_runs and search.max_seconds is None
        assert len(found.token_ids) == len(found.tokens) == len(result.positions)
        page = path.with_suffix(".html").read_text(encoding="utf-8")
        assert "The text that behaves most like the prompt" in page
        assert html.escape(found.tokens[-1]) in page


def test_identical_records_give_identical_bytes_and_canonical_is_a_fixed_point(results):
    result = results["gap"]
    text = render_json(result)
    assert text == render_json(canonical(result)) == render_json(canonical(canonical(result)))
    data = json.loads(text)
    assert data["schema_version"] == SCHEMA_VERSION == "5"
    assert list(data) == sorted(data)
    assert set(data) == {"schema_version"} | {f.name for f in dataclasses.fields(AuditResult)}


def test_floats_are_rounded_once_without_negative_zero_or_nan():
    assert codec.number(-0.0000001) == 0.0 and math.copysign(1, codec.number(-0.0000001)) == 1
    assert codec.number(0.1234567) == 0.123457
    assert codec.number(math.nan) is None and codec.number(math.inf) is None and codec.number(None) is None
    nb = Neighbor(1, 5, "x", -1e-9)
    assert encode(nb) == {"rank": 1, "token_id": 5, "token": "x", "score": 0.0}
    assert math.isnan(decode(Neighbor, {**encode(nb), "score": None}).score)
    assert encode(Neighbor(1, 5, "x", math.inf))["score"] is None
    assert encode(Level.MEDIUM) == "medium" and decode(Level, "high") is Level.HIGH


def test_a_value_that_does_not_fit_names_its_field():
    data = encode(Neighbor(1, 5, "x", 0.5))
    with pytest.raises(ContractError, match=r"token_id: expected int, got a string"):
        decode(Neighbor, {**data, "token_id": "5"})
    with pytest.raises(ContractError, match=r"rank: expected int, got a boolean"):
        decode(Neighbor, {**data, "rank": True})
    with pytest.raises(ContractError, match=r"unknown field\(s\) extra in Neighbor"):
        decode(Neighbor, {**data, "extra": 1})
    with pytest.raises(ContractError, match=r"score: missing field of Neighbor"):
        decode(Neighbor, {k: v for k, v in data.items() if k != "score"})
    with pytest.raises(ContractError, match=r"risk: expected one of low, medium, high, got 'severe'"):
        decode(FlaggedPosition, {"index": 1, "risk": "severe"})
    with pytest.raises(ContractError, match=r"gaps\[0\]\.q_value: expected a number, got a string"):
        decode(
            BehaviourEntry,
            {
                **encode(BehaviourEntry("s", "1", Level.LOW, None, (GAP,))),
                "gaps": [{**encode(GAP), "q_value": "0.01"}],
            },
        )


# ---------------------------------------------------------------------------------------------
# The schema is the records'


def test_committed_schemas_are_the_ones_the_records_generate():
    """Regenerate with `python -m audit.report.contract` after a field change, and commit both files."""
    assert AUDIT_SCHEMA.read_text(encoding="utf-8") == schema_text(audit_schema())
    assert SUMMARY_SCHEMA.read_text(encoding="utf-8") == schema_text(summary_schema())
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_schema_and_records_agree_field_for_field():
    assert mismatches(SCHEMA, reachable(AuditResult)) == []
    summary = json.loads(SUMMARY_SCHEMA.read_text(encoding="utf-8"))
    assert mismatches(summary, reachable(BatchSummary)) == []


def test_the_check_fails_when_a_record_gains_a_field_the_schema_lacks():
    """Shown here: a Neighbor with one more field, and a schema that lost one, are both reported."""

    @dataclass(frozen=True)
    class NeighborPlus(Neighbor):
        distance: float = 0.0

    records = {**reachable(AuditResult), "Neighbor": NeighborPlus}
    assert mismatches(SCHEMA, records) == [
        "Neighbor.distance: a field of NeighborPlus missing from the schema"
    ]
    fewer = json.loads(json.dumps(SCHEMA))
    del fewer["$defs"]["Gap"]["properties"]["q_value"]
    fewer["properties"]["legacy"] = {"type": "string"}
    assert mismatches(fewer, reachable(AuditResult)) == [
        "the document.legacy: in the schema, not a field of AuditResult",
        "Gap.q_value: a field of Gap missing from the schema",
    ]
    # ... and the generated schema follows the record at once
    defs: dict = {}
    from audit.report.contract import record_schema

    assert "distance" in record_schema(NeighborPlus, defs)["properties"]


def test_rendered_json_validates_against_the_schema(results):
    for result in results.values():
        jsonschema.validate(json.loads(render_json(result)), SCHEMA)
    broken = json.loads(render_json(results["geometry"]))
    broken["positions"][0]["flags"] = [{"method": "l2"}]  # the schema-1 flat flag
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


def test_batch_summary_is_written_by_the_codec(results):
    gap = results["gap"]
    rows = [
        Row("a", "a.npy", gap, None, {"json": "a.json"}),
        Row("b", "b.npy", None, "b.npy is not 2-D", {}),
    ]
    run = RunInfo("medium", ("l2",), 3, ("es", "en"), 0, None, "hiring-es", (), 1)
    data = json.loads(render_summary(rows, run))
    jsonschema.validate(data, json.loads(SUMMARY_SCHEMA.read_text(encoding="utf-8")))
    entry = data["adapters"][0]
    assert entry["behaviour"]["gaps"] == [encode(g) for g in gap.behaviour.gaps]  # the Gap record itself
    assert entry["risk"] == "high" and data["adapters"][1]["status"] == "error" and data["risk"] == "high"
    assert decode(BatchSummary, {k: v for k, v in data.items() if k != "schema_version"}).counts.errors == 1


# ---------------------------------------------------------------------------------------------
# Versioning, derived fields, strings, imports


def test_another_schema_version_exits_2_naming_it(tmp_path, capsys, results):
    data = json.loads(render_json(results["geometry"]))
    old = tmp_path / "old.json"
    old.write_text(json.dumps({**data, "schema_version": "1"}), encoding="utf-8")
    assert main(["render", str(old), "--html", str(tmp_path / "x.html")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert (
        len(lines) == 1 and f"has schema_version '1'; this prompt-audit reads '{SCHEMA_VERSION}'" in lines[0]
    )
    assert "rerun the scan" in lines[0] and not (tmp_path / "x.html").exists()


def test_derived_values_are_record_fields_computed_before_rendering(results):
    geometry, gap = results["geometry"], results["gap"]
    assert geometry.checked.top_k == 3 and geometry.checked.suite is None
    assert geometry.checked.n_terms == sum(sum(v.values()) for v in geometry.checked.categories.values())
    assert [r.clause for r in geometry.summary.reasons] and geometry.summary.reasons[0].flag is not None
    assert gap.checked.suite.id == "hiring-es" and gap.summary.reasons[0].gap == gap.behaviour.gaps[0]
    # properties derived from other fields are not written
    flag = json.loads(render_json(geometry))["positions"][1]["flags"][0]
    assert set(flag) == {"hit", "term", "evidence", "severity"} and "is_top1" not in flag["hit"]


def test_every_language_has_every_string():
    for section in ("REPORT", "DIFF", "BATCH"):
        assert getattr(strings_en, section).keys() == getattr(strings_es, section).keys(), section


FORBIDDEN = ("audit.verdict", "audit.inputs", "audit.geometry", "audit.behaviour", "torch", "numpy")


def test_the_report_package_imports_records_errors_and_itself_only():
    for path in sorted((ROOT / "audit" / "report").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(FORBIDDEN), (path.name, name)
                if name.startswith("audit"):
                    assert name in ("audit", "audit.records", "audit.errors") or name.startswith(
                        "audit.report"
                    ), (path.name, name)


def test_no_report_module_is_over_400_lines():
    sizes = {
        p.name: len(p.read_text(encoding="utf-8").splitlines())
        for p in (ROOT / "audit" / "report").glob("*.py")
    }
    assert max(sizes.values()) <= 400, sizes


def test_replace_keeps_the_contract(results):
    """A record edited after the verdict stage (as tests do) still writes valid JSON."""
    edited = replace(results["geometry"], notes=("a note",))
    jsonschema.validate(json.loads(render_json(edited)), SCHEMA)


def test_the_found_reading_is_printed_escaped_in_both_languages(results):
    from audit.report.writers import AUDIT_FORMATS

    result = results["found"]
    for lang, title in (("en", "The text that behaves most like the prompt"), ("es", "El texto que más se")):
        html = AUDIT_FORMATS["html"].render(result, lang)
        md = AUDIT_FORMATS["markdown"].render(result, lang)
        assert title in html and title in md
        assert "<b>españoles" not in html and "&lt;b&gt;españoles" in html
        assert "<b>" not in md and "&lt;b&gt;españoles" in md
        assert "español" in html and "nationality_origin" in html
