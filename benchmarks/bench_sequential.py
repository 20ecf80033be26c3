"""The sequential stop on the demo adapters: the full design against ``--sequential``, in one run.

Usage::

    python benchmarks/bench_sequential.py [--threads 2] [--no-full]

Three passes over the packaged demo adapters (Gemma 3 270M, ``hiring-es``), each one engine ``scan``
(model loaded once per pass; the first adapter of a pass includes that load, warm from the cache, and the
context conditions shared by the adapters):

1. the full design (what ``prompt-audit demo`` writes);
2. ``--sequential``: the verdict, where it stopped, the renderings scored, the time;
3. ``--sequential`` with every look made (``audit.behaviour.assess.EARLY_STOP = False``): the
   stopping rule's own placebo false-alarm rate over the whole plan (all three looks, each at its
   level), which is what "the error rate with stopping on" means, and each look's risk.

It prints one line per adapter and pass, then the ratios. Every pass scores its own texts (the run
cache keys the sequential blocks apart from whole-suite runs), so the timings compare like with like.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

from audit.config import AuditConfig
from audit.demo.run import DEMO_MODEL, DEMO_SUITE, demo_adapters
from audit.engine import Item, Listener, scan


def _pass(label: str, config: AuditConfig) -> dict[str, tuple]:
    items = [Item(a.name, a.path, a.metrics.get("prompt_tuning_init_text")) for a in demo_adapters()]
    out = {}
    clock = [time.perf_counter()]

    def arrived(outcome) -> None:  # the engine reports each adapter as soon as it is done
        now = time.perf_counter()
        b = outcome.result.behaviour
        s = b.sequential
        looks = (
            "full design"
            if s is None
            else " -> ".join(
                f"{look.n_templates}t:{look.risk.label if look.risk else '-'}" for look in s.looks
            )
        )
        c = b.calibration
        print(
            f"{label:<12} {outcome.name:<20} risk {b.risk.label:<6} renderings {b.n_renderings:>5} "
            f"time {now - clock[0]:6.1f} s  looks {looks}  placebo {c.n_false_alarms}/{c.n_tests} = "
            f"{c.rate:.4f} (nominal {c.nominal:.4f} +- {c.mc_error:.4f})",
            flush=True,
        )
        out[outcome.name] = (b.risk, b.n_renderings, now - clock[0], c)
        clock[0] = now

    scan(items, config, listener=Listener(outcome=arrived))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-full", action="store_true", help="skip the full-design pass")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"load average at start: {os.getloadavg()}", file=sys.stderr)
    base = AuditConfig(model=DEMO_MODEL, behaviour=DEMO_SUITE, progress=False)
    full = None if args.no_full else _pass("full design", base)
    seq = _pass("sequential", replace(base, sequential=True))
    import audit.behaviour.assess as assess

    assess.EARLY_STOP = False
    every = _pass("every look", replace(base, sequential=True))
    print(f"load average at end: {os.getloadavg()}", file=sys.stderr)
    for name in seq:
        same = "n/a" if full is None else str(full[name][0] == seq[name][0] == every[name][0])
        ratio = "" if full is None else f", time full/sequential {full[name][2] / seq[name][2]:.2f}"
        print(f"{name}: same verdict {same}{ratio}")
    if full is not None:
        total_full = sum(v[2] for v in full.values())
        total_seq = sum(v[2] for v in seq.values())
        print(
            f"all adapters: full {total_full:.1f} s, sequential {total_seq:.1f} s, "
            f"ratio {total_full / total_seq:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
