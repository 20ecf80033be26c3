"""Memory before loading: the causal LM's footprint estimated from its files, checked against what the
device has, so that a model that cannot fit exits 2 with the figure instead of being killed.

The estimate is the weights at the precision they are loaded in (float32: 4 bytes a parameter), plus
:data:`WORKING_SHARE` of that and :data:`WORKING_FLOOR` bytes for the runner's activations, key/value
caches and the runtime. The parameter count comes from the model format (GGUF tensor shapes, or an HF
folder's config instantiated on the meta device), so no weights are needed to refuse a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from audit.errors import AuditInputError

if TYPE_CHECKING:
    from audit.inputs.models import ModelFiles

BYTES_PER_PARAMETER = {"float32": 4, "bfloat16": 2}
WORKING_SHARE = 0.10  # activations and caches, as a share of the weights
WORKING_FLOOR = 512 * 2**20  # the runtime, tokenizer and batches of a small model
GIB = 2**30


@dataclass(frozen=True)
class MemoryEstimate:
    """What loading a causal LM for the behavioural check needs.

    Attributes:
        parameters: parameters of the model (tied matrices counted once).
        precision: what the weights are loaded as (``float32``).
        weight_bytes: ``parameters`` x the precision's bytes.
        total_bytes: weights plus the working share and floor.
    """

    parameters: int
    precision: str
    weight_bytes: int
    total_bytes: int


def estimate(parameters: int, precision: str = "float32") -> MemoryEstimate:
    """The memory a model of ``parameters`` needs at ``precision`` (see the module docstring)."""
    if parameters < 0:
        raise ValueError(f"parameters must be >= 0, got {parameters}")
    weights = parameters * BYTES_PER_PARAMETER[precision]
    return MemoryEstimate(parameters, precision, weights, int(weights * (1 + WORKING_SHARE)) + WORKING_FLOOR)


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device``: the GPU's free bytes (``torch.cuda.mem_get_info``), or the machine's
    ``MemAvailable`` (Linux ``/proc/meminfo``; None where it cannot be read)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    free = meminfo_available(Path("/proc/meminfo"))
    limit = cgroup_free(Path("/sys/fs/cgroup"))
    if limit is None:
        return free
    return limit if free is None else min(free, limit)


def meminfo_available(path: Path) -> int | None:
    """``MemAvailable`` of a ``/proc/meminfo``-style file in bytes, else None."""
    try:
        text = path.read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name == "MemAvailable":
            fields = value.split()
            return int(fields[0]) * 1024 if fields and fields[0].isdigit() else None
    return None


def cgroup_free(root: Path) -> int | None:
    """What a cgroup v2 memory limit leaves (``memory.max`` - ``memory.current``) in bytes; None without
    a limit (``max``) or where the files cannot be read. A container's limit is not in /proc/meminfo."""
    try:
        limit = (root / "memory.max").read_text(encoding="ascii").strip()
        current = (root / "memory.current").read_text(encoding="ascii").strip()
    except OSError:
        return None
    if not (limit.isdigit() and current.isdigit()):
        return None
    return max(0, int(limit) - int(current))


def check_fits(spec: str, need: MemoryEstimate, device: torch.device, free: int | None) -> None:
    """Raises AuditInputError when ``need`` exceeds ``free`` bytes on ``device`` (None: unknown, let
    it load). The message gives both figures and the ways out."""
    if free is None or need.total_bytes <= free:
        return
    where = "this GPU has" if device.type == "cuda" else "this machine has"
    ways = "a smaller model"
    if device.type != "cuda":
        ways = "--device cuda on a GPU that holds it, " + ways
    raise AuditInputError(
        f"the causal LM of {spec} ({need.parameters / 1e9:.2f} B parameters) needs about "
        f"{need.total_bytes / GIB:.1f} GiB in {need.precision} for the behavioural check, but {where} "
        f"{free / GIB:.1f} GiB free",
        f"use {ways}, or a machine with more memory; the geometry scan still runs without --behaviour",
    )


def config_parameters(config: dict) -> int:
    """Parameters of the causal LM an HF ``config.json`` describes, counted on the meta device (no
    weights are read or allocated; no model code from the files is run).

    Raises:
        AuditInputError: transformers does not know the config's ``model_type``, or its fields do not
            describe a model (a wrong type, inconsistent sizes).
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = dict(config)
    model_type = fields.pop("model_type", None)
    try:
        cfg = AutoConfig.for_model(str(model_type), **fields)
    except (KeyError, ValueError) as exc:
        if "Unrecognized model identifier" not in str(exc):
            raise _bad_config(exc) from exc
        raise AuditInputError(
            f"transformers does not know the model type {model_type!r} ({exc})",
            "the behavioural check needs a model type transformers supports",
        ) from exc
    except Exception as exc:  # transformers' field validation raises its own error types
        raise _bad_config(exc) from exc
    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(cfg, trust_remote_code=False)
    except Exception as exc:
        raise _bad_config(exc) from exc
    return sum(p.numel() for p in model.parameters())  # shared (tied) parameters are yielded once


def _bad_config(exc: Exception) -> AuditInputError:
    first = str(exc).strip().splitlines()
    detail = " ".join(line.strip() for line in first[:2]) if first else type(exc).__name__
    return AuditInputError(
        f"config.json does not describe a model transformers can build ({detail})",
        "check the model folder's config.json",
    )


def check_model_fits(files: ModelFiles, device: torch.device, precision: str = "float32") -> MemoryEstimate:
    """Refuses (AuditInputError, exit 2) a causal LM that cannot fit on ``device``, before loading it.

    Returns:
        the estimate, for callers that report it.
    """
    from audit.inputs.formats import model_format

    need = estimate(model_format(files).parameters(files), precision)
    check_fits(files.spec, need, device, available_bytes(device))
    return need
