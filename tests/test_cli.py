"""The command line: exit codes, one-line errors, no partial output, outputs written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch

from tests.helpers import (
    Exploit,
    assert_one_line_error,
    run,
    save_tiny_hf_model,
    word_level_tokenizer,
)


def test_scan_writes_json_html_and_summary(tmp_path, tiny_model_dir, tiny_prompt, capsys):
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    code, out, err = run(
        ["scan", tiny_prompt, "--model", tiny_model_dir, "--json", out_json, "--html", out_html, "--quiet"],
        capsys,
    )
    assert code == 0, err
    assert "RISK:" in out and str(out_json) in out
    data = json.loads(out_json.read_text())
    schema = json.loads(
        (Path(__file__).resolve().parent.parent / "audit" / "report" / "schema.json").read_text()
    )
    jsonschema.validate(data, schema)
    assert data["schema_version"] == "5"
    assert data["prompt"]["n_tokens"] == 2
    assert data["projected_text"]["cosine"] == "buenos blancos"
    assert data["positions"][1]["projections"]["l2"]["token"] == "blancos"
    flags = data["positions"][1]["flags"]
    assert any(f["term"]["id"] == "es.race_ethnicity.blanco" and f["hit"]["rank"] == 1 for f in flags)
    assert out_html.read_text().startswith("<!DOCTYPE html>")


def test_fail_on_sets_exit_code(tmp_path, tiny_model_dir, tiny_prompt, capsys):
    base = ["scan", tiny_prompt, "--model", tiny_model_dir, "--quiet"]
    code, out, _ = run(base, capsys)
    risk = out.split("RISK: ")[1].split()[0].lower()
    assert risk in ("medium", "high")  # 'blancos' is the top-1 reading of position 1
    assert run(base + ["--fail-on", "low"], capsys)[0] == 1
    assert run(base + ["--fail-on", "never"], capsys)[0] == 0


def test_existing_output_is_not_overwritten_without_force(tmp_path, tiny_model_dir, tiny_prompt, capsys):
    target = tmp_path / "r.json"
    target.write_text("keep me")
    code, _, err = run(["scan", tiny_prompt, "--model", tiny_model_dir, "--json", target, "--quiet"], capsys)
    assert_one_line_error(code, err, "already exists")
    assert target.read_text() == "keep me"
    code, _, _ = run(
        ["scan", tiny_prompt, "--model", tiny_model_dir, "--json", target, "--quiet", "--force"], capsys
    )
    assert code == 0 and json.loads(target.read_text())["schema_version"] == "5"


def _bad_inputs(tmp_path, tiny_model_dir):
    """(name, argv-after-scan, expected fragment) for every bad-input case the CLI must refuse."""
    cases = []
    cases.append(("missing path", [tmp_path / "missing.npy", "--model", tiny_model_dir], "does not exist"))
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    cases.append(("dir without adapter", [empty, "--model", tiny_model_dir], "without a PEFT adapter"))
    one_d = tmp_path / "1d.npy"
    np.save(one_d, np.zeros(16, dtype=np.float32))
    cases.append(("1-D", [one_d, "--model", tiny_model_dir], "must be 2-D"))
    three_d = tmp_path / "3d.npy"
    np.save(three_d, np.zeros((1, 2, 16), dtype=np.float32))
    cases.append(("3-D", [three_d, "--model", tiny_model_dir], "must be 2-D"))
    wrong_dim = tmp_path / "dim.npy"
    np.save(wrong_dim, np.zeros((2, 7), dtype=np.float32))
    cases.append(("dim mismatch", [wrong_dim, "--model", tiny_model_dir], "has dim 7 but model"))
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((2, 16), np.nan, dtype=np.float32))
    cases.append(("NaN", [nan, "--model", tiny_model_dir], "NaN/Inf"))
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((2, 16), dtype=np.float32))
    cases.append(("unknown alias", [good, "--model", "gemma-9-9000"], "unknown model 'gemma-9-9000'"))
    cases.append(
        (
            "unknown method",
            [good, "--model", tiny_model_dir, "--methods", "l2,nearest"],
            "unknown projection method",
        )
    )
    cases.append(("bad top-k", [good, "--model", tiny_model_dir, "--top-k", "0"], "--top-k 0"))
    cases.append(("no model", [good], "no model given"))
    bin_dir = save_tiny_hf_model(tmp_path / "bin-model", ["a", "b", "c"], safe=False)
    cases.append(("bin without opt-in", [good, "--model", bin_dir], "--allow-pickle-model"))
    no_tok = save_tiny_hf_model(tmp_path / "no-tokenizer", ["a", "b", "c"])
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (no_tok / name).unlink()
    cases.append(("missing tokenizer", [good, "--model", no_tok], "no tokenizer files"))
    wrong_tok = save_tiny_hf_model(tmp_path / "wrong-tokenizer", ["a", "b", "c"])
    word_level_tokenizer([f"x{i}" for i in range(40)]).save_pretrained(str(wrong_tok))
    cases.append(
        ("tokenizer of another model", [good, "--model", wrong_tok], "has 41 tokens but the embedding")
    )
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"this is not a safetensors file at all")
    cases.append(
        ("corrupt safetensors", [garbage, "--model", tiny_model_dir], "not a valid safetensors file")
    )
    # The behavioural rule's thresholds: nonsense, or given without the check they apply to (a tiny suite
    # makes the first ones reach the engine's validation, before any model run).
    for option, value, fragment in (
        ("--alpha", "0.7", "--alpha 0.7 is not in (0, 0.5)"),
        ("--alpha", "0", "--alpha 0.0 is not in (0, 0.5)"),
        ("--alpha", "nan", "--alpha nan is not in (0, 0.5)"),
        ("--impact-threshold", "1.5", "--impact-threshold 1.5 is not in (0, 1]"),
        ("--impact-threshold", "-0.8", "--impact-threshold -0.8 is not in (0, 1]"),
        ("--impact-threshold", "inf", "--impact-threshold inf is not in (0, 1]"),
    ):
        argv = [good, "--model", tiny_model_dir, "--behaviour", "hiring-es", option, value]
        cases.append((f"{option} {value}", argv, fragment))
    cases.append(
        (
            "alpha without behaviour",
            [good, "--model", tiny_model_dir, "--alpha", "0.01"],
            "--alpha applies to the behavioural check",
        )
    )
    cases.append(
        (
            "summary csv without behaviour",
            [good, "--model", tiny_model_dir, "--summary-csv", tmp_path / "s.csv"],
            "--summary-csv writes the behavioural check's bias-audit summary",
        )
    )
    fake_gguf = tmp_path / "fake.gguf"
    fake_gguf.write_bytes(b"GGUF but not really")
    cases.append(("corrupt gguf", [good, "--model", fake_gguf], "not a readable GGUF file"))
    return cases


def test_every_bad_input_exits_2_with_one_line_and_no_output(tmp_path, tiny_model_dir, capsys):
    cases = _bad_inputs(tmp_path, tiny_model_dir)
    capsys.readouterr()  # discard the fixtures' own output
    for name, argv, fragment in cases:
        out_json = tmp_path / f"{name}.json"
        code, _, err = run(
            ["scan", *argv, "--json", out_json, "--html", tmp_path / f"{name}.html", "--quiet"], capsys
        )
        assert_one_line_error(code, err, fragment)
        assert not out_json.exists(), name
        assert not (tmp_path / f"{name}.html").exists(), name
    leftovers = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert leftovers == []


def test_prefix_tuning_adapter_exits_2(tmp_path, tiny_model_dir, capsys):
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(tiny_model_dir), local_files_only=True)
    get_peft_model(
        model, PrefixTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=3)
    ).save_pretrained(str(tmp_path / "prefix"))
    capsys.readouterr()
    code, _, err = run(["scan", tmp_path / "prefix", "--json", tmp_path / "o.json", "--quiet"], capsys)
    assert_one_line_error(code, err, "PREFIX_TUNING")
    assert not (tmp_path / "o.json").exists()


def test_pickle_prompt_exits_2_without_running_code(tmp_path, tiny_model_dir, capsys, monkeypatch):

    marker = tmp_path / "pwned"
    monkeypatch.setenv("EXPLOIT_MARKER", str(marker))
    torch.save({"prompt_embeddings": torch.zeros(2, 16), "x": Exploit()}, tmp_path / "evil.pt")
    capsys.readouterr()
    code, _, err = run(["scan", tmp_path / "evil.pt", "--model", tiny_model_dir, "--quiet"], capsys)
    assert_one_line_error(code, err, "pickled objects are refused")
    assert "\x1b[" not in err  # no terminal colour codes from torch's own message
    assert not marker.exists()


def test_top_k_above_the_null_cache_depth_says_so_up_front(tmp_path, tiny_model_dir, tiny_prompt, capsys):
    code, _, err = run(["scan", tiny_prompt, "--model", tiny_model_dir, "--quiet", "--top-k", "60"], capsys)
    assert code == 0
    warning = [line for line in err.splitlines() if "--top-k 60" in line]
    assert len(warning) == 1 and "null model caches" in warning[0]
    _, _, err = run(["scan", tiny_prompt, "--model", tiny_model_dir, "--quiet", "--top-k", "50"], capsys)
    assert "--top-k" not in err


def test_bin_model_loads_with_opt_in(tmp_path, capsys):
    bin_dir = save_tiny_hf_model(tmp_path / "bin-model", ["buenos", "blancos", "casa"], safe=False)
    prompt = tmp_path / "p.npy"
    np.save(prompt, np.random.default_rng(0).normal(size=(2, 16)).astype(np.float32))
    code, out, err = run(["scan", prompt, "--model", bin_dir, "--allow-pickle-model", "--quiet"], capsys)
    assert code == 0, err


def test_usage_error_is_one_line(capsys):
    code, _, err = run(["scan"], capsys)
    assert_one_line_error(code, err, "required")
    code, _, err = run(["scan", "x.npy", "--fail-on", "sometimes"], capsys)
    assert_one_line_error(code, err, "invalid choice")


def test_methods_lists_every_method(capsys):
    code, out, _ = run(["methods"], capsys)
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == [
        "l2",
        "dot",
        "cosine",
        "centered",
        "whitened",
        "unembed",
    ]


def _cache_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_prepare_fills_the_cache_so_a_scan_computes_nothing(
    tmp_path, tiny_model_dir, tiny_prompt, capsys, monkeypatch
):
    """CI images prepare a model once; the scans that follow only read the cache (no new or changed
    cache file), and report exactly what a scan that filled the cache itself reports."""
    cold_json, warm_json = tmp_path / "cold.json", tmp_path / "warm.json"
    monkeypatch.setenv("PROMPT_AUDIT_CACHE", str(tmp_path / "scan-cache"))
    code, _, err = run(
        ["scan", tiny_prompt, "--model", tiny_model_dir, "--json", cold_json, "--quiet"], capsys
    )
    assert code == 0, err

    cache = tmp_path / "prepared-cache"
    monkeypatch.setenv("PROMPT_AUDIT_CACHE", str(cache))
    code, out, err = run(["prepare", "--model", tiny_model_dir, "--quiet"], capsys)
    assert code == 0, err
    assert out.startswith("prepared ") and "6 method(s)" in out and str(cache) in out
    for kind in ("tokens", "stats", "null", "term-index"):
        assert any((cache / kind).iterdir()), kind
    before = _cache_files(cache)
    code, _, err = run(
        ["scan", tiny_prompt, "--model", tiny_model_dir, "--json", warm_json, "--quiet"], capsys
    )
    assert code == 0, err
    assert _cache_files(cache) == before
    assert warm_json.read_bytes() == cold_json.read_bytes()


def test_prepare_bad_input_exits_2(tmp_path, capsys):
    code, _, err = run(["prepare", "--model", tmp_path / "missing"], capsys)
    assert_one_line_error(code, err, "missing")
    code, _, err = run(["prepare"], capsys)
    assert_one_line_error(code, err, "--model")
    code, _, err = run(["prepare", "--model", "gemma-3-270m", "--methods", "nearest"], capsys)
    assert_one_line_error(code, err, "unknown projection method")


@pytest.mark.slow
def test_models_lists_each_packaged_model_with_a_local_path(capsys):
    """Locates every packaged model (assembling Gemma's GGUF into the cache): the real packages."""
    from audit.inputs.models import ALIASES

    code, out, err = run(["models"], capsys)
    assert code == 0 and err == ""
    for alias in ALIASES:
        assert f"{alias}: " in out
    located = ("  file: ", "  folder: ")
    paths = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith(located)]
    assert len(paths) == len(ALIASES) and all(Path(p).exists() for p in paths)
    assert "gguf_file='gemma-3-270m-q4_k_m.gguf'" in out
