"""Where a batch's shards run (:func:`audit.engine.shards.run_batch`): here, in local processes, or on
a Ray cluster (:mod:`audit.engine.ray_backend`). Every backend has ``workers`` (how many shards run at
once, which sizes the shards) and ``run(shards, config, deliver)``, which calls ``deliver`` with each
outcome as it arrives and returns when every shard is done.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from audit.config import AuditConfig
from audit.engine import shards as _shards
from audit.engine.run import Listener, Outcome
from audit.engine.shards import Shard

Deliver = Callable[[Outcome], None]


@dataclass(frozen=True)
class InProcess:
    """Shards one after another in this process (``--jobs 1``): one shard per model, each outcome
    delivered as soon as it is known."""

    workers: int = 1

    def run(self, shards: Sequence[Shard], config: AuditConfig, deliver: Deliver) -> None:
        for shard in shards:
            _shards.run_shard(shard.items, config, Listener(outcome=deliver))


@dataclass(frozen=True)
class LocalProcesses:
    """``--jobs N``: shards in N spawned processes of this machine.

    Each worker runs with this process's torch thread count, so that its float32 reductions are split
    as here and its reports are byte-identical to a ``--jobs 1`` run's (set ``OMP_NUM_THREADS`` or
    ``torch.set_num_threads`` before the run to give each fewer). Each worker loads a shard's model once.
    """

    workers: int

    def run(self, shards: Sequence[Shard], config: AuditConfig, deliver: Deliver) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        import torch

        if not shards:
            return
        context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(shards)),
            mp_context=context,
            initializer=set_threads,
            initargs=(torch.get_num_threads(),),
        )
        quiet = _quiet(config)
        try:
            futures = [pool.submit(_shards.run_shard, shard.items, quiet) for shard in shards]
            for future in as_completed(futures):
                for outcome in future.result():
                    deliver(outcome)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _quiet(config: AuditConfig) -> AuditConfig:
    """The config a worker runs with: no progress bars (bars of several processes would interleave)."""
    from dataclasses import replace

    return replace(config, progress=False)


def local(jobs: int):
    """The local backend for ``--jobs N``."""
    return InProcess() if jobs == 1 else LocalProcesses(jobs)
