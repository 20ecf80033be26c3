"""The behavioural stage end to end on a tiny causal LM: `scan --behaviour` runs every condition, its
statistics are those of the model's own answers, the JSON validates and re-renders, bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch

from audit.behaviour.lm import load_causal_lm
from audit.behaviour.runner import answer_logprobs
from audit.cli import main
from audit.inputs.models import ModelFiles
from audit.report.html import render_html
from audit.report.load import read_result
from tests.helpers import (
    SUITE_GROUPS,
    SUITE_TEMPLATES,
    D,
    save_tiny_hf_model,
    write_suite,
)

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "audit" / "report" / "schema.json").read_text())


@pytest.fixture(scope="module")
def world(tiny_lm_world):
    return tiny_lm_world


def scan(world, tmp_path, *extra):
    model, prompt, suite = world
    out = tmp_path / "r.json"
    argv = ["scan", prompt, "--model", model, "--behaviour", suite, "--json", out, "--quiet", *extra]
    code = main([str(a) for a in argv])
    return code, out


def test_behaviour_statistics_are_those_of_the_models_answers(world, tmp_path, capsys):
    code, out = scan(world, tmp_path, "--reference-text", "w7 w8")
    assert code == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    jsonschema.validate(data, SCHEMA)
    b = data["behaviour"]
    assert [c["id"] for c in b["conditions"]] == ["soft_prompt", "reference_text", "no_prompt"]
    assert b["n_templates"] == 8 and b["n_texts"] == 8 * 8
    # Recompute the soft prompt's selection rates from the model itself.
    model, prompt, _ = world
    lm = load_causal_lm(ModelFiles("tiny", "hf", model), progress=False)
    vectors = torch.from_numpy(np.load(prompt))
    pos, neg = (lm.tokenizer(a, add_special_tokens=False)["input_ids"] for a in (" w1", " w2"))
    qualifying = [t for t, label in SUITE_TEMPLATES if label == "positive"]
    soft = next(c for c in b["conditions"] if c["id"] == "soft_prompt")
    groups = {g["id"]: g for g in soft["attributes"][0]["groups"]}
    for group, names in SUITE_GROUPS.items():
        texts = [t.replace("{name}", n) for t in qualifying for n in names]
        lp = answer_logprobs(lm, vectors, texts, (pos, neg))
        assert groups[group]["n"] == len(texts) == 24
        assert groups[group]["selection_rate"] == pytest.approx(float(np.mean(lp[:, 0] > lp[:, 1])), abs=1e-6)
    rate_a, rate_b = groups["a"]["selection_rate"], groups["b"]["selection_rate"]
    expected = None if rate_a == 0 else rate_b / rate_a
    assert groups["b"]["impact_ratio"] == (
        pytest.approx(expected, abs=1e-6) if expected is not None else None
    )
    assert groups["a"]["is_reference"] and groups["a"]["p_value"] is None
    assert 0 < groups["b"]["p_value"] <= 1 and groups["b"]["q_value"] is not None
    # 4 names per group: C(8, 4) = 70 label assignments, the smallest two-sided p is 2/70.
    assert groups["b"]["min_p"] == pytest.approx(2 / 70, abs=1e-6)
    assert groups["b"]["cannot_reach_significance"] is False
    html = render_html(read_result(out))
    assert "Behaviour on counterfactual probes" in html and "tiny 0.1.0" in html


def test_bad_suite_and_non_causal_model_exit_2_and_write_nothing(world, tmp_path, capsys):
    model, prompt, _ = world
    empty = write_suite(tmp_path / "empty.toml", templates=[])
    out = tmp_path / "r.json"
    code = main(["scan", str(prompt), "--model", str(model), "--behaviour", str(empty), "--json", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "template" in err
    assert not out.exists()
    bert = save_tiny_hf_model(tmp_path / "bert", [f"w{i}" for i in range(40)], dim=D)
    capsys.readouterr()
    code = main(["scan", str(prompt), "--model", str(bert), "--behaviour", "hiring-en", "--json", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "needs a causal LM" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    code = main(
        ["scan", str(prompt), "--model", str(model), "--behaviour", "no-such-suite", "--json", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 2 and "hiring-es" in err and not out.exists()


def test_the_rule_thresholds_and_the_evidence_fields_are_those_of_the_run(world, tmp_path, capsys):
    """--alpha and --impact-threshold reach the rule and the JSON; the non-inferiority bound is the test's
    on the model's own per-name rates; power only under the soft prompt; the placebo ran on each group."""
    from audit.behaviour.stats.noninferiority import noninferiority

    code, out = scan(world, tmp_path, "--alpha", "0.1", "--impact-threshold", "0.9")
    assert code == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    jsonschema.validate(data, SCHEMA)
    b = data["behaviour"]
    assert (b["alpha"], b["impact_threshold"], b["rule_version"]) == (0.1, 0.9, 2)
    assert "0.9" in b["rule"]["en"] and "q < 0.1" in b["rule"]["en"]
    model, prompt, _ = world
    lm = load_causal_lm(ModelFiles("tiny", "hf", model), progress=False)
    vectors = torch.from_numpy(np.load(prompt))
    pos, neg = (lm.tokenizer(a, add_special_tokens=False)["input_ids"] for a in (" w1", " w2"))
    qualifying = [t for t, label in SUITE_TEMPLATES if label == "positive"]
    rates = {}
    for group, names in SUITE_GROUPS.items():
        rates[group] = []
        for n in names:
            lp = answer_logprobs(lm, vectors, [t.replace("{name}", n) for t in qualifying], (pos, neg))
            rates[group].append(float(np.mean(lp[:, 0] > lp[:, 1])))
    soft = next(c for c in b["conditions"] if c["id"] == "soft_prompt")
    groups = {g["id"]: g for g in soft["attributes"][0]["groups"]}
    expected = noninferiority(
        np.array(rates["b"]), np.array(rates["a"]), n_templates=len(qualifying), threshold=0.9, alpha=0.1
    )
    assert groups["b"]["ni_lower"] == pytest.approx(expected.lower_bound, abs=1e-6)
    assert groups["b"]["ni_p_value"] == pytest.approx(expected.p_value, abs=1e-6)
    assert groups["b"]["power_at_max"] is not None and groups["a"]["power_at_max"] is None
    no_prompt = next(c for c in b["conditions"] if c["id"] == "no_prompt")
    assert all(g["power_at_max"] is None for g in no_prompt["attributes"][0]["groups"])
    # 2 groups of 4 names, 100 placebo splits each
    assert b["calibration"]["n_tests"] == 200 and b["calibration"]["nominal"] == 0.1
    # the rule's outcome is consistent with the fields: LOW only when b is cleared
    cleared = expected.lower_bound >= 0.9 and not groups["b"]["cannot_reach_significance"]
    gap = (
        groups["b"]["impact_ratio"] is not None
        and groups["b"]["impact_ratio"] < 0.9
        and groups["b"]["q_value"] < 0.1
    )
    assert b["risk"] == ("high" if gap else "low" if cleared else "medium")
    assert [t["id"] for t in b["bias_audit"]] == [a["id"] for a in soft["attributes"]]
