"""`scan --out-dir --engine ray` on a real local Ray instance (2 CPUs, loopback only): per-adapter reports
byte-identical to the local engine's, a worker killed mid-run (its task retried, the result the same),
bad adapters' error rows, and `--resume` after an interrupted run (local and Ray) auditing only what was
missing. Skipped, saying why, where Ray is not installed."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'prompt-audit[ray]'): not tested")

from audit.engine import ray_backend  # noqa: E402
from audit.engine import shards as shards_module  # noqa: E402
from tests.helpers import run  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """One local Ray instance for the module: 2 CPUs, no dashboard, on 127.0.0.1 only."""
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield
    ray.shutdown()


def scan(argv, capsys):
    return run(["scan", *map(str, argv), "--quiet"], capsys)


def files(out: Path) -> dict[str, bytes]:
    """Every report a batch wrote (not its record), by name."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if not p.name.startswith(".")}


def test_ray_reports_equal_the_local_engines_byte_for_byte(tmp_path, catalogue, capsys):
    local, remote = tmp_path / "local", tmp_path / "ray"
    code_local, _, _ = scan([catalogue, "--out-dir", local, "--markdown"], capsys)
    code_ray, stdout, err = scan([catalogue, "--out-dir", remote, "--markdown", "--engine", "ray"], capsys)
    assert code_local == code_ray == 2, err  # two adapters of the catalogue cannot be audited
    assert files(local) == files(remote)
    summary = json.loads((remote / "summary.json").read_text())
    errors = {a["name"]: a["error"] for a in summary["adapters"] if a.get("error")}
    assert set(errors) == {"broken_b", "misfit"}
    assert "3 audited, 2 could not be audited" in stdout
    assert sum("error:" in line for line in err.splitlines()) == 2


def test_a_killed_worker_is_retried_and_gives_the_same_reports(tmp_path, catalogue, capsys, monkeypatch):
    marker = tmp_path / "killed"

    def killed_once(items, config, threads, payload, _marker=str(marker)):
        import os
        import signal
        from pathlib import Path

        from audit.engine.ray_backend import _ray_shard

        if not Path(_marker).exists():  # the first attempt: the worker process dies (SIGKILL)
            Path(_marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return _ray_shard(items, config, threads, payload)

    monkeypatch.setitem(ray_backend.RAY_TASK, "shard", killed_once)
    local, remote = tmp_path / "local", tmp_path / "ray"
    scan([catalogue, "--out-dir", local], capsys)
    code, _, err = scan([catalogue, "--out-dir", remote, "--engine", "ray"], capsys)
    assert code == 2, err
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker was killed
    assert files(local) == files(remote)


def test_shipped_adapters_give_the_same_reports(tmp_path, catalogue, capsys):
    local, remote = tmp_path / "local", tmp_path / "ray"
    scan([catalogue, "--out-dir", local], capsys)
    code, _, err = scan([catalogue, "--out-dir", remote, "--engine", "ray", "--ray-ship-adapters"], capsys)
    assert code == 2, err
    assert files(local) == files(remote)


def test_a_worker_that_cannot_read_an_adapter_gives_an_error_row(tmp_path, catalogue, capsys, monkeypatch):
    """Workers read the paths as given: one the worker cannot see (simulated by a path that vanished
    after planning) is an error row naming the set-ups that work, not a failed run."""
    from audit.engine.plan import collect

    inputs = collect([catalogue / "team-a" / "hiring"])
    (item,) = inputs.items
    gone = dataclasses.replace(item, path=tmp_path / "elsewhere" / "hiring")
    outcomes = ray.get(ray.remote(ray_backend._ray_shard).remote([gone], _config(), 1, None))
    assert outcomes[0].result is None
    assert "cannot read" in outcomes[0].error and "--ray-ship-adapters" in outcomes[0].error


def _config():
    from audit.config import AuditConfig

    return AuditConfig(progress=False)


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_resume_after_an_interrupted_run_audits_only_what_is_missing(
    tmp_path, catalogue, capsys, monkeypatch, engine
):
    out, whole = tmp_path / "out", tmp_path / "whole"
    scan([catalogue, "--out-dir", whole, "--engine", engine], capsys)
    import audit.cli.batch as cli_batch
    import audit.output as output

    real = output.write_prompt_reports
    written = []

    def interrupted(outcome, *a, **k):
        if outcome.result is not None and len(written) == 2:
            raise KeyboardInterrupt  # after two adapters' reports are written
        if outcome.result is not None:
            written.append(outcome.name)
        return real(outcome, *a, **k)

    monkeypatch.setattr(output, "write_prompt_reports", interrupted)
    code, _, err = scan([catalogue, "--out-dir", out, "--engine", engine], capsys)
    assert code == cli_batch.EXIT_INTERRUPTED
    assert "interrupted" in err and "--resume" in err
    monkeypatch.setattr(output, "write_prompt_reports", real)
    audited = []
    real_shard = shards_module.run_shard

    def counting(items, config, listener=None):
        audited.extend(i.name for i in items)
        return real_shard(items, config, listener)

    monkeypatch.setattr(shards_module, "run_shard", counting)
    code, stdout, _ = scan([catalogue, "--out-dir", out, "--engine", engine, "--resume"], capsys)
    assert code == 2
    kept = written
    assert f"resumed: {len(kept)} adapter(s) kept" in stdout and ", 3 audited now" in stdout
    if engine == "local":  # the shards run here, where the count is seen
        # what was not written is audited again, the adapter that failed in its shard included
        assert sorted(audited) == sorted(
            {"team-a-hiring", "team-b-hiring", "screening", "misfit"} - set(kept)
        )
        assert len(kept) == 2
    assert files(out) == files(whole)
    # Another option: nothing is kept.
    code, stdout, _ = scan(
        [catalogue, "--out-dir", out, "--engine", engine, "--resume", "--top-k", "5"], capsys
    )
    assert "resumed: 0 adapter(s) kept" in stdout


def test_behaviour_on_ray_equals_the_local_engine(tmp_path, behaviour_world, capsys, monkeypatch):
    """A tiny causal LM with a suite: Ray's workers compute every run (into their cache), then the local
    run computes them again in a fresh cache; the reports agree byte for byte."""
    model, prompts, suite = behaviour_world
    options = ["--model", model, "--behaviour", suite, "--max-ablations", "1"]
    remote, local = tmp_path / "ray", tmp_path / "local"
    code, _, err = scan(
        [*sorted(prompts.glob("*.npy")), "--out-dir", remote, "--engine", "ray", *options], capsys
    )
    assert code == 0, err
    monkeypatch.setenv("PROMPT_AUDIT_CACHE", str(tmp_path / "fresh-cache"))
    assert scan([*sorted(prompts.glob("*.npy")), "--out-dir", local, *options], capsys)[0] == 0
    assert files(local) == files(remote)


@pytest.mark.slow
def test_the_demo_adapters_on_ray_with_hiring_es_equal_the_local_engine(tmp_path, capsys):
    """The packaged Gemma 3 270M and the demo adapters, `--behaviour hiring-es`, the shared-storage
    set-up (driver and workers read one cache): the same bytes as the local engine."""
    from audit.demo.run import demo_adapters

    adapters = [a.path for a in demo_adapters()][:2]
    options = ["--model", "gemma-3-270m", "--behaviour", "hiring-es", "--sequential", "--max-ablations", "1"]
    local, remote = tmp_path / "local", tmp_path / "ray"
    code, _, err = scan([*adapters, "--out-dir", local, *options], capsys)
    assert code == 0, err
    code, _, err = scan([*adapters, "--out-dir", remote, "--engine", "ray", *options], capsys)
    assert code == 0, err
    assert files(local) == files(remote)
