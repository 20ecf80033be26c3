"""One base model's session: what every prompt of that model shares, loaded once.

The vocabulary (tokenizer and embedding matrices), its statistics, the term index and null model
(:class:`~audit.evidence.stage.SharedEvidence`) when a prompt first needs them, and the causal LM of the
behavioural check on first use. A session audits its prompts with the steps of :mod:`audit.engine.steps`;
every prompt's audit equals the one it gets alone, byte for byte once rendered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from audit.config import AuditConfig
from audit.engine.steps import Scanned, applicable_methods, assemble, behave, scan_prompt
from audit.errors import AuditInputError
from audit.evidence.stage import SharedEvidence
from audit.geometry.stage import project_prompts, statistics
from audit.inputs.formats import load_model
from audit.inputs.identity import WARNING, check_model
from audit.inputs.models import ModelFiles
from audit.inputs.prompts import SoftPrompt
from audit.records import AuditResult
from audit.terms.schema import Wordlists


@dataclass(frozen=True)
class Member:
    """A loaded prompt of this session: its key (the engine's item name), the prompt, the reference
    text it is compared with when it is not the run's, and what choosing its model noted."""

    key: str
    prompt: SoftPrompt
    reference_text: str | None
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Ready:
    """A member scanned (geometry, evidence, verdict), before its behavioural check."""

    key: str
    scanned: Scanned


@dataclass(frozen=True)
class Failed:
    """A member this session could not audit: its one-line reason (exit 2)."""

    key: str
    error: str


class ModelSession:
    """Loads one model's vocabulary and statistics (raising AuditInputError when they cannot be had),
    and its causal LM on first :meth:`lm` call (a failed load is not retried)."""

    def __init__(self, files: ModelFiles, config: AuditConfig, lists: Wordlists) -> None:
        if config.behaviour:
            from audit.behaviour.stage import preflight

            preflight(config, files.spec)  # a bad suite or a non-causal model fails before the scan
        self.files, self.config, self.lists = files, config, lists
        self.vocab = load_model(files, allow_pickle=config.allow_pickle_model, progress=config.progress)
        self.applied, _ = applicable_methods(config, self.vocab)
        self.stats = statistics(self.vocab, self.applied)
        self.shared = SharedEvidence(self.vocab, self.stats, lists, self.applied)
        self._lm = None
        self._lm_error: AuditInputError | None = None

    def scan(self, members: Sequence[Member], warn: Callable[[str, str], None]) -> Iterator[Ready | Failed]:
        """Every member's scan, in order: the identity check of the prompt against this model, then all
        prompts projected in one pass over the vocabulary, then flags and verdict per prompt.
        ``warn(key, text)`` receives each warning the inputs stage noted."""
        checked: list[tuple[Member, tuple[str, ...]]] = []
        for member in members:
            try:
                notes = member.notes + self._identity(member.prompt)
            except AuditInputError as exc:
                yield Failed(member.key, str(exc))
                continue
            for note in notes:
                if note.startswith(WARNING):
                    warn(member.key, note.removeprefix(WARNING))
            checked.append((member, notes))
        if not checked:
            return
        tops = project_prompts([m.prompt for m, _ in checked], self.vocab, self.applied, self.stats)
        for (member, notes), top in zip(checked, tops):
            config = self.config
            if member.reference_text is not None:
                config = replace(config, reference_text=member.reference_text)
            try:
                scanned = scan_prompt(
                    member.prompt,
                    self.vocab,
                    self.lists,
                    config,
                    notes=notes,
                    stats=self.stats,
                    tops=top,
                    shared=self.shared,
                )
            except AuditInputError as exc:
                yield Failed(member.key, str(exc))
                continue
            yield Ready(member.key, scanned)

    def _identity(self, prompt: SoftPrompt) -> tuple[str, ...]:
        config = self.config
        return check_model(
            prompt,
            self.vocab,
            self.files,
            given=config.model,
            mismatch_ok=config.model_mismatch_ok,
            allow_pickle=config.allow_pickle_model,
        )

    def lm(self):
        """The causal LM of this model (loaded once)."""
        from audit.behaviour.lm import load_causal_lm

        if self._lm_error is not None:
            raise self._lm_error
        if self._lm is None:
            try:
                self._lm = load_causal_lm(
                    self.files, device=self.config.device, progress=self.config.progress
                )
            except AuditInputError as exc:
                self._lm_error = exc
                raise
        return self._lm

    def finish(self, ready: Ready) -> AuditResult:
        """The audit's record, running the behavioural check here when the scan asks for one."""
        behaviour = None
        if ready.scanned.config.behaviour:
            behaviour = behave(ready.scanned, self.vocab, self.shared, lm=self.lm())
        return assemble(ready.scanned, behaviour)


def prepare(config: AuditConfig):
    """Fills every on-disk cache a scan of ``config.model`` reads, so the first scan is as fast as later
    ones: GGUF conversion, token table, vocabulary statistics, term index (``config``'s wordlists) and
    the null model for ``config.methods`` (seed, depth and removed directions as in ``config``).
    Returns the vocabulary."""
    from audit.engine.steps import check_options
    from audit.evidence.stage import prepare_evidence
    from audit.geometry.methods import resolve_methods
    from audit.inputs.models import resolve_model
    from audit.terms.load import load_wordlists

    check_options(config)
    if not config.model:
        raise AuditInputError("prepare needs --model", "e.g. --model gemma-3-270m")
    vocab = load_model(
        resolve_model(config.model), allow_pickle=config.allow_pickle_model, progress=config.progress
    )
    applied, _ = applicable_methods(config, vocab)  # what a scan of this model computes
    stats = statistics(vocab, applied)
    lists = load_wordlists(
        user_dirs=config.wordlist_dirs, languages=config.languages, allowlist=config.allowlist
    )
    prepare_evidence(vocab, stats, lists, resolve_methods(applied.methods), applied)
    return vocab
