"""The one audit engine: every front end (a single scan, a batch, the demo, ``--jobs``) calls :func:`scan`.

plan (expand PROMPT arguments into named items) -> load each prompt and choose its base model -> per base
model, one :class:`~audit.engine.session.ModelSession` (vocabulary, statistics, term index, null model
and, for ``--behaviour``, the causal LM loaded once) audits all its prompts -> one :class:`Outcome` per
prompt, in item order. A prompt that cannot be audited is an Outcome with its one-line reason (what a
single scan of it exits 2 with), not a failed run. Rendering and writing are separate
(:mod:`audit.report.writers`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from audit.config import AuditConfig
from audit.engine.plan import Item, collect
from audit.engine.session import Failed, Member, ModelSession, Ready
from audit.engine.steps import check_options
from audit.errors import AuditInputError
from audit.inputs.identity import ModelChoice, choose_model
from audit.inputs.models import ModelFiles
from audit.inputs.prompts import SoftPrompt, load_prompt
from audit.records import AuditResult


@dataclass(frozen=True)
class Outcome:
    """What the engine made of one prompt: its audit, or the one-line reason (exit 2) it has none."""

    item: Item
    result: AuditResult | None = None
    error: str | None = None
    config: AuditConfig | None = None  # the run's options (what the run-level reports state)

    @property
    def name(self) -> str:
        return self.item.name

    @property
    def path(self) -> Path:
        return self.item.path


def _warn_stderr(name: str, text: str) -> None:
    print(f"prompt-audit: warning: {name}: {text}", file=sys.stderr)


def _error_stderr(outcome: Outcome) -> None:
    if outcome.error is not None:
        print(f"prompt-audit: {outcome.name}: error: {outcome.error}", file=sys.stderr)


@dataclass(frozen=True)
class Listener:
    """What the engine tells its caller while it runs.

    Attributes:
        warning: ``(name, text)`` for each warning about a prompt (also in its reports); default: a line
            on stderr naming the prompt.
        outcome: each :class:`Outcome` as soon as it is known (not in item order); default: a line on
            stderr for a prompt that could not be audited.
    """

    warning: Callable[[str, str], None] = _warn_stderr
    outcome: Callable[[Outcome], None] = field(default=_error_stderr)


def scan(
    prompts: Sequence[str | Path | Item],
    config: AuditConfig,
    *,
    jobs: int = 1,
    listener: Listener | None = None,
) -> list[Outcome]:
    """Audits prompts with one config; a single prompt is a batch of one.

    Args:
        prompts: adapter folders, prompt files, folders holding adapters, globs (expanded and named by
            :func:`audit.engine.plan.collect`), or :class:`Item` s taken as they are.
        config: how to audit (the same for every prompt).
        jobs: worker processes (:class:`audit.engine.backends.LocalProcesses`: shards of one base
            model each, every worker loading its shard's model once); 1 runs everything here, loading
            each base model once.
        listener: receives warnings and outcomes as they happen (default: lines on stderr).

    Returns:
        One :class:`Outcome` per prompt, in item (name) order.

    Raises:
        AuditInputError: what is wrong for every prompt (an option, the suite, the wordlists, a path
            that does not exist), before any prompt is loaded.
    """
    listener = listener or Listener()
    if jobs < 1:
        raise AuditInputError(f"--jobs {jobs} is not positive", "use --jobs 1 (the default) or more")
    if jobs > 1:
        from audit.engine.backends import LocalProcesses
        from audit.engine.shards import run_batch

        return run_batch(prompts, config, LocalProcesses(jobs), listener=listener)
    check_options(config)
    items = _items(prompts)
    if config.behaviour:
        from audit.behaviour.suite import load_suite

        load_suite(config.behaviour)  # a bad suite is wrong for every prompt: exit 2 before any work
    from audit.terms.load import load_wordlists

    lists = load_wordlists(
        user_dirs=config.wordlist_dirs, languages=config.languages, allowlist=config.allowlist
    )
    outcomes: dict[str, Outcome] = {}

    def done(outcome: Outcome) -> None:
        outcome = replace(outcome, config=config)
        outcomes[outcome.name] = outcome
        listener.outcome(outcome)

    by_name = {item.name: item for item in items}
    groups: dict[ModelFiles, list[Member]] = {}
    choose = _model_chooser(config.model)
    for item in items:
        try:
            prompt = load_prompt(item.path, key=config.key)
            choice = choose(prompt)
        except AuditInputError as exc:
            done(Outcome(item, error=str(exc)))
            continue
        groups.setdefault(choice.files, []).append(
            Member(item.name, prompt, item.reference_text, choice.notes)
        )
    for files, members in groups.items():
        try:
            session = ModelSession(files, config, lists)
        except AuditInputError as exc:
            for member in members:
                done(Outcome(by_name[member.key], error=str(exc)))
            continue
        for found in session.scan(members, listener.warning):
            item = by_name[found.key]
            if isinstance(found, Failed):
                done(Outcome(item, error=found.error))
            else:
                done(_finish(session, item, found))
    return [outcomes[item.name] for item in items]


def audit_one(path: str | Path, config: AuditConfig, *, listener: Listener | None = None) -> AuditResult:
    """The audit of one prompt path taken as it is (a single scan).

    Raises:
        AuditInputError: the prompt cannot be audited (the same one line a batch gives its error row).
    """
    from audit.engine.plan import single

    quiet = listener or Listener(warning=_warn_unnamed, outcome=lambda _: None)
    (outcome,) = scan([single(path)], config, listener=quiet)
    if outcome.result is None:
        raise AuditInputError(outcome.error or "the prompt could not be audited")
    return outcome.result


def _warn_unnamed(name: str, text: str) -> None:
    print(f"prompt-audit: warning: {text}", file=sys.stderr)


def _items(prompts: Sequence[str | Path | Item]) -> list[Item]:
    """Items as given, and the others expanded (:func:`collect`), in name order; names must differ."""
    given = [p for p in prompts if isinstance(p, Item)]
    specs = [p for p in prompts if not isinstance(p, Item)]
    items = given + (list(collect(specs).items) if specs else [])
    names = [i.name for i in items]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise AuditInputError(f"two prompts are named {twice[0]!r}", "give every Item its own name")
    if not items:
        raise AuditInputError("no prompt to audit", "pass adapter folders, prompt files or globs")
    return sorted(items, key=lambda i: i.name)


def _finish(session: ModelSession, item: Item, ready: Ready) -> Outcome:
    try:
        return Outcome(item, session.finish(ready))
    except AuditInputError as exc:
        return Outcome(item, error=str(exc))


def _model_chooser(given: str | None) -> Callable[[SoftPrompt], ModelChoice]:
    """:func:`choose_model` memoised on what it reads (resolving a packaged model hashes its file)."""
    memo: dict[tuple, ModelChoice] = {}

    def choose(prompt: SoftPrompt) -> ModelChoice:
        peft = prompt.peft
        key = (peft.base_model, peft.gguf_file) if peft else (None, None)
        if key not in memo:
            memo[key] = choose_model(given, peft, prompt.path)  # errors are not memoised: they name the path
        return memo[key]

    return choose
