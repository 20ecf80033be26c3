"""What the behavioural rule says on one set of renderings, and the sequential plan that picks the set.

:func:`assess` evaluates the rule on the renderings scored so far; :func:`sequential` scores a suite look
by look (audit.behaviour.sequential) and stops at the first look whose verdict is HIGH or LOW.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.behaviour.assemble import Probes, attribute_scores, condition_record
from audit.behaviour.sequential import SEQUENTIAL_METHOD, can_test, looks, restricted, rows_of, spent
from audit.behaviour.stats import attribute_stats, with_qvalues
from audit.behaviour.stats.evidence import group_evidence, name_rates
from audit.behaviour.stats.noninferiority import below_threshold_p
from audit.config import AuditConfig
from audit.records import Level, Sequential, SequentialLook
from audit.verdict.behaviour import gaps, risk_and_verdict, unresolved

# False makes every look of the plan (benchmarks/bench_sequential.py: the stopping rule's placebo over the
# whole plan); the record then lists every look's risk and the report is the last look's.
EARLY_STOP = True


@dataclass(frozen=True)
class Reported:
    """The renderings the report is computed on: the full suite, or a sequential plan's stopping look.
    ``rows``: (n,) their text rows in the full suite; ``log_odds``: unit -> (n,); ``alpha``: the level
    the rule is applied at there; ``levels``/``soft_matrices``: the tested looks' levels and soft-prompt
    matrices (for the sequential placebo); ``record``: what the plan did."""

    probe: Probes
    rows: np.ndarray
    log_odds: dict[str, np.ndarray]
    alpha: float
    levels: list[float] | None
    record: Sequential | None
    assessed: tuple  # what :func:`assess` returned for these renderings
    soft_matrices: list | None = None


def assess(probe: Probes, log_odds: dict[str, np.ndarray], prompts, config: AuditConfig, alpha: float):
    """The rule on one set of renderings: per unit its attribute statistics (q over every unit) and
    evidence, the condition records, the gaps, the unresolved groups and the risk (no calibration).

    Returns (stats, evidence, matrices, conditions, gaps, unresolved, risk, verdict), the first three
    keyed by unit."""
    suite, threshold = probe.suite, config.impact_threshold
    names = list(log_odds)
    matrices = {n: [attribute_scores(probe, a, log_odds[n]) for a in suite.attributes] for n in names}
    flat = with_qvalues(
        [attribute_stats(m, seed=config.seed, alpha=alpha) for n in names for m in matrices[n]]
    )
    k = len(suite.attributes)
    stats = {n: flat[i * k : (i + 1) * k] for i, n in enumerate(names)}
    evidence = {
        n: [
            group_evidence(
                m,
                s.reference_group,
                threshold=threshold,
                alpha=alpha,
                seed=config.seed,
                with_power=n == "soft_prompt",
            )
            for m, s in zip(matrices[n], stats[n])
        ]
        for n in names
    }
    conditions = tuple(
        condition_record(n, text, probe, log_odds[n], stats[n], evidence[n])
        for n, (text, _) in prompts.items()
    )
    soft = conditions[0]
    found = gaps(soft, next(c for c in conditions if c.id == "no_prompt"), threshold, alpha)
    open_ = unresolved(soft, threshold, alpha)
    risk, verdict = risk_and_verdict(soft, found, open_, threshold, alpha)
    return stats, evidence, matrices, conditions, found, open_, risk, verdict


def sequential(suite, probe: Probes, units, run, prompts, config: AuditConfig) -> Reported:
    """Scores the suite look by look (each text once: a look scores only the templates it adds) and stops
    at the first tested look whose risk is HIGH or LOW (audit.behaviour.sequential)."""
    plan = looks(suite, config.alpha, config.seed)
    template_of = np.empty(len(probe.texts), dtype=np.int64)
    for rendering, row in zip(probe.renderings, probe.index):
        template_of[row] = rendering.template
    scored = {n: np.full(len(probe.texts), np.nan) for n in units}
    done = np.zeros(0, dtype=np.int64)
    made, levels, soft_matrices = [], [], []
    for k, step in enumerate(plan):
        rows = rows_of(template_of, step.templates)
        new = np.setdiff1d(rows, done)
        for n, (label, vectors) in units.items():
            scored[n][new] = run(f"{label}, look {k + 1}/{len(plan)}", vectors, new)
        done = rows
        look_probe = subset(probe, rows)
        log_odds = {n: scored[n][rows] for n in units}
        last = k == len(plan) - 1
        tested = last or can_test(suite, step)
        assessed = assess(look_probe, log_odds, prompts, config, step.alpha) if tested else None
        risk = assessed[6] if assessed else None
        if risk == Level.HIGH and not last and not _confirmed(suite, assessed, config, step.alpha):
            risk = Level.MEDIUM  # a gap whose ratio may still be above the threshold: not known yet
        made.append(SequentialLook(len(step.templates), len(look_probe.renderings), step.alpha, tested, risk))
        if tested:
            levels.append(step.alpha)
            soft_matrices.append(assessed[2]["soft_prompt"])
        if last or (EARLY_STOP and tested and risk in (Level.HIGH, Level.LOW)):
            record = Sequential(
                SEQUENTIAL_METHOD,
                tuple(made),
                len(plan),
                spent(plan, k),
                len(probe.renderings),
                suite.n_templates,
            )
            return Reported(look_probe, rows, log_odds, step.alpha, levels, record, assessed, soft_matrices)
    raise AssertionError("unreachable: the last look always stops")


def _confirmed(suite, assessed, config: AuditConfig, alpha: float) -> bool:
    """Whether some gap's impact ratio is significantly below the threshold at ``alpha`` (the mirror of
    the non-inferiority test, H0: ratio >= threshold, p = 1 - its p): an interim HIGH stops only then, so
    that a ratio near the threshold is not judged on a noisy early estimate."""
    matrices, found = assessed[2]["soft_prompt"], assessed[4]
    by_id = {a.id: m for a, m in zip(suite.attributes, matrices)}
    for gap in found:
        m = by_id[gap.attribute]
        rates = name_rates(m)
        mine = rates[m.groups == m.group_ids.index(gap.group)]
        ref = rates[m.groups == m.group_ids.index(gap.reference_group)]
        if mine.size < 2 or ref.size < 2:
            continue
        p = below_threshold_p(
            mine, ref, n_templates=int(m.qualifying.sum()), threshold=config.impact_threshold
        )
        if p <= alpha:
            return True
    return False


def subset(probe: Probes, rows: np.ndarray) -> Probes:
    """The probes restricted to the texts ``rows`` (their renderings only; the suite to their templates)."""
    keep = {int(r): k for k, r in enumerate(rows)}
    pairs = [(r, keep[i]) for r, i in zip(probe.renderings, probe.index) if i in keep]
    templates = tuple(sorted({r.template for r, _ in pairs}))
    return Probes(
        restricted(probe.suite, templates),
        tuple(r for r, _ in pairs),
        tuple(probe.texts[int(r)] for r in rows),
        tuple(k for _, k in pairs),
        probe.labels[rows],
    )
