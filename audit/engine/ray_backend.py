"""``--engine ray``: a batch's shards as Ray tasks (the optional extra ``prompt-audit[ray]``).

Each task is :func:`audit.engine.shards.run_shard` on one shard (prompts of one base model): the worker
loads that model once and returns picklable outcomes, which the driver writes as they arrive. Resources
per task: ``threads`` CPUs (the driver's torch thread count, so that reductions, and so reports, are
those of a local run), the memory estimated for the shard's causal LM plus the geometry's working set,
and one GPU with ``--device cuda``. Ray retries a task whose worker was lost (``max_retries``), never a
task that raised: input errors are outcomes, not exceptions.

Workers read the adapters either where the driver names them (a file system every worker mounts at the
same path), or from the bytes the driver ships with the task (``ship=True``): the files are written to
a temporary folder on the worker, audited there, and the outcome is given back the driver's path.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from audit.config import AuditConfig
from audit.engine.plan import Item
from audit.engine.run import Outcome
from audit.engine.shards import Shard, run_shard
from audit.errors import AuditInputError

MAX_RETRIES = 3  # a lost worker (killed, out of memory, node gone): the task runs again, up to this
GEOMETRY_BYTES = 1 << 30  # the vocabulary statistics and projections of a small model, beside the LM
SHIP_LIMIT = 256 << 20  # bytes of adapter files one task may carry with --ray-ship-adapters


def import_ray():
    """Ray, or the one-line error that names the extra (exit 2)."""
    try:
        import ray
    except ImportError as exc:
        raise AuditInputError(
            "--engine ray needs Ray, which is not installed",
            "pip install 'prompt-audit[ray]' (or use --engine local)",
        ) from exc
    return ray


def connect(address: str | None, *, cpus: int | None = None):
    """Joins the cluster at ``address`` (``auto``: the one this machine belongs to; ``HOST:PORT``) or,
    with None, starts a Ray instance on this machine listening on the loopback interface only."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    try:
        if address is None:
            ray.init(
                num_cpus=cpus or os.cpu_count(),
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                log_to_driver=True,
            )
        else:
            ray.init(address=address, log_to_driver=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "a local Ray instance" if address is None else f"the Ray cluster at {address}"
        raise AuditInputError(
            f"cannot start or join {where} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
            "check --ray-address (auto, or HOST:PORT of the head node's GCS), or drop it to start one here",
        ) from exc
    return ray


@dataclass
class RayBackend:
    """Shards as Ray tasks; ``workers`` concurrent tasks (cluster CPUs / threads per task)."""

    address: str | None = None
    threads: int = 1
    ship: bool = False
    memory: dict[str, int] = field(default_factory=dict)  # model spec -> bytes per task
    workers: int = 1
    cpus_per_task: int = 1

    def start(self) -> RayBackend:
        """Starts or joins Ray; sizes the tasks: ``threads`` CPUs each (torch runs that many threads, as
        the local run does), at most the CPUs of the largest node, so that every task can be placed."""
        ray = connect(self.address)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        largest = max(
            (int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")), default=cpus
        )
        self.cpus_per_task = max(1, min(self.threads, largest))
        self.workers = max(1, cpus // self.cpus_per_task)
        return self

    def run(self, shards: Sequence[Shard], config: AuditConfig, deliver) -> None:
        ray = import_ray()
        quiet = replace(config, progress=False)
        task = ray.remote(RAY_TASK["shard"])
        pending = {}
        for shard in shards:
            options = {
                "num_cpus": self.cpus_per_task,
                "max_retries": MAX_RETRIES,
                "retry_exceptions": False,
                "num_gpus": 1 if config.device == "cuda" else 0,
            }
            if shard.model not in self.memory:
                self.memory[shard.model] = task_memory(shard.model, config)
            options["memory"] = self.memory[shard.model]
            payload = ship_payload(shard.items) if self.ship else None
            ref = task.options(**options).remote(shard.items, quiet, self.threads, payload)
            pending[ref] = shard
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                shard = pending.pop(ready[0])
                try:
                    outcomes = ray.get(ready[0])
                except Exception as exc:  # a worker lost MAX_RETRIES + 1 times, or an internal error
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    outcomes = [
                        Outcome(
                            item, error=f"the Ray task auditing this adapter failed ({reason})", config=config
                        )
                        for item in shard.items
                    ]
                for outcome in outcomes:
                    deliver(outcome)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise


def task_memory(spec: str, config: AuditConfig) -> int:
    """Bytes one task of model ``spec`` declares: the causal LM's estimate (audit.behaviour.memory, which
    matches the 1.8-2.3 GB measured per process for Gemma 3 270M) with --behaviour, plus the geometry's
    working set."""
    if not config.behaviour:
        return GEOMETRY_BYTES
    from audit.behaviour.memory import estimate
    from audit.inputs.formats import model_format
    from audit.inputs.models import resolve_model

    files = resolve_model(spec)
    return estimate(model_format(files).parameters(files)).total_bytes + GEOMETRY_BYTES


def ship_payload(items: Sequence[Item]) -> dict[str, tuple[bool, dict[str, bytes]]]:
    """item name -> (whether it is a folder, path relative to that folder -> bytes): what a worker needs
    to read the prompt without the driver's file system (a folder's files, or the one prompt file)."""
    out, total = {}, 0
    for item in items:
        path = Path(item.path)
        folder = path.is_dir()
        files = sorted(p for p in path.rglob("*") if p.is_file()) if folder else [path]
        if not folder and (path.parent / "adapter_config.json").is_file():  # a file of an adapter folder
            files.append(path.parent / "adapter_config.json")
        base = path if folder else path.parent
        out[item.name] = (folder, {str(p.relative_to(base)): p.read_bytes() for p in files})
        total += sum(len(b) for b in out[item.name][1].values())
        if total > SHIP_LIMIT:
            raise AuditInputError(
                f"the adapters of one shard exceed {SHIP_LIMIT >> 20} MiB to ship to Ray workers",
                "put the adapters on storage every worker mounts and drop --ray-ship-adapters",
            )
    return out


def _ray_shard(items, config: AuditConfig, threads: int, payload) -> list[Outcome]:
    """The Ray task: one shard, on the worker (see the module docstring)."""
    import torch

    torch.set_num_threads(threads)
    if payload is None:
        missing = [i for i in items if not Path(i.path).exists()]
        readable = [i for i in items if i not in missing]
        host = socket.gethostname()
        lost = [
            Outcome(
                i,
                error=f"the Ray worker on {host} cannot read {i.path}: put the adapters on storage every "
                "worker mounts at the same path, or pass --ray-ship-adapters",
                config=config,
            )
            for i in missing
        ]
        return lost + (run_shard(readable, config) if readable else [])
    with tempfile.TemporaryDirectory(prefix="prompt-audit-ship-") as tmp:
        local = []
        for item in items:
            is_folder, files = payload[item.name]
            folder = Path(tmp) / str(len(local)) / Path(item.path).name
            base = folder if is_folder else folder.parent
            for rel, data in files.items():
                target = base / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            local.append(replace(item, path=folder if is_folder else base / next(iter(files))))
        outcomes = run_shard(local, config)
    by_name = {i.name: i for i in items}
    shipped = {i.name: i.path for i in local}
    return [_as_driver(o, by_name[o.name], shipped[o.name]) for o in outcomes]


def _as_driver(outcome: Outcome, item: Item, shipped: Path) -> Outcome:
    """The outcome of a shipped prompt, given back the driver's item and path (in its error, too)."""
    result = outcome.result
    if result is not None:
        result = replace(result, prompt=replace(result.prompt, path=str(item.path)))
    error = outcome.error.replace(str(shipped), str(item.path)) if outcome.error else outcome.error
    return replace(outcome, item=item, result=result, error=error)


# The remote function's body, looked up at each run so that tests can wrap it (a worker killed mid-run).
RAY_TASK = {"shard": _ray_shard}
