"""Old code against new code in one run: the Llama-size warm scan and the many-adapter batch.

Usage::

    python benchmarks/bench_revisions.py --old f0fa100 --new HEAD   # ~15 min on 2 quiet cores
    python benchmarks/bench_revisions.py --old f0fa100 --repeats 1 --adapters 4   # a quick check

Both revisions are exported (``git archive``) into a temporary folder, so uncommitted edits in the
checkout are not measured; every timed command is a fresh ``python -m audit`` process whose
``PYTHONPATH`` puts one of them first, so both run in this interpreter's environment (same torch, same
wheels). Each code keeps its own cache
folder, filled by one untimed scan first, so every timed run is warm.

Routes, timed as whole processes (interpreter start, imports, loading, compute, writing):

* Llama warm scan: ``scan PROMPT.npy --model LLAMA --quiet --json OUT --force --top-k 10`` on the
  synthetic Llama-3-size checkpoint of ``bench_projection.py`` (128256 x 4096, untied, fp16), 20 tokens;
* batch: ``scan FOLDER --out-dir OUT --quiet --force`` over ``--adapters`` PEFT adapters made from the demo
  adapters as ``bench_batch.py`` makes them, on the packaged Gemma 3 270M.

Old and new runs alternate (old, new, old, new, ...) ``--repeats`` times, so a change of load touches both;
the script prints each run, the median of each code, the ratio new / old and the cores other processes
used meanwhile. It exits 0 whatever the figures; 1 when a command fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_batch import Timing, _busy_seconds, _children_cpu, make_adapters  # noqa: E402
from bench_projection import (  # noqa: E402
    cache_root,
    ensure_llama_model,
    hf_row_norm,
    matrix_files,
    read_through,
    write_prompt,
)

ROOT = Path(__file__).resolve().parent.parent


def export_revision(rev: str, dest: Path) -> str:
    """Writes the tree of ``rev`` into ``dest``; returns its full commit id."""
    commit = subprocess.run(
        ["git", "rev-parse", rev], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return commit


def timed(code: Path, cache: Path, command: list[str]) -> Timing:
    """One ``python -m audit COMMAND`` process with ``code`` first on the path and its own cache.

    It runs in ``cache`` (not in a checkout: ``-m`` puts the working folder first on the path).
    """
    env = {**os.environ, "PYTHONPATH": str(code), "PROMPT_AUDIT_CACHE": str(cache)}
    cache.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    busy0, mine0, start = _busy_seconds(), _children_cpu(), time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "audit", *command], cwd=cache, env=env, capture_output=True, text=True
    )
    wall, cpu = time.perf_counter() - start, _children_cpu() - mine0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(command)}\n{proc.stderr[-2000:]}")
    others = max(0.0, (_busy_seconds() - busy0) - cpu) / wall
    return Timing(wall, cpu, load_before, os.getloadavg()[0], others)


def which_code(code: Path) -> str:
    """Where ``import audit`` resolves with ``code`` first on the path (checks the set-up)."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    probe = "import audit, pathlib; print(pathlib.Path(audit.__file__).parent)"
    return subprocess.run(
        [sys.executable, "-c", probe], cwd=tempfile.gettempdir(), env=env, capture_output=True, text=True
    ).stdout.strip()


def compare(label: str, codes: dict[str, Path], caches: dict[str, Path], command, repeats: int) -> None:
    """Warms each code's cache once, then alternates timed runs; prints runs, medians and the ratio."""
    for name, code in codes.items():
        timed(code, caches[name], command(name, "warmup"))
    runs: dict[str, list[Timing]] = {name: [] for name in codes}
    for i in range(repeats):
        for name, code in codes.items():
            t = timed(code, caches[name], command(name, f"run{i}"))
            runs[name].append(t)
            print(
                f"  {label} {name} #{i + 1}: {t.wall:.2f} s wall, {t.cpu:.2f} s CPU, load1 "
                f"{t.load_before:.2f}, others {t.others:.2f} cores",
                flush=True,
            )
    median = {name: statistics.median(t.wall for t in ts) for name, ts in runs.items()}
    cpu = {name: statistics.median(t.cpu for t in ts) for name, ts in runs.items()}
    print(
        f"{label}: median wall old {median['old']:.2f} s, new {median['new']:.2f} s, new/old "
        f"{median['new'] / median['old']:.3f}; median CPU old {cpu['old']:.2f} s, new {cpu['new']:.2f} s, "
        f"new/old {cpu['new'] / cpu['old']:.3f} ({repeats} runs each)\n",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", default="f0fa100", help="the old revision (default f0fa100)")
    parser.add_argument("--new", default="HEAD", help="the new revision (default HEAD)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per code and route (default 3)")
    parser.add_argument("--adapters", type=int, default=24, help="adapters in the batch (default 24)")
    parser.add_argument("--skip-llama", action="store_true", help="skip the Llama-size warm scan")
    parser.add_argument("--skip-batch", action="store_true", help="skip the batch")
    opts = parser.parse_args(argv)
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    work = Path(tempfile.mkdtemp(prefix="bench-revisions-"))
    try:
        codes = {"old": work / "old", "new": work / "new"}
        commits = {
            name: export_revision(rev, codes[name]) for name, rev in (("old", opts.old), ("new", opts.new))
        }
        for name, code in codes.items():
            found = which_code(code)
            if Path(found) != code / "audit":
                raise SystemExit(f"{name}: 'import audit' finds {found}, not {code / 'audit'}")
        print(
            f"prompt-audit old vs new, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, load "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; old {commits['old'][:10]}, "
            f"new {commits['new'][:10]}\n"
        )
        if not opts.skip_llama:
            model = ensure_llama_model(cache_root(), 4)
            read_through(matrix_files(model))
            norm, dim = hf_row_norm(model)
            prompt = work / "llama-prompt.npy"
            write_prompt(prompt, 20, dim, norm, 0)
            caches = {name: work / f"cache-llama-{name}" for name in codes}

            def scan(name: str, tag: str) -> list[str]:
                out = work / f"llama-{name}-{tag}.json"
                return ["scan", str(prompt), "--model", str(model), "--quiet", "--json", str(out)]

            compare("Llama-size warm scan", codes, caches, scan, opts.repeats)
        if not opts.skip_batch:
            adapters = work / "adapters"
            make_adapters(adapters, opts.adapters, 0, 0.05)
            caches = {name: work / f"cache-gemma-{name}" for name in codes}

            def batch(name: str, tag: str) -> list[str]:
                if tag == "warmup":
                    first = sorted(adapters.iterdir())[0]
                    return ["scan", str(first), "--quiet", "--json", str(work / f"warm-{name}.json")]
                return ["scan", str(adapters), "--out-dir", str(work / f"batch-{name}-{tag}"), "--quiet"]

            compare(f"batch of {opts.adapters} adapters", codes, caches, batch, opts.repeats)
        uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        print(f"uptime at the end: {uptime}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
