"""A batch as shards of one base model each, run by a backend: here, local processes or Ray tasks.

:func:`run_batch` is what ``scan --out-dir`` calls: it loads every prompt once to learn its base model
(a prompt that cannot be loaded is an error outcome at once), fingerprints it for ``--resume``, cuts each
model's prompts into shards and hands them to a backend (:mod:`audit.engine.backends`). A shard is
audited by :func:`run_shard`, which is the engine's own :func:`audit.engine.run.scan` on its items: the
worker loads that model's vocabulary, statistics, term index, null model and causal LM once for the
shard. Outcomes reach the listener as they arrive (the CLI writes each adapter's reports then).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from audit.config import AuditConfig
from audit.engine.plan import Item
from audit.engine.run import Listener, Outcome, _items, _model_chooser, scan
from audit.engine.steps import check_options
from audit.errors import AuditInputError
from audit.inputs.models import ModelFiles
from audit.inputs.prompts import load_prompt

MAX_SHARD = 16  # prompts per shard at most: a slow adapter holds back only its shard


@dataclass(frozen=True)
class Shard:
    """Prompts of one base model audited by one task (``model``: the model's spec, for messages)."""

    model: str
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Plan:
    """What a batch will do: the loadable prompts grouped by base model (spec, items; item order), the
    outcomes known before any work (prompts that cannot be loaded), and each loadable prompt's
    fingerprint (its inputs and the run's config, for ``--resume``)."""

    groups: tuple[tuple[str, tuple[Item, ...]], ...]
    failed: tuple[Outcome, ...]
    fingerprints: dict[str, str]

    def shards(self, workers: int, skip: set[str] = frozenset()) -> list[Shard]:
        """Each model's prompts not in ``skip``, cut into shards of :func:`shard_size`."""
        out = []
        for spec, items in self.groups:
            todo = [i for i in items if i.name not in skip]
            size = shard_size(len(todo), workers)
            out += [Shard(spec, tuple(todo[k : k + size])) for k in range(0, len(todo), size)]
        return out


def shard_size(n: int, workers: int) -> int:
    """Prompts per shard for ``n`` prompts of one model on ``workers`` workers: all of them with one
    worker (the model loads once), else about two shards per worker, at most :data:`MAX_SHARD`."""
    if workers <= 1:
        return max(1, n)
    return max(1, min(MAX_SHARD, math.ceil(n / (2 * workers))))


def config_fingerprint(config: AuditConfig, extra: dict | None = None) -> str:
    """sha256 of every option that can change a report (all of AuditConfig but ``progress``) and
    ``extra`` (the report language and formats, the tool version)."""
    fields = {k: str(v) for k, v in asdict(config).items() if k != "progress"}
    text = json.dumps({"config": fields, "extra": extra or {}}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def plan(items: Sequence[Item], config: AuditConfig, *, extra: dict | None = None, lists=None) -> Plan:
    """Loads each prompt: its base model and its fingerprint."""
    from audit.behaviour.stage import model_key

    suite_sha = ""
    if config.behaviour:
        from audit.behaviour.suite import load_suite

        suite_sha = load_suite(config.behaviour).sha256
    base = config_fingerprint(config, extra)
    lists_sha = lists.sha256 if lists is not None else ""
    choose = _model_chooser(config.model)
    groups: dict[ModelFiles, list[Item]] = {}
    failed, prints, keys = [], {}, {}
    for item in items:
        try:
            prompt = load_prompt(item.path, key=config.key)
            files = choose(prompt).files
        except AuditInputError as exc:
            failed.append(Outcome(item, error=str(exc), config=config))
            continue
        if files not in keys:
            keys[files] = model_key(files)
        parts = (base, prompt.sha256, keys[files], suite_sha, lists_sha, item.reference_text or "")
        prints[item.name] = hashlib.sha256("|".join(parts).encode()).hexdigest()
        groups.setdefault(files, []).append(item)
    grouped = tuple((files.spec, tuple(members)) for files, members in groups.items())
    return Plan(grouped, tuple(failed), prints)


def run_shard(items: Sequence[Item], config: AuditConfig, listener: Listener | None = None) -> list[Outcome]:
    """One shard's outcomes: the engine's scan of its items in this process (one model session).
    ``listener`` (in-process runs) receives each outcome as it is known; default: none, and warnings on
    this process's stderr (they are in the reports too)."""
    return scan(list(items), config, listener=listener or Listener(outcome=lambda _: None))


def run_batch(
    prompts: Sequence[Item],
    config: AuditConfig,
    backend,
    *,
    skip: Callable[[Plan], dict[str, Outcome]] | None = None,
    listener: Listener | None = None,
    extra: dict | None = None,
) -> list[Outcome]:
    """Audits a batch through ``backend`` (:mod:`audit.engine.backends`), outcomes in item order.

    Args:
        skip: given the plan, the outcomes already on disk (``--resume``): those prompts are not audited.
        listener: receives each outcome as it arrives (the resumed ones first).
        extra: what else the fingerprints cover (report language and formats).
    """
    listener = listener or Listener()
    check_options(config)
    items = _items(prompts)
    from audit.terms.load import load_wordlists

    lists = load_wordlists(
        user_dirs=config.wordlist_dirs, languages=config.languages, allowlist=config.allowlist
    )
    the_plan = plan(items, config, extra=extra, lists=lists)
    outcomes: dict[str, Outcome] = {}

    def done(outcome: Outcome) -> None:
        outcomes[outcome.name] = outcome
        listener.outcome(outcome)

    for outcome in the_plan.failed:
        done(outcome)
    kept = skip(the_plan) if skip else {}
    for outcome in kept.values():
        done(outcome)
    backend.run(the_plan.shards(backend.workers, set(kept)), config, done)
    return [outcomes[item.name] for item in items]
