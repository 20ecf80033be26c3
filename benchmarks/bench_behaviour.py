"""Speed of the behavioural model runner against the naive PEFT route, on a demo adapter and a suite.

Usage::

    python benchmarks/bench_behaviour.py [--adapter DIR] [--suite hiring-es] [--threads 2]
        [--naive-sample 24] [--batch-sizes 8,16,32,48,64,128] [--sweep-templates 4]
        [--cache-dir DIR] [--skip-conversion] [--keep-cache]

Each route runs in a fresh subprocess, so every peak RSS belongs to one route:

* load cold: ``load_causal_lm(resolve_model("gemma-3-270m"))`` with ``PROMPT_AUDIT_CACHE`` an empty
  folder: transformers dequantizes the GGUF file, the model and tokenizer are saved to the cache;
* load warm: the same call again, reading the cached float32 safetensors;
* runner: load (warm), render the suite, ``answer_log_odds`` (what the check runs: with single-token
  answers only the two answer rows of the output layer) over every distinct rendering for each
  condition (soft prompt, the adapter's init text as a text prompt, no prompt); ``answer_logprobs``
  (full-vocabulary normaliser) on the naive route's renderings, for the comparison; then the
  batch-size sweep (soft prompt) on the first ``--sweep-templates`` templates' renderings;
* naive: ``AutoModelForCausalLM.from_pretrained(<cached folder>)`` + ``PeftModel.from_pretrained``;
  per rendering, ``peft(**tokenizer(text, return_tensors="pt")).logits`` (every position, the full
  vocabulary), ``log_softmax`` of the last row; on ``--naive-sample`` renderings spread evenly over
  the set, its time per rendering extrapolated to the whole set.

Times are wall-clock seconds of the measured calls (model loading excluded, except in the load
routes, which time the whole subprocess as well). The machine is shared: the script prints the load
average and how many cores other processes used during each route (from ``/proc/stat``).
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ADAPTER = REPO / "audit" / "demo" / "adapters" / "hiring-es-baseline"
MODEL = "gemma-3-270m"
TARGET_SPEEDUP = 5.0
TARGET_MAX_DIFF = 1e-4
TARGET_CHECK_S = 120.0  # three conditions over the whole suite, after the first conversion
GB = 1e9


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB


def _setup(threads: int) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch

    torch.set_num_threads(threads)


def _busy_seconds() -> float:
    """CPU seconds all processes have used since boot (idle and iowait excluded)."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class Meter:
    """Wall and own CPU time of a block, the 1-minute load average before it, and how many cores other
    processes used meanwhile (/proc/stat busy time minus this process's CPU time, per wall second)."""

    def __enter__(self):
        self.load1 = os.getloadavg()[0]
        self.busy, self.cpu, self.t0 = _busy_seconds(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t0
        cpu = time.process_time() - self.cpu
        others = max(0.0, (_busy_seconds() - self.busy - cpu) / wall)
        self.figures = {"wall_s": wall, "cpu_s": cpu, "load1": self.load1, "other_cores": others}
        return False


# ---------------------------------------------------------------------------------------------
# Workers (run in subprocesses)


def worker_load(args) -> dict:
    _setup(args.threads)
    from audit.behaviour.lm import load_causal_lm
    from audit.inputs.models import resolve_model

    t0 = time.perf_counter()
    lm = load_causal_lm(resolve_model(MODEL), progress=False)
    return {
        "load_s": time.perf_counter() - t0,
        "converted": lm.converted,
        "model_type": lm.model_type,
        "peak_rss_gb": _peak_rss_gb(),
    }


def _suite_texts(suite_id: str):
    from audit.behaviour.suite import load_suite, render, unique_texts

    suite = load_suite(suite_id)
    renderings = render(suite)
    return suite, renderings, list(unique_texts(renderings))


def _init_text(adapter: Path) -> str:
    return json.loads((adapter / "adapter_config.json").read_text())["prompt_tuning_init_text"]


def _plan_figures(lm, prompt_rows: int, texts, answers, batch_size: int) -> dict:
    """Tokens the runner runs for these texts: prefix passes, suffix tokens, and padded positions."""
    from audit.behaviour.plan import build_rows, plan_groups

    encoded = [list(ids) for ids in lm.tokenizer(list(texts))["input_ids"]]
    groups = plan_groups(build_rows(encoded, answers), prompt_rows)
    prefix = sum(prompt_rows + g.prefix for g in groups if prompt_rows + g.prefix > 0)
    suffix = padded = 0
    for g in groups:
        lengths = sorted((len(r.tokens) - g.prefix for r in g.rows), reverse=True)
        suffix += sum(lengths)
        padded += sum(
            len(lengths[i : i + batch_size]) * lengths[i] for i in range(0, len(lengths), batch_size)
        )
    naive = sum(prompt_rows + len(e) for e in encoded)
    return {
        "groups": len(groups),
        "prefix_tokens": prefix,
        "suffix_tokens": suffix,
        "padded_suffix_positions": padded,
        "tokens_run": prefix + suffix,
        "naive_tokens": naive,
        "mean_text_tokens": sum(len(e) for e in encoded) / len(encoded),
    }


def _naive_index(n: int, k: int) -> list[int]:
    """The renderings the naive route runs: k spread evenly over the n texts."""
    import numpy as np

    return sorted({round(i) for i in np.linspace(0, n - 1, k)})


def worker_runner(args) -> dict:
    _setup(args.threads)
    import numpy as np
    import torch

    from audit.behaviour.lm import load_causal_lm
    from audit.behaviour.runner import answer_log_odds, answer_logprobs, text_prompt
    from audit.behaviour.suite import check_answers
    from audit.inputs.models import resolve_model
    from audit.inputs.prompts import load_prompt

    lm = load_causal_lm(resolve_model(MODEL), progress=False)
    suite, renderings, texts = _suite_texts(args.suite)
    ids = check_answers(suite, lambda s: lm.tokenizer(s, add_special_tokens=False)["input_ids"])
    answers = (list(ids.positive), list(ids.negative))
    conditions = {
        "soft prompt": load_prompt(Path(args.adapter)).vectors,
        "init text as text prompt": text_prompt(lm, _init_text(Path(args.adapter))),
        "no prompt": torch.zeros(0, lm.d_model),
    }
    out = {
        "n_renderings": len(renderings),
        "n_texts": len(texts),
        "n_templates": suite.n_templates,
        "answers": answers,
        "batch_size": args.batch_size,
        "conditions": [],
    }
    for name, prompt in conditions.items():
        with Meter() as meter:  # what the check runs: log-odds, from the two answer rows alone
            answer_log_odds(lm, prompt, texts, answers, batch_size=args.batch_size)
        figures = _plan_figures(lm, prompt.shape[0], texts, answers, args.batch_size)
        out["conditions"].append({"name": name, "prompt_rows": prompt.shape[0], **meter.figures, **figures})
    # the log-probs themselves (full-vocabulary normaliser) on the naive route's sample, to compare
    index = _naive_index(len(texts), args.naive_sample)
    result = np.zeros((len(texts), 2))
    result[index] = answer_logprobs(
        lm, conditions["soft prompt"], [texts[i] for i in index], answers, batch_size=args.batch_size
    )
    np.save(Path(args.work) / "runner.npy", result)
    n_sweep = args.sweep_templates * len(texts) // suite.n_templates
    sweep_texts = texts[:n_sweep]
    out["sweep"] = []
    for batch_size in args.batch_sizes:
        with Meter() as meter:
            answer_log_odds(lm, conditions["soft prompt"], sweep_texts, answers, batch_size=batch_size)
        out["sweep"].append({"batch_size": batch_size, "n_texts": len(sweep_texts), **meter.figures})
    out["peak_rss_gb"] = _peak_rss_gb()
    return out


def worker_naive(args) -> dict:
    _setup(args.threads)
    import numpy as np
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from audit.cache import root
    from audit.inputs.causal import LM_CACHE_VERSION, gguf_key
    from audit.inputs.models import resolve_model

    folder = root() / "lm" / f"{gguf_key(resolve_model(MODEL).path)}-{LM_CACHE_VERSION}"
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    base = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, args.adapter).eval()
    suite, _, texts = _suite_texts(args.suite)
    answers = json.loads(args.answers)
    pos, neg = answers[0][0], answers[1][0]
    index = _naive_index(len(texts), args.naive_sample)
    rows, tokens = [], 0
    with Meter() as meter, torch.inference_mode():
        for i in index:
            enc = tokenizer(texts[i], return_tensors="pt")
            tokens += enc["input_ids"].shape[1] + model.active_peft_config.num_virtual_tokens
            logp = model(**enc).logits[0, -1].log_softmax(-1)
            rows.append([float(logp[pos]), float(logp[neg])])
    np.save(Path(args.work) / "naive.npy", np.array(rows))
    return {
        "index": index,
        **meter.figures,
        "tokens": tokens,
        "n_texts": len(texts),
        "peak_rss_gb": _peak_rss_gb(),
    }


WORKERS = {"load": worker_load, "runner": worker_runner, "naive": worker_naive}


# ---------------------------------------------------------------------------------------------
# Driver


def run_worker(name: str, args, cache: Path, extra: list[str] | None = None) -> dict:
    out = Path(args.work) / f"{name}.json"
    cmd = [sys.executable, __file__, "--worker", name, "--json", str(out), "--work", args.work]
    cmd += ["--adapter", str(args.adapter), "--suite", args.suite, "--threads", str(args.threads)]
    cmd += ["--batch-size", str(args.batch_size), "--naive-sample", str(args.naive_sample)]
    cmd += [
        "--sweep-templates",
        str(args.sweep_templates),
        "--batch-sizes",
        ",".join(map(str, args.batch_sizes)),
    ]
    cmd += extra or []
    env = {**os.environ, "PROMPT_AUDIT_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    load1 = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, t0 = _busy_seconds(), time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = json.loads(out.read_text())
    result["process"] = {
        "wall_s": wall,
        "cpu_s": cpu,
        "load1": load1,
        "other_cores": max(0.0, (_busy_seconds() - busy0 - cpu) / wall),
    }
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--adapter", default=str(DEFAULT_ADAPTER))
    ap.add_argument("--suite", default="hiring-es")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads in every route (default 1: see BEHAVIOUR.md)"
    )
    ap.add_argument("--batch-size", type=int, default=None, help="runner batch size (default: the runner's)")
    ap.add_argument("--naive-sample", type=int, default=24, help="renderings the naive route runs")
    ap.add_argument("--batch-sizes", default="8,16,32,48,64,128", help="the sweep's batch sizes")
    ap.add_argument(
        "--sweep-templates", type=int, default=4, help="templates whose renderings the sweep runs"
    )
    ap.add_argument(
        "--cache-dir", default=None, help="prompt-audit cache for the routes (default: a temp folder)"
    )
    ap.add_argument("--skip-conversion", action="store_true", help="no cold load (the cache must be filled)")
    ap.add_argument("--keep-cache", action="store_true", help="keep a temp cache folder afterwards")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--answers", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if isinstance(args.batch_sizes, str):
        args.batch_sizes = [int(x) for x in args.batch_sizes.split(",") if x]
    if args.batch_size is None:
        from audit.behaviour.runner import DEFAULT_BATCH_SIZE

        args.batch_size = DEFAULT_BATCH_SIZE
    if args.worker:
        result = WORKERS[args.worker](args)
        Path(args.json).write_text(json.dumps(result))
        return 0

    import numpy as np

    args.work = tempfile.mkdtemp(prefix="bench-behaviour-")
    temp_cache = args.cache_dir is None
    cache = Path(args.cache_dir) if args.cache_dir else Path(tempfile.mkdtemp(prefix="prompt-audit-cache-"))
    print(f"machine: {os.cpu_count()} cores; torch threads per route {args.threads}; `uptime`:")
    print("  " + subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    try:
        loads = []
        if not args.skip_conversion:
            if any(cache.iterdir()):
                raise SystemExit(f"--cache-dir {cache} is not empty: a cold load needs an empty cache")
            loads.append(("load cold (GGUF conversion)", run_worker("load", args, cache)))
        loads.append(("load warm (cached safetensors)", run_worker("load", args, cache)))
        runner = run_worker("runner", args, cache)
        naive = run_worker("naive", args, cache, ["--answers", json.dumps(runner["answers"])])
        report(args, loads, runner, naive, np)
    finally:
        shutil.rmtree(args.work, ignore_errors=True)
        if temp_cache and not args.keep_cache:
            shutil.rmtree(cache, ignore_errors=True)
        elif temp_cache:
            print(f"cache kept in {cache}")
    return 0


def report(args, loads, runner, naive, np) -> None:
    print("\nroutes (each a fresh subprocess; wall/CPU of the whole process, peak RSS of the process):")
    head = ("route", "measured s", "process s", "CPU s", "peak GB", "load1", "others")
    print("  {:34} {:>10} {:>9} {:>7} {:>8} {:>6} {:>6}".format(*head))

    def line(name, measured, res):
        p = res["process"]
        print(
            f"  {name:34} {measured:10.1f} {p['wall_s']:9.1f} {p['cpu_s']:7.1f} {res['peak_rss_gb']:8.2f} "
            f"{p['load1']:6.2f} {p['other_cores']:6.2f}"
        )

    for name, res in loads:
        line(name, res["load_s"], res)
    line(
        f"runner, {len(runner['conditions'])} conditions",
        sum(c["wall_s"] for c in runner["conditions"]),
        runner,
    )
    line(f"naive, {len(naive['index'])} renderings", naive["wall_s"], naive)
    print("  (others: cores used by other processes during the route, from /proc/stat)")

    n = runner["n_texts"]
    print(
        f"\nsuite {args.suite}: {runner['n_templates']} templates, {runner['n_renderings']} renderings, "
        f"{n} distinct texts (the runner scores each distinct text once); answers {runner['answers']}; "
        f"runner batch size {runner['batch_size']}"
    )
    head = ("condition", "prompt", "wall s", "CPU s", "texts/s", "groups", "tokens run", "tok/s", "naive tok")
    print(
        "  {:26} {:>6} {:>7} {:>7} {:>8} {:>6} {:>10} {:>6} {:>9} {:>6} {:>6}".format(
            *head, "load1", "others"
        )
    )
    for c in runner["conditions"]:
        rate, tok_rate = n / c["wall_s"], c["tokens_run"] / c["wall_s"]
        print(
            f"  {c['name']:26} {c['prompt_rows']:6d} {c['wall_s']:7.1f} {c['cpu_s']:7.1f} {rate:8.1f} "
            f"{c['groups']:6d} {c['tokens_run']:10d} {tok_rate:6.0f} {c['naive_tokens']:9d} "
            f"{c['load1']:6.2f} {c['other_cores']:6.2f}"
        )
    total = sum(c["wall_s"] for c in runner["conditions"])
    total_cpu = sum(c["cpu_s"] for c in runner["conditions"])
    print(
        f"  whole check ({len(runner['conditions'])} conditions): {total:.1f} s wall, {total_cpu:.1f} s CPU "
        f"({args.threads} thread{'s' if args.threads > 1 else ''})"
    )
    soft = runner["conditions"][0]
    print(
        f"  soft prompt: mean text {soft['mean_text_tokens']:.1f} tokens; "
        f"prefix tokens {soft['prefix_tokens']}, suffix tokens {soft['suffix_tokens']} "
        f"({soft['padded_suffix_positions']} positions with padding)"
    )

    k = len(naive["index"])
    naive_total, naive_cpu = naive["wall_s"] / k * n, naive["cpu_s"] / k * n
    speedup, speedup_cpu = naive_total / soft["wall_s"], naive_cpu / soft["cpu_s"]
    mine = np.load(Path(args.work) / "runner.npy")[naive["index"]]
    theirs = np.load(Path(args.work) / "naive.npy")
    diff = float(np.abs(mine - theirs).max())
    agree = int(((mine[:, 0] > mine[:, 1]) == (theirs[:, 0] > theirs[:, 1])).sum())
    print(
        "\nnaive route (PEFT, one rendering at a time, full logits at every position): "
        f"{k} renderings in {naive['wall_s']:.1f} s wall ({naive['cpu_s']:.1f} s CPU, load1 "
        f"{naive['load1']:.2f}, others {naive['other_cores']:.2f}) = {naive['wall_s'] / k:.2f} s each, "
        f"{naive['tokens'] / naive['wall_s']:.0f} tok/s; extrapolated to {n} texts: "
        f"{naive_total:.0f} s wall, {naive_cpu:.0f} s CPU"
    )
    print(
        f"soft prompt, runner vs naive (extrapolated): speed-up {speedup:.1f}x in wall time, "
        f"{speedup_cpu:.1f}x in CPU time; max |diff| of log-probs on the {k} common renderings {diff:.2e}; "
        f"same decision {agree}/{k}"
    )

    print("\nbatch-size sweep (soft prompt):")
    for s in runner["sweep"]:
        print(
            f"  batch {s['batch_size']:4d}: {s['n_texts']} texts in {s['wall_s']:6.1f} s = "
            f"{s['n_texts'] / s['wall_s']:6.1f} texts/s, CPU {s['cpu_s']:6.1f} s "
            f"(load1 {s['load1']:.2f}, others {s['other_cores']:.2f})"
        )

    print("\ntargets:")
    checks = [
        (f"runner >= {TARGET_SPEEDUP:g}x faster than naive (soft prompt, wall)", speedup >= TARGET_SPEEDUP),
        (f"same log-probs to {TARGET_MAX_DIFF:g}", diff <= TARGET_MAX_DIFF),
        (f"whole check (3 conditions) <= {TARGET_CHECK_S:g} s", total <= TARGET_CHECK_S),
    ]
    for text, ok in checks:
        print(f"  [{'pass' if ok else 'FAIL'}] {text}")
    print(
        "\n`uptime` at the end: " + subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    )


if __name__ == "__main__":
    sys.exit(main())
