"""A batch scan of many adapters against one warm `scan` process per adapter, on the packaged Gemma.

Usage::

    python benchmarks/bench_batch.py                      # 24 adapters, ~3 min on 2 quiet cores
    python benchmarks/bench_batch.py --adapters 4         # a quick check of the script
    python benchmarks/bench_batch.py --wait-quiet 600 --max-load 1.0

Adapters: ``--adapters`` PEFT prompt-tuning folders written into a temporary folder from the committed
demo adapters (``audit/demo/adapters/hiring-es-*``, taken in turn): each keeps its source's
adapter_config.json and stores the source's ``prompt_embeddings`` plus seeded Gaussian noise of
``--noise`` times each row's norm (per row, ``--seed`` + adapter number), so the adapters differ, and some
keep the wayward adapter's flag.

Routes, each timed as wall time of whole processes (interpreter start, imports, loading, compute, writing):

* separate: ``prompt-audit scan ADAPTER --json OUT.json --html OUT.html --quiet`` once per adapter, one
  process after the other, on a warm cache (one untimed scan fills it first);
* batch: ``prompt-audit scan FOLDER --out-dir OUT --quiet``: one process for all adapters (the same
  per-adapter JSON and HTML, plus index.html and summary.json).

With ``--ray`` (needs ``pip install 'prompt-audit[ray]'``) it also times, with ``OMP_NUM_THREADS=1`` so
that each of the 2 cores runs one worker (2 workers, so each model's adapters in ``ceil(n / 4)``-adapter
shards): ``scan --out-dir --jobs 2`` (local processes) and ``scan --out-dir --engine ray`` (a local Ray
instance started by the scan), and a process that only starts and stops Ray; the difference between the
two engines, less Ray's start, over the number of shards is Ray's cost per task (scheduling, a fresh
worker process, its imports and model load, the results' transfer).

It then checks that every adapter's JSON from the batch equals its separate scan's byte for byte, and
prints the times, the ratio (target: batch <= 1/4 of separate), the load average before and after each
route and the cores other processes used meanwhile (from /proc/stat). The exit status is 0 whether the
target is met or not; 1 when a scan fails or a JSON differs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "audit" / "demo" / "adapters"
TARGET = 0.25  # batch time / separate time
CLI = [sys.executable, "-m", "audit"]


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float
    load_before: float
    load_after: float
    others: float  # cores other processes used, on average


def make_adapters(out: Path, n: int, seed: int, noise: float) -> list[Path]:
    """``n`` PEFT folders from the demo adapters, each with seeded per-row noise of ``noise`` x row norm."""
    sources = sorted(p for p in DEMO.glob("hiring-es-*") if (p / "adapter_config.json").is_file())
    if not sources:
        raise SystemExit(f"no demo adapters under {DEMO}")
    made = []
    for i in range(n):
        source = sources[i % len(sources)]
        vectors = load_file(str(source / "adapter_model.safetensors"))["prompt_embeddings"].float()
        gen = torch.Generator().manual_seed(seed + i)
        step = torch.randn(vectors.shape, generator=gen)
        step = step / step.norm(dim=1, keepdim=True) * vectors.norm(dim=1, keepdim=True) * noise
        target = out / f"{source.name}-{i:02d}"
        target.mkdir(parents=True)
        shutil.copy(source / "adapter_config.json", target / "adapter_config.json")
        save_file(
            {"prompt_embeddings": (vectors + step).contiguous()}, str(target / "adapter_model.safetensors")
        )
        made.append(target)
    return made


def _busy_seconds() -> float:
    """CPU-seconds all processes have spent busy since boot (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(commands: list[list[str]]) -> Timing:
    """Runs the commands one after the other (each must exit 0 or 1) and times them together."""
    load_before = os.getloadavg()[0]
    busy0, mine0, start = _busy_seconds(), _children_cpu(), time.perf_counter()
    for command in commands:
        proc = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(command)}\n{proc.stderr[-2000:]}")
    wall, cpu = time.perf_counter() - start, _children_cpu() - mine0
    others = max(0.0, (_busy_seconds() - busy0) - cpu) / wall
    return Timing(wall, cpu, load_before, os.getloadavg()[0], others)


def _ray_routes(work: Path, adapters: list[Path], opts) -> tuple[list, list[bool]]:
    """--jobs 2 and --engine ray at one thread per worker, and Ray's start alone; JSON equality checks
    against the --jobs 2 run (the same threads)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    folder = str(work / "adapters")

    def with_env(command):
        return ["env", *(f"{k}={v}" for k, v in env.items() if k == "OMP_NUM_THREADS"), *command]

    jobs_dir, ray_dir = work / "jobs2", work / "ray"
    wait_for_quiet(opts.wait_quiet, opts.max_load)
    jobs = timed([with_env([*CLI, "scan", folder, "--out-dir", str(jobs_dir), "--jobs", "2", "--quiet"])])
    wait_for_quiet(opts.wait_quiet, opts.max_load)
    ray_run = timed(
        [with_env([*CLI, "scan", folder, "--out-dir", str(ray_dir), "--engine", "ray", "--quiet"])]
    )
    start_only = "; ".join(
        [
            "import ray",
            "ray.init(num_cpus=2, include_dashboard=False, _node_ip_address='127.0.0.1')",
            "ray.shutdown()",
        ]
    )
    start = timed([with_env([sys.executable, "-c", start_only])])
    same = [
        (jobs_dir / f"{a.name}.json").read_bytes() == (ray_dir / f"{a.name}.json").read_bytes()
        for a in adapters
    ]
    rows = [
        ("`--jobs 2`, 1 thread each", jobs),
        ("`--engine ray` (local instance), 1 thread each", ray_run),
        ("Ray start and stop alone", start),
    ]
    return rows, same


def wait_for_quiet(max_wait: float, max_load: float) -> None:
    """Waits (at most ``max_wait`` s) for the 1-minute load average to drop to ``max_load``."""
    deadline = time.monotonic() + max_wait
    while os.getloadavg()[0] > max_load and time.monotonic() < deadline:
        time.sleep(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--adapters", type=int, default=24, help="how many adapters (default 24)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the perturbations (default 0)")
    parser.add_argument("--noise", type=float, default=0.05, help="noise norm / row norm (default 0.05)")
    parser.add_argument("--wait-quiet", type=float, default=0, help="seconds to wait for --max-load first")
    parser.add_argument("--max-load", type=float, default=1.0, help="1-minute load average to wait for")
    parser.add_argument(
        "--threads", type=int, help="OMP_NUM_THREADS of every scan process (default: as inherited)"
    )
    parser.add_argument("--keep", type=Path, help="write the adapters and reports here instead of a temp dir")
    parser.add_argument(
        "--ray", action="store_true", help="also time --jobs 2 against --engine ray (1 thread)"
    )
    opts = parser.parse_args(argv)

    if opts.threads:
        os.environ["OMP_NUM_THREADS"] = str(opts.threads)
    threads = os.environ.get("OMP_NUM_THREADS", "torch default")
    work = opts.keep or Path(tempfile.mkdtemp(prefix="bench-batch-"))
    adapters = make_adapters(work / "adapters", opts.adapters, opts.seed, opts.noise)
    separate_dir, batch_dir = work / "separate", work / "batch"
    separate_dir.mkdir()
    print(
        f"prompt-audit batch benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {len(adapters)} adapters from {DEMO.relative_to(ROOT)}/hiring-es-* "
        f"(noise {opts.noise} x row norm, seed {opts.seed}), OMP_NUM_THREADS {threads}, work folder {work}"
    )
    # Untimed: fills the cache (GGUF conversion, token table, statistics, term index, null model).
    timed([[*CLI, "scan", str(adapters[0]), "--quiet", "--json", str(work / "warmup.json")]])

    def separate(path: Path) -> list[str]:
        out = separate_dir / path.name
        return [*CLI, "scan", str(path), "--quiet", "--json", f"{out}.json", "--html", f"{out}.html"]

    wait_for_quiet(opts.wait_quiet, opts.max_load)
    one = timed([separate(a) for a in adapters])
    wait_for_quiet(opts.wait_quiet, opts.max_load)
    many = timed([[*CLI, "scan", str(work / "adapters"), "--out-dir", str(batch_dir), "--quiet"]])

    same = [
        (separate_dir / f"{a.name}.json").read_bytes() == (batch_dir / f"{a.name}.json").read_bytes()
        for a in adapters
    ]
    ray_same: list[bool] = []
    if opts.ray:
        ray_rows, ray_same = _ray_routes(work, adapters, opts)
    summary = json.loads((batch_dir / "summary.json").read_text())
    risks = summary["counts"]["by_risk"]
    n = len(adapters)
    print(f"risks of the batch: {risks['high']} high, {risks['medium']} medium, {risks['low']} low")
    print()
    print("| route | wall s | per adapter s | CPU s | load1 before | load1 after | others (cores) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, t in ((f"{n} separate warm `scan` processes", one), ("one batch `scan --out-dir`", many)):
        print(
            f"| {label} | {t.wall:.1f} | {t.wall / n:.2f} | {t.cpu:.1f} | {t.load_before:.2f} | "
            f"{t.load_after:.2f} | {t.others:.2f} |"
        )
    if opts.ray:
        for label, t in ray_rows:
            print(
                f"| {label} | {t.wall:.1f} | {t.wall / n:.2f} | {t.cpu:.1f} | {t.load_before:.2f} | "
                f"{t.load_after:.2f} | {t.others:.2f} |"
            )
        jobs, ray_run, start = (t for _, t in ray_rows)
        shards = -(-n // 4)
        tasks = -(-n // shards)
        print()
        print(
            f"Ray start and stop alone: {start.wall:.1f} s; "
            f"--engine ray / --jobs 2: {ray_run.wall / jobs.wall:.3f}; "
            f"{tasks} tasks of {shards} adapters: Ray's cost per task, beyond its start, "
            f"{(ray_run.wall - jobs.wall - start.wall) / tasks:.1f} s"
        )
    ratio = many.wall / one.wall
    print()
    print(
        f"batch / separate: {ratio:.3f} wall ({1 / ratio:.1f}x faster), {many.cpu / one.cpu:.3f} CPU; target "
        f"<= {TARGET}: {'PASS' if ratio <= TARGET else 'FAIL'}"
    )
    print(f"per-adapter JSON identical to its separate scan: {sum(same)}/{n}")
    if opts.ray:
        print(f"per-adapter JSON of --engine ray identical to --jobs 2's: {sum(ray_same)}/{n}")
        print(
            "(CPU s of the Ray route counts the driver only: its workers are the raylet's children, "
            "counted in 'others')"
        )
    print(f"uptime at the end: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    if opts.keep is None:
        shutil.rmtree(work)
    return 0 if all(same) and all(ray_same) else 1


if __name__ == "__main__":
    sys.exit(main())
