"""Many prompts in one run (`scan PROMPT... --out-dir DIR`): a folder of PEFT-written adapters on two base
models plus broken ones; every output file, the exit code, the index and summary, and each adapter's
reports equal to its single scan byte for byte."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import html5lib
import jsonschema
import pytest
import torch
import xmlschema

from audit.engine import adapter_names, collect
from audit.geometry.engine import project, project_many
from audit.geometry.stats import compute_stats
from tests.conftest import BROKEN
from tests.helpers import (
    WORDS,
    assert_one_line_error,
    orthogonal_rows,
    run,
    word_level_tokenizer,
)

ROOT = Path(__file__).resolve().parent.parent
SUMMARY_SCHEMA = json.loads((ROOT / "audit" / "report" / "summary_schema.json").read_text())
JUNIT = xmlschema.XMLSchema(str(ROOT / "tests" / "data" / "junit-10.xsd"))


def batch(argv, capsys):
    return run(["scan", *argv, "--quiet"], capsys)


def single(path, tmp_path, capsys, *extra):
    """The single scan's JSON, HTML and Markdown bytes (or its one-line error)."""
    out = tmp_path / "single"
    out.mkdir(exist_ok=True)
    files = [out / "s.json", out / "s.html", out / "s.md"]
    argv = [
        "scan",
        path,
        "--json",
        files[0],
        "--html",
        files[1],
        "--markdown",
        files[2],
        "--force",
        "--quiet",
    ]
    code, _, err = run([*argv, *extra], capsys)
    if code == 2:
        return None, err.strip().removeprefix("prompt-audit: error: ")
    return [f.read_bytes() for f in files], None


def test_a_folder_of_mixed_adapters(tmp_path, catalogue, tiny_model_dir, other_model_dir, capsys):
    out = tmp_path / "out"
    junit = out / "junit.xml"
    code, stdout, err = batch([catalogue, "--out-dir", out, "--markdown", "--junit", junit], capsys)
    assert code == 2, err  # two adapters could not be audited
    audited = {"team-a-hiring", "team-b-hiring", "screening"}
    failed = {"broken_b", "misfit"}
    expected = {f"{n}{ext}" for n in audited for ext in (".json", ".html", ".md")}
    assert {p.name for p in out.iterdir()} == expected | {
        "index.html",
        "summary.json",
        "junit.xml",
        ".prompt-audit-batch",
    }
    assert "3 audited, 2 could not be audited" in stdout
    assert sum("error:" in line for line in err.splitlines()) == 2

    summary = json.loads((out / "summary.json").read_text())
    jsonschema.validate(summary, SUMMARY_SCHEMA)
    rows = {a["name"]: a for a in summary["adapters"]}
    assert set(rows) == audited | failed
    assert [a["name"] for a in summary["adapters"]] == sorted(rows)
    assert summary["exit_code"] == 2 and summary["counts"]["errors"] == 2
    models = {m["spec"]: m for m in summary["models"]}
    assert models[str(tiny_model_dir)]["adapters"] == ["team-a-hiring", "team-b-hiring"]
    assert models[str(other_model_dir)]["adapters"] == ["screening"]
    assert models[str(other_model_dir)]["dim"] == 24 and models[str(tiny_model_dir)]["dim"] == 16
    assert rows["team-a-hiring"]["risk"] in ("medium", "high")
    assert 1 in [p["index"] for p in rows["team-a-hiring"]["flagged_positions"]]
    assert summary["risk"] == max((rows[n]["risk"] for n in audited), key=("low", "medium", "high").index)

    # Each audited adapter's reports are its single scan's, byte for byte; each error its exit-2 line.
    for name in sorted(audited | failed):
        row = rows[name]
        assert Path(row["path"]).parent.parent in (catalogue, catalogue.parent)  # as found below it
        reports, error = single(row["path"], tmp_path, capsys)
        if name in failed:
            assert row["status"] == "error" and error == row["error"], name
            continue
        mine = [(out / f"{name}{ext}").read_bytes() for ext in (".json", ".html", ".md")]
        assert mine == reports, name
        assert row["files"] == {"json": f"{name}.json", "html": f"{name}.html", "markdown": f"{name}.md"}
    assert "LORA adapter" in rows["broken_b"]["error"]
    assert "prompt has dim 24" in rows["misfit"]["error"]

    # index.html: one row per adapter, links that exist, the error rows' reasons, everything escaped.
    index = (out / "index.html").read_text()
    html5lib.HTMLParser(strict=True).parse(index)
    assert "broken&lt;b&gt;" in index and BROKEN not in index
    for name in audited:
        assert f'<tr id="{name}">' in index
        for ext in (".html", ".json", ".md"):
            assert f'href="{name}{ext}"' in index
    for name in failed:
        assert f'<tr id="{name}">' in index and f'href="{name}.html"' not in index
    assert "1 (MEDIUM)" in index or "1 (HIGH)" in index  # team-a reads "blancos" at position 1

    # JUnit: one suite per adapter, an <error> for each that could not be audited.
    xml = junit.read_text()
    JUNIT.validate(xml)
    suites = {s.get("name"): s for s in ET.fromstring(xml.encode()).iter("testsuite")}
    assert set(suites) == audited | failed
    assert all(suites[n].find("testcase/error") is not None for n in failed)
    assert all(suites[n].find("testcase/error") is None for n in audited)


def test_fail_on_applies_to_the_worst_risk(tmp_path, catalogue, capsys):
    adapters = [catalogue / "team-a" / "hiring", catalogue / "team-b" / "hiring", catalogue / "other"]
    code, _, err = batch([*adapters, "--out-dir", tmp_path / "a", "--fail-on", "medium"], capsys)
    assert code == 1, err
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["exit_code"] == 1 and summary["counts"]["errors"] == 0
    code, _, err = batch([*adapters, "--out-dir", tmp_path / "b", "--report-lang", "es"], capsys)
    assert code == 0, err
    index = (tmp_path / "b" / "index.html").read_text()
    assert '<html lang="es">' in index and "Auditorías de soft prompts" in index and "RIESGO" in index


def test_duplicates_are_audited_once(tmp_path, catalogue, capsys):
    hiring = catalogue / "team-a" / "hiring"
    again = catalogue / "team-a" / ".." / "team-a" / "hiring"
    code, stdout, err = batch([hiring, again, catalogue / "team-a", "--out-dir", tmp_path / "o"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert [a["name"] for a in summary["adapters"]] == ["hiring"]
    assert summary["adapters"][0]["path"] == str(hiring)  # the first spelling
    assert summary["duplicates"] == [str(again), str(hiring)]
    assert stdout.count("audited once") == 2


def test_globs_find_adapters(tmp_path, catalogue, capsys):
    code, _, err = batch([str(catalogue / "team-*" / "hiring"), "--out-dir", tmp_path / "o"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "o").glob("*.json")) == [
        "summary.json",
        "team-a-hiring.json",
        "team-b-hiring.json",
    ]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["{empty}", "--out-dir", "{out}"], "holds no PEFT adapter"),
        (["{empty}/*", "--out-dir", "{out}"], "matches no prompt file or adapter folder"),
        (["{empty}/missing", "--out-dir", "{out}"], "does not exist"),
        (["{a}", "{a}"], "no --out-dir"),
        (["{a}", "--out-dir", "{out}", "--json", "{out}.json"], "--json name one report file"),
        (["{a}", "--out-dir", "{out}", "--markdown", "x.md"], "--markdown takes no PATH"),
        (["{a}", "--jobs", "2"], "--jobs applies to a batch scan"),
        (["{a}", "--markdown"], "--markdown needs a PATH"),
        (["{a}", "--out-dir", "{out}", "--jobs", "0"], "--jobs 0 is not positive"),
    ],
)
def test_usage_errors_exit_2_and_write_nothing(tmp_path, catalogue, capsys, argv, fragment):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    paths = {"empty": empty, "out": out, "a": catalogue / "team-a" / "hiring"}
    code, _, err = batch([a.format(**paths) for a in argv], capsys)
    assert_one_line_error(code, err, fragment)
    assert not out.exists()


def test_existing_reports_are_kept_without_force(tmp_path, catalogue, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "summary.json").write_text("keep me")
    code, _, err = batch([catalogue / "other", "--out-dir", out], capsys)
    assert_one_line_error(code, err, "already exists")
    assert [p.name for p in out.iterdir()] == ["summary.json"]
    assert batch([catalogue / "other", "--out-dir", out, "--force"], capsys)[0] == 0


def test_names_are_unique_stable_and_path_derived(tmp_path):
    paths = []
    for rel in (
        "team-a/hiring",
        "team-b/hiring",
        "x/index",
        "y/Summary",
        "q/p.npy",
        "q/p.pt",
        "r/Solo",
        "s/solo",
    ):
        path = tmp_path / rel
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
        else:
            path.mkdir(parents=True)
        paths.append(path)
    (tmp_path / "w").mkdir()
    weights = tmp_path / "w" / "adapter_model.safetensors"
    weights.write_bytes(b"")
    paths.append(weights)
    names = {p.relative_to(tmp_path).as_posix(): n for p, n in adapter_names(paths).items()}
    assert names == {
        "team-a/hiring": "team-a-hiring",
        "team-b/hiring": "team-b-hiring",
        "x/index": "x-index",  # index.html and summary.json are the batch's own
        "y/Summary": "y-Summary",
        "q/p.npy": "p",  # the same folder and stem: numbered in path order
        "q/p.pt": "p-2",
        "r/Solo": "r-Solo",  # equal ignoring case (case-insensitive file systems)
        "s/solo": "s-solo",
        "w/adapter_model.safetensors": "w",  # an adapter's weights file is named by its folder
    }
    assert adapter_names(list(reversed(paths))) == adapter_names(paths)  # order does not matter
    assert adapter_names([tmp_path / "x" / "index"]) == {(tmp_path / "x" / "index").resolve(): "x-index"}


def test_collect_searches_folders_for_adapters(tmp_path, catalogue):
    inputs = collect([catalogue])
    assert [i.name for i in inputs.items] == [
        "broken_b",
        "misfit",
        "screening",
        "team-a-hiring",
        "team-b-hiring",
    ]
    assert inputs.items[0].path == catalogue / BROKEN


def test_stacked_projection_equals_one_prompt_at_a_time():
    """project_many is project per prompt, bit for bit, whatever the other prompts (lengths differ)."""
    from audit.inputs.vocab import vocabulary_from_tensors

    words = WORDS + [f"w{i}" for i in range(40)]
    gen = torch.Generator().manual_seed(0)
    rows = torch.cat([orthogonal_rows(len(WORDS) + 1, 64), torch.randn(40, 64, generator=gen)])
    vocab = vocabulary_from_tensors(rows, word_level_tokenizer(words), spec="tiny64")
    stats = compute_stats(vocab, chunk_size=16)
    prompts = [torch.randn(n, 64, generator=gen) for n in (1, 5, 3, 8)]
    methods = ("l2", "dot", "cosine", "centered", "whitened", "unembed")
    together = project_many(prompts, vocab, stats, methods, 7, chunk_size=2048)
    for prompt, tops in zip(prompts, together):
        alone = project(prompt, vocab, stats, methods, 7, chunk_size=2048)
        assert tops.keys() == alone.keys()
        for m in methods:
            assert torch.equal(tops[m].ids, alone[m].ids) and torch.equal(tops[m].scores, alone[m].scores), m


# --behaviour: the model is loaded once per base model (or once per worker with --jobs).


@pytest.mark.parametrize("jobs", [1, 2])
def test_behaviour_in_a_batch_equals_single_scans(tmp_path, behaviour_world, capsys, monkeypatch, jobs):
    model, prompts, suite = behaviour_world
    loads = []
    import audit.behaviour.lm as lm_module

    real = lm_module.load_causal_lm
    monkeypatch.setattr(lm_module, "load_causal_lm", lambda *a, **k: loads.append(1) or real(*a, **k))
    # A fresh run cache, so that the batch computes every condition itself (not the single scans' runs).
    cache = tmp_path / "cache"
    monkeypatch.setenv("PROMPT_AUDIT_CACHE", str(cache))
    files = sorted(prompts.glob("*.npy"))
    options = ["--model", model, "--behaviour", suite, "--max-ablations", "1"]
    out = tmp_path / "out"
    code, _, err = batch([*files, "--out-dir", out, "--jobs", jobs, *options], capsys)
    assert code == 0, err
    assert len(loads) == (1 if jobs == 1 else 0)  # workers load their own copy
    summary = json.loads((out / "summary.json").read_text())
    jsonschema.validate(summary, SUMMARY_SCHEMA)
    index = (out / "index.html").read_text()
    for path in files:
        row = next(a for a in summary["adapters"] if a["name"] == path.stem)
        assert row["behaviour"]["suite"] == "tiny" and "lowest_impact_ratio" in row["behaviour"]
        shutil.rmtree(cache)
        reports, _ = single(path, tmp_path, capsys, *options)
        assert (out / f"{path.stem}.json").read_bytes() == reports[0]
    assert "behavioural gap (tiny 0.1.0)" in index


def test_engine_ray_without_ray_installed_exits_2_naming_the_extra(tmp_path, catalogue, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    out = tmp_path / "out"
    code, _, err = batch([catalogue / "other", "--out-dir", out, "--engine", "ray"], capsys)
    assert_one_line_error(code, err, "--engine ray needs Ray")
    assert "pip install 'prompt-audit[ray]'" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--ray-address", "auto"], "--ray-address applies to --engine ray"),
        (["--ray-ship-adapters"], "--ray-ship-adapters applies to --engine ray"),
        (["--engine", "ray", "--jobs", "2"], "--jobs sets the local engine's processes"),
    ],
)
def test_ray_options_that_clash_exit_2(tmp_path, catalogue, capsys, argv, fragment):
    out = tmp_path / "out"
    code, _, err = batch([catalogue / "other", "--out-dir", out, *argv], capsys)
    assert_one_line_error(code, err, fragment)
    assert not out.exists()


def test_resume_and_engine_need_a_batch(tmp_path, catalogue, capsys):
    for extra in (["--resume"], ["--engine", "ray"]):
        code, _, err = run(["scan", str(catalogue / "other" / "screening"), *extra, "--quiet"], capsys)
        assert_one_line_error(code, err, f"{extra[0]} applies to a batch scan")


def test_resume_does_not_replace_files_no_batch_recorded(tmp_path, catalogue, capsys):
    """--resume may replace what a batch's record lists; a folder without a record is the user's."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "summary.json").write_text("keep me")
    code, _, err = batch([catalogue / "other", "--out-dir", out, "--resume"], capsys)
    assert_one_line_error(code, err, "already exists")
    assert (out / "summary.json").read_text() == "keep me"
    assert batch([catalogue / "other", "--out-dir", out, "--force"], capsys)[0] == 0
    code, stdout, _ = batch([catalogue / "other", "--out-dir", out, "--resume"], capsys)
    assert code == 0 and "resumed: 1 adapter(s) kept" in stdout
