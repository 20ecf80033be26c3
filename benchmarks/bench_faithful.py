"""The faithful-reading search on the demo adapters: its cost in suite-run equivalents and what it finds.

Usage::

    python benchmarks/bench_faithful.py [--out DIR] [--threads 2] [--rerun]

Runs ``prompt-audit demo --faithful-reading --out DIR`` in this process (Gemma 3 270M, ``hiring-es``, the
whole suite, the default budget) with two timers around the stage's functions:

* each whole-suite run of a prompt (``audit.behaviour.stage._score``); the soft prompt's own run of an
  adapter is that adapter's **suite run**, the unit of cost, measured in the same process and minute;
* each search (``audit.behaviour.stage.find_reading``): its wall time, from the start of its gradient
  to the end of its confirmation run.

It prints, per adapter, the suite run, the search's wall time in suite-run equivalents, the texts the
search scored (its own count, in suite runs), and what it found: agreement and KL against the best
projection's, the swaps kept, the text and its flags. The reports in DIR are the demo's, so they show the
found reading as a reviewer sees it. ``--rerun`` runs the demo a second time into DIR/rerun (the run cache
now warm: the suite runs, samples and screens are read back, the gradients recomputed) and compares every
file byte for byte. Run it on an empty run cache (``PROMPT_AUDIT_CACHE`` pointing at a fresh folder that
holds only the model conversions, or a machine that has never run the behavioural check) for cold figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import audit.behaviour.stage as stage
from audit.cli import main
from audit.demo.run import demo_adapters


def _timed(records: list, name: str, fn):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        records.append((name, args, time.perf_counter() - t0))
        if name == "search":  # as it happens: the whole demo takes over an hour here
            print(
                f"  search {records[-1][2]:.1f} s, {out.suite_runs:.2f} suite runs of texts, "
                f"improved {out.improved}, stopped {out.stopped}",
                flush=True,
            )
        return out

    return wrapper


RECORDS: list = []  # (name, args, seconds) of every timed call of the current demo
stage._score = _timed(RECORDS, "run", stage._score)
stage.find_reading = _timed(RECORDS, "search", stage.find_reading)


def _demo(out: Path) -> tuple[float, list]:
    RECORDS.clear()
    records = RECORDS
    t0 = time.perf_counter()
    code = main(["demo", "--faithful-reading", "--out", str(out), "--quiet"])
    if code not in (0, 1):
        sys.exit(f"demo exited {code}")
    return time.perf_counter() - t0, list(records)


def _adapters(records: list) -> list[tuple[float, float]]:
    """(suite run s, search s) per adapter, in the order the demo audits them."""
    out, suite = [], None
    for name, args, seconds in records:
        if name == "run" and args[4] == "soft_prompt" and args[1].ndim == 2:
            suite = seconds
        elif name == "search":
            out.append((suite, seconds))
    return out


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="reports/sample-faithful", help="the demo's output folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rerun", action="store_true", help="run again and compare every file")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; threads {args.threads}")
    total, records = _demo(out)
    timings = _adapters(records)
    names = [a.name for a in demo_adapters()]
    print(f"demo with --faithful-reading: {total:.1f} s")
    for name, (suite, search) in zip(names, timings):
        b = json.loads((out / f"{name}.json").read_text())["behaviour"]
        f, s = b["found"], b["found"]["search"]
        best = max(b["readings"], key=lambda r: (r["agreement"], -r["kl"]))
        print(
            f"{name:<20} suite run {suite:6.1f} s  search {search:7.1f} s = {search / suite:5.2f} suite runs"
            f"  (texts scored {s['suite_runs']:.2f} suite runs: {s['screened']} screened, {s['evaluated']}"
            f" sampled, {s['gradients']} gradients; stopped: {s['stopped']})"
        )
        print(
            f"{'':<20} best projection {'/'.join(best['methods'])}: agreement {best['agreement']:.4f}"
            f" kl {best['kl']:.4f} | found: agreement {f['agreement']:.4f} kl {f['kl']:.4f}"
            f" improved {s['improved']} swaps {len(s['swaps'])} faithful {f['faithful']}"
        )
        changes = ", ".join(f"{c['position']}: {c['nearest']!r}->{c['token']!r}" for c in f["changes"])
        flags = ", ".join(sorted({x["lemma"] for x in f["flags"] if not x["suppressed"]}))
        print(f"{'':<20} text {f['text']!r}; changes vs nearest: {changes or 'none'}", flush=True)
        print(f"{'':<20} flagged terms in the found text: {flags or 'none'}", flush=True)
    if args.rerun:
        again = out / "rerun"
        t, _ = _demo(again)
        files = sorted(p.name for p in out.iterdir() if p.is_file())
        same = [n for n in files if (out / n).read_bytes() == (again / n).read_bytes()]
        print(f"rerun (warm run cache): {t:.1f} s; files byte-identical: {len(same)}/{len(files)}")


if __name__ == "__main__":
    main_bench()
