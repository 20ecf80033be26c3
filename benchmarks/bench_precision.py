"""Can the behavioural runner use bfloat16 without changing a decision? Times and errors on this CPU.

Usage::

    python benchmarks/bench_precision.py                       # three demo adapters, hiring-es, ~8 min
    python benchmarks/bench_precision.py --adapters audit/demo/adapters/hiring-es-namebias --suite hiring-en

Prints, for this CPU:

* what it has: AMX tiles and AVX-512 bf16 as torch sees them, and the rate of one 2048x640 @ 640x2048
  matmul in float32 and in bfloat16 (GFLOP/s, 1 thread and the run's threads);
* per adapter, one whole suite run (every distinct text, the soft prompt) by the runner in float32
  (the audit's route) and by the same runner on a bfloat16 copy of the model (weights, activations and
  the prompt cast; the output rows read in bfloat16, log-odds compared in float64): wall seconds,
  fp32 / bf16, the share of decisions (``lo > 0``) that differ, the largest and median log-odds
  difference;
* per adapter, what a guard would cost: the margin ``m`` that a seeded 5 % calibration sample measures
  (``--safety`` x its largest difference), the share of texts with ``|lo_bf16| < m`` (those a guarded
  runner reruns in float32), whether every flipped decision lies inside the margin, and the projected
  guarded time ``t_bf16 + (share + 5 %) x t_fp32`` (a lower bound: a rerun subset shares fewer
  prefixes). A guard only keeps decisions; the statistics read the log-odds themselves (permutation
  tests on mean log-odds, power, KL), so they would still differ by up to the largest difference.

The model is loaded once (the packaged Gemma 3 270M, float32 from the cache) and cast once; load times
are not counted. The two routes alternate per adapter; the 1-minute load average is printed before
each run.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "audit" / "demo" / "adapters"
ADAPTERS = [DEMO / f"hiring-es-{n}" for n in ("baseline", "namebias", "wayward")]
CALIBRATION_SHARE = 0.05


def matmul_rate(dtype, threads: int, n: int = 2048, d: int = 640, repeats: int = 8) -> float:
    """GFLOP/s of an (n, d) @ (d, n) matmul in ``dtype`` on ``threads`` threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(n, d).to(dtype), torch.randn(d, n).to(dtype)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    seconds = (time.perf_counter() - t0) / repeats
    torch.set_num_threads(before)
    return 2 * n * d * n / seconds / 1e9


def cpu_figures() -> None:
    import torch

    threads = torch.get_num_threads()
    capability = torch.backends.cpu.get_cpu_capability()
    print(f"torch {torch.__version__}, capability {capability}, threads {threads}")
    amx, bf16 = torch.cpu._is_amx_tile_supported(), torch.cpu._is_avx512_bf16_supported()
    print(f"AMX tiles: {amx}, AVX-512 bf16: {bf16}")
    for t in sorted({1, threads}):
        f32, b16 = matmul_rate(torch.float32, t), matmul_rate(torch.bfloat16, t)
        print(
            f"matmul 2048x640x2048, {t} thread(s): float32 {f32:.0f} GFLOP/s, "
            f"bfloat16 {b16:.0f}, ratio {b16 / f32:.2f}"
        )


def timed_run(lm, vectors, texts, answers) -> tuple[np.ndarray, float, float]:
    """(log-odds, wall seconds, load average before)."""
    from audit.behaviour.runner import answer_log_odds

    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    lo = answer_log_odds(lm, vectors, texts, answers)
    return lo, time.perf_counter() - t0, load


def guard(lo32: np.ndarray, lo16: np.ndarray, safety: float, seed: int = 0) -> dict:
    """What a guard calibrated on a seeded sample would rerun and whether it would catch every flip.

    Args:
        lo32, lo16: (n,) log-odds of the same texts in float32 and bfloat16.
    """
    n = len(lo32)
    sample = np.random.default_rng(seed).choice(n, size=max(1, round(CALIBRATION_SHARE * n)), replace=False)
    margin = safety * float(np.max(np.abs(lo16[sample] - lo32[sample])))
    rerun = np.abs(lo16) < margin
    flips = (lo16 > 0) != (lo32 > 0)
    return {"margin": margin, "rerun_share": float(rerun.mean()), "flips_caught": bool(np.all(rerun[flips]))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", nargs="+", type=Path, default=ADAPTERS)
    parser.add_argument("--suite", default="hiring-es")
    parser.add_argument(
        "--safety", type=float, default=2.0, help="margin = safety x the sample's largest difference"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch

    from audit.behaviour.assemble import probes
    from audit.behaviour.lm import load_causal_lm
    from audit.behaviour.suite import check_answers, load_suite
    from audit.inputs.models import resolve_model
    from audit.inputs.prompts import load_prompt

    cpu_figures()
    lm32 = load_causal_lm(resolve_model("gemma-3-270m"), progress=False)
    lm16 = dataclasses.replace(lm32, model=copy.deepcopy(lm32.model).to(torch.bfloat16))
    suite = load_suite(args.suite)
    texts = list(probes(suite).texts)
    ids = check_answers(suite, lambda s: lm32.tokenizer(s, add_special_tokens=False)["input_ids"])
    answers = (list(ids.positive), list(ids.negative))
    print(f"suite {suite.id} {suite.version}: {len(texts)} distinct texts")
    print(f"margin = {args.safety} x the calibration sample's largest difference")
    for adapter in args.adapters:
        vectors = load_prompt(adapter).vectors
        lo32, t32, load32 = timed_run(lm32, vectors, texts, answers)
        lo16, t16, load16 = timed_run(lm16, vectors, texts, answers)
        diff = np.abs(lo16 - lo32)
        g = guard(lo32, lo16, args.safety)
        projected = t16 + (g["rerun_share"] + CALIBRATION_SHARE) * t32
        print(
            f"{adapter.name}: fp32 {t32:.1f} s (load {load32:.1f}), bf16 {t16:.1f} s (load {load16:.1f}), "
            f"fp32/bf16 {t32 / t16:.2f}; decisions differ {np.mean((lo16 > 0) != (lo32 > 0)):.2%}; "
            f"|diff| max {diff.max():.3f}, median {np.median(diff):.3f}"
        )
        print(
            f"  guard: margin {g['margin']:.3f}, reruns {g['rerun_share']:.1%} of texts, every flip "
            f"caught: {g['flips_caught']}; projected guarded time {projected:.1f} s, "
            f"fp32/guarded {t32 / projected:.2f}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
