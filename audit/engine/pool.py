"""``--jobs N``: the engine's behavioural checks in N worker processes, each with its own copy of the model.

Each worker runs with this process's torch thread count, so that its float32 reductions are split as a
check run here splits them and its reports are byte-identical to a single scan's (with fewer threads the
last digits of log-odds differ); set ``OMP_NUM_THREADS`` or ``torch.set_num_threads`` before the run to
give each worker fewer. A worker keeps one causal LM loaded between its tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from audit.config import AuditConfig
from audit.engine.session import Ready
from audit.engine.steps import assemble, behaviour_tests
from audit.errors import AuditInputError
from audit.inputs.models import ModelFiles
from audit.inputs.prompts import SoftPrompt
from audit.records import AuditResult, BehaviourResult

_WORKER_MODEL: dict[tuple, object] = {}  # (files, device) -> the worker's CausalLM; one model at a time


def behaviour_pool(
    pending: Sequence[tuple[Ready, ModelFiles]], jobs: int
) -> list[tuple[str, AuditResult | None, str | None]]:
    """Runs the pending behavioural checks in ``jobs`` spawned processes.

    Returns:
        (key, result, error) per pending scan, in order: the assembled audit, or the one-line reason.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import torch

    threads = torch.get_num_threads()
    context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
    out: list[tuple[str, AuditResult | None, str | None]] = []
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(pending)), mp_context=context, initializer=_init_worker, initargs=(threads,)
    ) as pool:
        futures = []
        for ready, files in pending:
            s = ready.scanned  # only what the check reads: a Scanned holds the vocabulary statistics
            job = (s.prompt, files, s.model.spec, s.reference, s.config, behaviour_tests(s))
            futures.append(pool.submit(_behaviour_job, *job))
        for (ready, _), future in zip(pending, futures):
            try:
                out.append((ready.key, assemble(ready.scanned, future.result()), None))
            except AuditInputError as exc:
                out.append((ready.key, None, str(exc)))
    return out


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _behaviour_job(
    prompt: SoftPrompt, files: ModelFiles, spec: str, reference: str | None, config: AuditConfig, tests
) -> BehaviourResult:
    from audit.behaviour.lm import load_causal_lm
    from audit.behaviour.stage import check

    config = replace(config, progress=False)  # bars of several processes would interleave
    key = (files, config.device)
    if key not in _WORKER_MODEL:
        _WORKER_MODEL.clear()
        _WORKER_MODEL[key] = load_causal_lm(files, device=config.device, progress=False)
    return check(prompt, spec, reference, config, tests, lm=_WORKER_MODEL[key])
