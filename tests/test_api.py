"""The Python API as README shows it, and the demo on the one engine (real packaged Gemma: slow tier)."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parent.parent / "README.md"


def _api_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's Python API section has no python block"
    return match.group(1)


def test_the_readme_python_example_runs_as_written(tmp_path):
    """README's five lines, executed in a folder where audit/demo/adapters are the packaged adapters."""
    from audit.demo.run import demo_adapters

    adapters = {a.name: a.path for a in demo_adapters()}
    (tmp_path / "audit" / "demo").mkdir(parents=True)
    (tmp_path / "audit" / "demo" / "adapters").symlink_to(next(iter(adapters.values())).parent)
    code = _api_block()
    assert len([line for line in code.splitlines() if line.strip()]) <= 6
    out = io.StringIO()
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})  # noqa: S102 (our own README's example)
    finally:
        os.chdir(cwd)
    printed = dict(line.split() for line in out.getvalue().splitlines())
    assert set(printed) == set(adapters)
    assert printed["hiring-es-wayward"] in ("medium", "high")  # the flagged 'blancos' position
    written = {p.name for p in (tmp_path / "reports" / "api").iterdir()}
    assert {"index.html", "summary.json"} | {f"{n}.json" for n in adapters} | {
        f"{n}.html" for n in adapters
    } == written


def test_the_demo_is_one_engine_run_that_loads_gemma_once(tmp_path, monkeypatch):
    """Vocabulary and causal LM loaded once for the three demo adapters. The behavioural check itself is
    replaced by a recorder (the full check is tests/test_demo.py's): what is asserted is the loading."""
    import audit.behaviour.lm as lm_module
    import audit.engine.session as session
    from audit.demo.run import demo_adapters, run_demo

    vocab_loads, lm_loads, checks = [], [], []
    real_vocab = session.load_model
    monkeypatch.setattr(
        session, "load_model", lambda *a, **k: vocab_loads.append(a[0]) or real_vocab(*a, **k)
    )
    sentinel = object()
    monkeypatch.setattr(lm_module, "load_causal_lm", lambda *a, **k: lm_loads.append(a[0]) or sentinel)
    monkeypatch.setattr(
        session, "behave", lambda scanned, vocab, shared, lm: checks.append((scanned.prompt.path, lm))
    )
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_demo(tmp_path / "demo", progress=False) == 0
    assert len(vocab_loads) == 1 and len(lm_loads) == 1
    assert len(checks) == len(demo_adapters()) and all(lm is sentinel for _, lm in checks)
    assert {p.name for p in (tmp_path / "demo").iterdir()} >= {"index.html", "hiring-es-wayward.json"}
