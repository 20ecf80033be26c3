"""Names x templates at a fixed number of renderings: what each design costs in interval width and power.

Usage::

    python benchmarks/bench_suite_design.py                  # hiring-es, the three demo adapters, ~12 min
    python benchmarks/bench_suite_design.py --draws 10 --adapters audit/demo/adapters/hiring-es-namebias
    python benchmarks/bench_suite_design.py --scores FILE.npz      # reuse saved log-odds (no model run)
    python benchmarks/bench_suite_design.py --cost                 # one suite run, old design vs new, ~6 min

The current suite's name attribute (24 names per group) is crossed with the 48 templates of its version 1
(``benchmarks/data/<suite>-templates-v1.toml``), and the soft prompt of each adapter is scored on every
rendering once (the behavioural runner, float32, the packaged Gemma 3 270M). From that full grid it
draws designs of ``n`` names per group (half female, half male, in the suite's order of halves) and ``t``
templates (three in four qualifying, as in the suite) with ``n x t = 384`` renderings per group, the size
of version 1 (8 names x 48 templates), plus the whole grid (24 x 48, three times the cost) for reference,
and computes for every compared group, as the audit would:

* ``width``: the impact ratio minus its one-sided 95 % non-inferiority lower bound (what LOW needs to
  clear 0.8; smaller is better);
* ``cleared``: the share of compared groups whose bound is at least 0.8;
* ``detect``: the impact ratio the gap test detects with 80 % power at alpha 0.05 (simulated from the
  reference group's own log-odds, as in the report); ``none`` when no gap is detectable;
* ``min p``: the smallest p the name permutation test can reach with ``n`` names a side.

Each figure is the mean over ``--draws`` seeded draws (seed 0), and over the compared groups. The last
row of each table is the shipped design: the 16 templates of the current suite with its 24 names. It
prints the load average; the statistics are deterministic, the timing is not.

``--cost`` times instead what a user waits for: one whole suite run (every distinct text, soft prompt of
``hiring-es-baseline``, the runner as the audit calls it) under version 1's design (rebuilt exactly from
the current suite: the first 4 names of each half of every group, the ages 26, 29, 31, 34 / 52, 55, 58,
61, the 48 templates) and under the current suite, alternating ``--repeats`` times in one process with the
model loaded once, and prints each run, the medians and the ratio new / old.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ADAPTERS = tuple(
    REPO / "audit" / "demo" / "adapters" / f"hiring-es-{n}" for n in ("baseline", "wayward", "namebias")
)
RENDERINGS = 384  # per group: version 1's 8 names x 48 templates
DESIGNS = ((8, 48), (12, 32), (16, 24), (24, 16), (24, 48))  # the last: the whole grid, 3x the renderings
THRESHOLD, ALPHA = 0.8, 0.05


def study_suite(suite_id: str):
    """The current suite's name attribute crossed with version 1's 48 templates, and the current suite."""
    from audit.behaviour.suite import load_suite
    from audit.behaviour.suite.load import parse_suite

    current = load_suite(suite_id)
    text = (REPO / "audit" / "behaviour" / "suites" / f"{suite_id}.toml").read_text(encoding="utf-8")
    templates = (REPO / "benchmarks" / "data" / f"{suite_id}-templates-v1.toml").read_text(encoding="utf-8")
    full = parse_suite((text[: text.index("[[templates]]")] + templates).encode(), f"{suite_id}-study")
    names = tuple(a for a in full.attributes if a.slot == "name")[:1]  # the origin / race attribute
    return dataclasses.replace(full, attributes=names), current


def version1(full, current):
    """Version 1's design from the current suite: 8 of the 24 names a group, 4 ages a group, 48 templates."""
    from audit.behaviour.suite.records import Group

    old_ages = {"26", "29", "31", "34", "52", "55", "58", "61"}
    name_attr = current.attributes[0]
    first = {v for g in name_attr.groups for v in g.values[:4] + g.values[12:16]}

    def keep(attribute):
        pick = (lambda v: v in first) if attribute.slot == "name" else (lambda v: v in old_ages)
        groups = tuple(Group(g.id, tuple(v for v in g.values if pick(v))) for g in attribute.groups)
        return dataclasses.replace(attribute, groups=groups)

    return dataclasses.replace(
        current, attributes=tuple(keep(a) for a in current.attributes), templates=full.templates
    )


def cost(full, current, repeats: int) -> None:
    from audit.behaviour.assemble import probes
    from audit.behaviour.lm import load_causal_lm
    from audit.behaviour.runner import answer_log_odds
    from audit.behaviour.suite import check_answers
    from audit.inputs.models import resolve_model
    from audit.inputs.prompts import load_prompt

    lm = load_causal_lm(resolve_model("gemma-3-270m"), progress=False)
    ids = check_answers(current, lambda s: lm.tokenizer(s, add_special_tokens=False)["input_ids"])
    prompt = load_prompt(ADAPTERS[0]).vectors
    designs = {
        "old (8 names x 48 templates)": probes(version1(full, current)),
        "new (shipped)": probes(current),
    }
    times = {k: [] for k in designs}
    for i in range(repeats):
        for label, probe in designs.items():
            t0 = time.perf_counter()
            answer_log_odds(lm, prompt, probe.texts, (ids.positive, ids.negative))
            times[label].append(time.perf_counter() - t0)
            print(
                f"  {label} #{i + 1}: {len(probe.texts)} texts in {times[label][-1]:.1f} s, load1 "
                f"{os.getloadavg()[0]:.2f}",
                flush=True,
            )
    old, new = (float(np.median(v)) for v in times.values())
    print(
        f"one suite run: median old {old:.1f} s, new {new:.1f} s, new/old {new / old:.3f} "
        f"({repeats} runs each)"
    )


def score_grid(suite, adapters: tuple[Path, ...]) -> dict[str, np.ndarray]:
    """{adapter name: (48, V) log-odds of the soft prompt}, one runner pass per adapter."""
    from audit.behaviour.assemble import attribute_scores, probes
    from audit.behaviour.lm import load_causal_lm
    from audit.behaviour.runner import answer_log_odds
    from audit.behaviour.suite import check_answers
    from audit.inputs.models import resolve_model
    from audit.inputs.prompts import load_prompt

    lm = load_causal_lm(resolve_model("gemma-3-270m"), progress=False)
    ids = check_answers(suite, lambda s: lm.tokenizer(s, add_special_tokens=False)["input_ids"])
    probe = probes(suite)
    out = {}
    for path in adapters:
        t0 = time.perf_counter()
        lo = answer_log_odds(lm, load_prompt(path).vectors, probe.texts, (ids.positive, ids.negative))
        out[path.name] = attribute_scores(probe, suite.attributes[0], lo).lo
        print(
            f"  scored {path.name}: {len(probe.texts)} texts in {time.perf_counter() - t0:.0f} s", flush=True
        )
    return out


def pick_names(rng, n_per_group: int, n_groups: int, size: int) -> np.ndarray:
    """Column indices: n names per group, half from each half (female, male) of the group's 24."""
    half = size // 2
    cols = []
    for g in range(n_groups):
        for h in (0, 1):
            start = g * size + h * half
            cols.extend(sorted(start + rng.choice(half, n_per_group // 2, replace=False)))
    return np.array(cols)


def pick_templates(rng, labels: np.ndarray, t: int) -> np.ndarray:
    """Template rows: three in four qualifying (positive), the rest negative."""
    pos, neg = np.flatnonzero(labels > 0), np.flatnonzero(labels < 0)
    n_pos = (3 * t) // 4
    return np.sort(
        np.concatenate([rng.choice(pos, n_pos, replace=False), rng.choice(neg, t - n_pos, replace=False)])
    )


def design_figures(lo, labels, groups, group_ids, reference, seed) -> dict[str, float]:
    """Mean width and cleared share over the compared groups of one design, and its detectable ratio (one
    power simulation per design: it depends on the reference group's log-odds and the group size only)."""
    from audit.behaviour.stats import ProbeScores, min_attainable_p, qualifying_from_labels
    from audit.behaviour.stats.evidence import group_evidence
    from audit.behaviour.stats.power import detectable_gap

    scores = ProbeScores(lo, groups, group_ids, qualifying_from_labels(labels), labels, reference)
    found = group_evidence(scores, reference, threshold=THRESHOLD, alpha=ALPHA, seed=seed, with_power=False)
    rates = (scores.lo_qualifying > 0).mean(axis=0)
    ri = group_ids.index(reference)
    ref_rate = rates[groups == ri].mean()
    widths, cleared = [], []
    for e in found:
        ratio = rates[groups == group_ids.index(e.group)].mean() / ref_rate if ref_rate > 0 else np.nan
        widths.append(ratio - e.noninferiority.lower_bound)
        cleared.append(e.noninferiority.passed)
    n = int(np.count_nonzero(groups == ri))
    power = detectable_gap(
        scores.lo_qualifying[:, groups == ri], n, threshold=THRESHOLD, alpha=ALPHA, seed=seed
    )
    return {
        "width": float(np.nanmean(widths)),
        "cleared": float(np.mean(cleared)),
        "detect": np.nan if power.detectable_ratio is None else power.detectable_ratio,
        "none": float(power.detectable_ratio is None),
        "min_p": min_attainable_p(n, n),
    }


def table(name, lo, full, current, draws: int) -> None:
    attribute = full.attributes[0]
    labels = np.array(
        [{"positive": 1, "negative": -1}.get(t.label, 0) for t in full.templates], dtype=np.int8
    )
    size = len(attribute.groups[0].values)
    group_ids = tuple(g.id for g in attribute.groups)
    print(
        f"\n{name}: {attribute.id}, reference {attribute.reference}, {size} names per group, "
        f"{len(labels)} templates"
    )
    print(
        "| names/group | templates | renderings/group | width | cleared | detectable ratio "
        "| none detectable | min p |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    rng = np.random.Generator(np.random.PCG64(0))
    rows = [(n, t, None) for n, t in DESIGNS] + [(size, current.n_templates, "shipped")]
    shipped = [i for i, tpl in enumerate(full.templates) if tpl.text in {c.text for c in current.templates}]
    for n, t, tag in rows:
        figures = []
        for d in range(1 if tag else draws):
            cols = pick_names(rng, n, len(group_ids), size)
            rows_ = np.array(shipped) if tag else pick_templates(rng, labels, t)
            groups = np.repeat(np.arange(len(group_ids)), n)
            figures.append(
                design_figures(
                    lo[np.ix_(rows_, cols)], labels[rows_], groups, group_ids, attribute.reference, (0, d)
                )
            )
        mean = {k: float(np.nanmean([f[k] for f in figures])) for k in figures[0]}
        label = f"{n} ({tag})" if tag else str(n)
        print(
            f"| {label} | {t} | {n * t} | {mean['width']:.3f} | {mean['cleared']:.2f} "
            f"| {mean['detect']:.3f} | "
            f"{mean['none']:.2f} | {mean['min_p']:.2g} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="hiring-es")
    parser.add_argument("--adapters", nargs="*", type=Path, default=list(ADAPTERS))
    parser.add_argument("--draws", type=int, default=20, help="seeded draws per design (default 20)")
    parser.add_argument(
        "--scores", type=Path, help="an .npz of saved log-odds: reused if it exists, else written"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cost", action="store_true", help="time one suite run, old design vs new")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per design with --cost")
    opts = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(opts.threads)
    print(
        f"load average at start: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores; torch {torch.__version__}"
    )
    full, current = study_suite(opts.suite)
    if opts.cost:
        cost(full, current, opts.repeats)
        return
    if opts.scores and opts.scores.exists():
        grids = dict(np.load(opts.scores))
    else:
        grids = score_grid(full, tuple(opts.adapters))
        if opts.scores:
            np.savez(opts.scores, **grids)
    for name, lo in grids.items():
        table(name, lo, full, current, opts.draws)


if __name__ == "__main__":
    main()
