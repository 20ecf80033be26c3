"""The sequential stop (--sequential): the plan's looks and spending, the placebo of the stopping rule,
and the same verdict as the full design on planted, null and borderline cases (synthetic log-odds
through the stage's own code), then end to end on a tiny causal LM."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from audit.behaviour.assemble import probes
from audit.behaviour.assess import Reported, assess, sequential
from audit.behaviour.sequential import can_test, looks, restricted
from audit.behaviour.stats.permutation import _rng, name_permutation_test
from audit.behaviour.stats.placebo import placebo
from audit.behaviour.suite import load_suite
from audit.cli import main
from audit.config import AuditConfig
from audit.records import Level
from audit.report.load import read_result
from tests.helpers import write_suite

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "audit" / "report" / "schema.json").read_text())
NAMES = {g: [f"{g}{i}" for i in range(12)] for g in ("a", "b")}
TEMPLATES = [(f"cv {k} of {{name}} :", "positive" if k % 2 == 0 else "negative") for k in range(16)]


def suite_file(path: Path, templates=TEMPLATES, names=NAMES) -> Path:
    return write_suite(path, templates, names, suite_id="seq")


def _normal(key: str) -> float:
    """A standard normal drawn from a text (deterministic, independent across texts)."""
    return float(np.random.default_rng(zlib.crc32(key.encode())).standard_normal())


def fake_run(probe, shift_b: float):
    """A run function like the stage's: log-odds of the texts ``rows`` from their template's label (+3
    qualifying, -3 not), a per-name effect (sd 0.5), per-text noise (sd 1) and ``shift_b`` for group b."""
    name_of = {}
    for r, row in zip(probe.renderings, probe.index):
        name_of[row] = r.value
    calls = []

    def lo(row: int) -> float:
        text, name = probe.texts[row], name_of[row]
        base = 3.0 if " of " in text and int(text.split()[1]) % 2 == 0 else -3.0
        return base + 0.5 * _normal(name) + _normal(text) + (shift_b if name.startswith("b") else 0.0)

    def run(label, vectors, rows=None):
        rows = np.arange(len(probe.texts)) if rows is None else np.asarray(rows)
        calls.append(len(rows))
        return np.array([lo(int(r)) for r in rows])

    run.calls = calls
    return run


PROMPTS = {"soft_prompt": (None, None), "no_prompt": (None, None)}
UNITS = {"soft_prompt": ("soft_prompt", None), "no_prompt": ("no_prompt", None)}


def both_designs(tmp_path, shift_b: float):
    """(full-design risk, sequential Reported, texts scored by the sequential run, suite texts)."""
    suite = load_suite(str(suite_file(tmp_path / "seq.toml")))
    probe = probes(suite)
    config = AuditConfig(seed=0, sequential=True)
    full_run = fake_run(probe, shift_b)
    full = assess(probe, {n: full_run(n, None) for n in UNITS}, PROMPTS, config, config.alpha)
    seq_run = fake_run(probe, shift_b)
    look = sequential(suite, probe, UNITS, seq_run, PROMPTS, config)
    return full[6], look, sum(seq_run.calls) // len(UNITS), len(probe.texts)


def test_the_plan_is_stratified_seeded_nested_and_spends_exactly_alpha(tmp_path):
    suite = load_suite(str(suite_file(tmp_path / "seq.toml")))
    plan = looks(suite, 0.05, seed=0)
    assert [len(p.templates) for p in plan] == [4, 8, 16]  # ceil(1/4 * 8) of each label, then 4 and 8
    assert [p.alpha for p in plan] == pytest.approx([0.0025, 0.0025, 0.045])
    assert sum(p.alpha for p in plan) == pytest.approx(0.05, abs=1e-15)
    labels = {t.index: t.label for t in suite.templates}
    for p in plan:
        assert sum(labels[i] == "positive" for i in p.templates) == len(p.templates) // 2
        assert can_test(suite, p)
    assert set(plan[0].templates) < set(plan[1].templates) < set(plan[2].templates)
    assert looks(suite, 0.05, seed=0) == plan
    assert looks(suite, 0.05, seed=1)[0].templates != plan[0].templates
    # A look that adds no template is merged into the one before: one look at the whole alpha.
    tiny = load_suite(str(suite_file(tmp_path / "two.toml", TEMPLATES[:2])))
    (only,) = looks(tiny, 0.05, seed=0)
    assert only.templates == (0, 1) and only.alpha == pytest.approx(0.05)


def test_a_look_without_a_qualifying_template_is_not_testable(tmp_path):
    suite = load_suite(str(suite_file(tmp_path / "seq.toml")))
    negatives = tuple(t.index for t in suite.templates if t.label == "negative")
    plan = looks(suite, 0.05, seed=0)
    assert not can_test(suite, type(plan[0])(negatives, 0.01))
    assert restricted(suite, negatives).n_templates == 8


def test_the_sequential_placebo_counts_a_split_once_when_any_look_rejects():
    """By hand: the same seeded split at every look, a false alarm when some look has p < its level."""
    rng = np.random.default_rng(5)
    looks_means = [rng.normal(size=(2, 10)), rng.normal(size=(2, 8))]
    levels = (0.2, 0.3)
    got = placebo(looks_means, alpha=levels, seed=(7,), n_splits=20, n_perm=99)
    hits = 0
    for k, values in enumerate(looks_means):
        values = values[:, np.lexsort(values)]
        r = _rng((7, k))
        for split in range(20):
            order = r.permutation(values.shape[1])
            h = values.shape[1] // 2
            ps = [
                name_permutation_test(v[order[:h]], v[order[h:]], seed=(7, k, split, j), n_perm=99).p_value
                for j, v in enumerate(values)
            ]
            hits += ps[0] < 0.2 or ps[1] < 0.3
    assert got.n_tests == 40 and got.n_false_alarms == hits
    assert got.nominal == pytest.approx(0.5)
    assert got.mc_error == pytest.approx(math.sqrt(0.5 * 0.5 / 40))
    # One look: the plain placebo (the full design's figures are unchanged).
    one = placebo([looks_means[0][1]], alpha=0.05, seed=(7,), n_splits=20, n_perm=99)
    again = placebo([looks_means[0][1:]], alpha=(0.05,), seed=(7,), n_splits=20, n_perm=99)
    assert one == again


def test_with_stopping_on_the_placebo_false_alarm_rate_stays_within_nominal():
    """Exchangeable names (no gap anywhere), the plan's three looks and levels: the stopping rule's own
    false-alarm rate is within alpha plus twice its Monte Carlo error."""
    rng = np.random.default_rng(11)
    n_names, n_templates = 24, 8
    means = []
    for _ in range(6):  # six groups
        per_template = rng.normal(size=(n_names, n_templates)) + rng.normal(scale=0.5, size=(n_names, 1))
        means.append(np.stack([per_template[:, :k].mean(axis=1) for k in (2, 4, 8)]))
    got = placebo(means, alpha=(0.0025, 0.0025, 0.045), seed=(0, 0x51AC), n_splits=100, n_perm=999)
    assert got.n_tests == 600 and got.nominal == pytest.approx(0.05)
    assert got.rate <= 0.05 + 2 * got.mc_error and not got.anticonservative


@pytest.mark.parametrize(
    ("shift_b", "risk", "early"),
    [
        (-8.0, Level.HIGH, True),
        (0.0, Level.LOW, True),
        (-2.2, Level.MEDIUM, False),
        (-2.4, Level.HIGH, False),
    ],
    ids=["planted-gap", "no-gap", "ratio-near-threshold", "gap-near-threshold"],
)
def test_the_sequential_verdict_is_the_full_designs(tmp_path, shift_b, risk, early):
    full_risk, look, scored, n_texts = both_designs(tmp_path, shift_b)
    assert full_risk == risk
    assert look.assessed[6] == risk
    record = look.record
    assert record.stopped_early is early
    assert record.looks[-1].risk == risk and record.alpha_spent <= 0.05 + 1e-12
    assert record.n_renderings_full == 2 * 12 * 16
    assert record.looks[-1].n_renderings == len(look.probe.renderings)
    # every text is scored at most once, and a stop saves the rest
    assert scored == len(look.rows) and (scored < n_texts) is early


@pytest.fixture(scope="module")
def world(tiny_lm_world):
    return tiny_lm_world


def test_scan_sequential_records_where_it_stopped_and_reruns_byte_identical(world, tmp_path, capsys):
    model, prompt, suite = world
    outs = []
    for k in range(2):
        out = tmp_path / f"r{k}.json"
        argv = ["scan", prompt, "--model", model, "--behaviour", suite, "--sequential", "--json", out]
        assert main([str(a) for a in [*argv, "--quiet"]]) == 0, capsys.readouterr().err
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    data = json.loads(outs[0])
    jsonschema.validate(data, SCHEMA)
    seq = data["behaviour"]["sequential"]
    assert seq["n_looks_planned"] >= 1 and seq["n_templates_full"] == 8
    assert data["behaviour"]["n_renderings"] == seq["looks"][-1]["n_renderings"]
    assert data["behaviour"]["alpha"] == 0.05 and seq["alpha_spent"] <= 0.05
    # 4 names per group cannot reach p < 0.0025: no early stop, the whole suite at the last look's level
    assert len(seq["looks"]) == seq["n_looks_planned"]
    assert read_result(tmp_path / "r0.json").behaviour.sequential.looks[-1].alpha == pytest.approx(0.045)


def test_sequential_without_behaviour_exits_2(world, tmp_path, capsys):
    model, prompt, _ = world
    out = tmp_path / "r.json"
    code = main(
        [str(a) for a in ["scan", prompt, "--model", model, "--sequential", "--json", out, "--quiet"]]
    )
    assert code == 2 and not out.exists()
    assert "--sequential applies to the behavioural check" in capsys.readouterr().err


def test_the_full_design_is_unchanged_by_the_plan(tmp_path):
    """Without --sequential the report carries no plan and is computed on the whole suite."""
    suite = load_suite(str(suite_file(tmp_path / "seq.toml")))
    probe = probes(suite)
    config = AuditConfig(seed=0)
    run = fake_run(probe, 0.0)
    log_odds = {n: run(n, None) for n in UNITS}
    look = Reported(probe, np.arange(len(probe.texts)), log_odds, config.alpha, None, None, ())
    assert look.record is None and len(look.probe.renderings) == 2 * 12 * 16


def test_the_report_says_where_it_stopped_in_both_languages():
    from audit.report.html import render_html
    from audit.report.markdown import render_markdown
    from audit.verdict.behaviour import confidence_level
    from tests.test_json_contract import _results

    result = _results()["sequential"]
    for lang, words in (
        ("en", "stopped early at look 1 of 3"),
        ("es", "parada anticipada en la revisión 1 de 3"),
    ):
        html, md = render_html(result, lang), render_markdown(result, lang)
        assert words in html and words in md
        assert "1056" in md and "4224" in md
    assert (confidence_level(0.05), confidence_level(0.0025), confidence_level(0.045)) == (
        "95%",
        "99.75%",
        "95.5%",
    )


def test_demo_sequential_without_the_behavioural_check_exits_2(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--sequential", "--no-behaviour", "--out", str(out), "--quiet"]) == 2
    assert not out.exists() and "--sequential applies to the behavioural check" in capsys.readouterr().err
