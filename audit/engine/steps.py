"""run_audit: the pipeline, top to bottom, one call per stage. Rendering is a separate call (audit.report).

inputs (prompt, vocabulary, wordlists) -> geometry (projections and per-position measures)
-> evidence (hits, null model, p and q) -> verdict (severity, risk, summary) -> AuditResult
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from audit import __version__
from audit.cache import warn as cache_warn
from audit.config import AuditConfig
from audit.errors import AuditInputError
from audit.evidence.null import NULL_K
from audit.evidence.stage import Findings, SharedEvidence, find
from audit.geometry import measures
from audit.geometry.engine import TopK
from audit.geometry.methods import METHODS, resolve_methods
from audit.geometry.stage import Geometry, measure
from audit.geometry.stats import VocabStats
from audit.geometry.waywardness import prompt_f1
from audit.inputs.identity import TextInit, text_init
from audit.inputs.prompts import SoftPrompt
from audit.inputs.vocab import Vocabulary
from audit.records import (
    AuditResult,
    BehaviourResult,
    Flag,
    ModelInfo,
    PositionResult,
    PromptInfo,
    ReadingFlag,
    WordlistInfo,
)
from audit.terms.schema import Wordlists
from audit.verdict.stage import Verdict, escalate, judge, with_behaviour


def check_options(config: AuditConfig) -> tuple[str, ...]:
    """Validates the options that need no loading; returns the method names."""
    if config.top_k < 1:
        raise AuditInputError(f"--top-k {config.top_k} is not positive", "use --top-k 10 (the default)")
    if config.top_k > NULL_K:
        cache_warn(
            f"--top-k {config.top_k} is above the {NULL_K} neighbours the null model caches: when a "
            f"prompt has hits, its null vectors are ranked again at depth {config.top_k} (about 40 s on a "
            "Llama-size vocabulary, once per model and k; later scans read the cache)",
            once=f"top-k-{config.top_k}",
        )
    if config.max_ablations < 0:
        raise AuditInputError(
            f"--max-ablations {config.max_ablations} is negative", "use 0 to skip ablations"
        )
    check_thresholds(config.impact_threshold, config.alpha)
    check_faithful(config)
    return resolve_methods(config.methods)


def check_faithful(config: AuditConfig) -> None:
    """--faithful-reading's options: with the whole suite of --behaviour, a budget above the one
    confirmation run it keeps, a positive time limit."""
    if not config.faithful_reading:
        return
    if not config.behaviour:
        raise AuditInputError(
            "--faithful-reading searches with the behavioural check", "add --behaviour SUITE, or drop it"
        )
    if config.sequential:
        raise AuditInputError(
            "--faithful-reading confirms its text on the whole suite, which --sequential does not score",
            "drop --sequential (or run the search in a separate scan)",
        )
    budget = config.faithful_budget
    if not (isinstance(budget, (int, float)) and 1 < budget <= 100):
        raise AuditInputError(
            f"--faithful-budget {budget} is not in (1, 100]",
            "give suite-run equivalents above the one confirmation run, e.g. 6 (the default)",
        )
    seconds = config.faithful_seconds
    if seconds is not None and not (isinstance(seconds, (int, float)) and seconds > 0):
        raise AuditInputError(
            f"--faithful-seconds {seconds} is not positive", "give a wall-time limit in seconds, or drop it"
        )


def check_thresholds(impact_threshold: float, alpha: float) -> None:
    """The behavioural rule's thresholds: an impact ratio in (0, 1], a level in (0, 0.5)."""
    if not (isinstance(impact_threshold, (int, float)) and 0 < impact_threshold <= 1):
        raise AuditInputError(
            f"--impact-threshold {impact_threshold} is not in (0, 1]",
            "use a selection-rate ratio such as 0.8 (the four-fifths rule, the default)",
        )
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 0.5):
        raise AuditInputError(
            f"--alpha {alpha} is not in (0, 0.5)", "use a test level such as 0.05 (the default)"
        )


def audit_prompt(
    prompt: SoftPrompt,
    vocab: Vocabulary,
    lists: Wordlists,
    config: AuditConfig,
    *,
    notes: tuple[str, ...] = (),
) -> AuditResult:
    """Projects, flags and scores an already loaded prompt against a vocabulary. No rendering.

    Reads and fills only the on-disk caches (vocabulary statistics, null model, term index).
    ``notes``: what the inputs stage found (model choice, mismatch warnings), printed first.
    """
    scanned = scan_prompt(prompt, vocab, lists, config, notes=notes)
    behaviour = None
    if scanned.config.behaviour:  # loads the whole model: only when asked
        behaviour = behave(scanned, vocab)
    return assemble(scanned, behaviour)


def behave(
    scanned: Scanned, vocab: Vocabulary, shared: SharedEvidence | None = None, lm=None
) -> BehaviourResult:
    """The behavioural check of a scanned prompt (``lm``: the model already loaded; default: loaded
    there), with the found reading's tokens matched against the wordlists like every reading's."""
    from audit.behaviour.stage import check

    tests = behaviour_tests(scanned, vocab)
    result = check(scanned.prompt, vocab.spec, scanned.reference, scanned.config, tests, lm=lm)
    if result.found is None:
        return result
    index = (shared or SharedEvidence(vocab, scanned.geometry.stats, scanned.lists, scanned.config)).index
    flags = reading_flags(result.found.token_ids, vocab, index, scanned.lists)
    return replace(result, found=replace(result.found, flags=flags))


def reading_flags(
    token_ids: tuple[int, ...], vocab: Vocabulary, index, lists: Wordlists
) -> tuple[ReadingFlag, ...]:
    """The wordlist terms a text's tokens spell (whole tokens and multi-token terms' first pieces),
    matched as every neighbour is (audit.evidence.hits), one per position and term."""
    from audit.evidence.hits import find_hits

    ids = torch.tensor(token_ids, dtype=torch.int64)[:, None]
    hits = find_hits({"found": TopK(ids, torch.zeros(ids.shape))}, vocab, index, lists)
    out = {}
    for h in hits:
        term = lists.term(h.term_id)
        out.setdefault(
            (h.position, h.term_id),
            ReadingFlag(
                h.position,
                h.token,
                h.term_id,
                term.lemma,
                term.category,
                term.language,
                not h.partial,
                h.suppressed,
            ),
        )
    return tuple(out.values())


@dataclass(frozen=True)
class Scanned:
    """A prompt's audit before the behavioural check: everything :func:`assemble` needs besides it.

    ``config`` is the scan's, less the methods that do not apply to the model."""

    prompt: SoftPrompt
    model: ModelInfo
    lists: Wordlists
    config: AuditConfig
    reference: str | None
    geometry: Geometry
    findings: Findings
    verdict: Verdict
    notes: tuple[str, ...]


def scan_prompt(
    prompt: SoftPrompt,
    vocab: Vocabulary,
    lists: Wordlists,
    config: AuditConfig,
    *,
    notes: tuple[str, ...] = (),
    stats: VocabStats | None = None,
    tops: dict[str, TopK] | None = None,
    shared: SharedEvidence | None = None,
) -> Scanned:
    """The geometry, evidence and verdict stages of :func:`audit_prompt`. ``stats``, ``tops`` and
    ``shared``: what a batch computed once for all prompts of this model (default: computed here)."""
    config, skipped = applicable_methods(config, vocab)
    reference = config.reference_text or (prompt.peft.init_text if prompt.peft else None)
    init = text_init(prompt, vocab) if config.reference_text is None else None
    geometry = measure(prompt, vocab, config, reference, stats=stats, tops=tops)
    if init is not None:  # F1 against the init as PEFT built it, not the text once
        geometry = replace(geometry, waywardness=init_waywardness(geometry, prompt, vocab, init))
    findings = find(geometry, vocab, lists, config, shared=shared)
    verdict = judge(geometry, findings, lists)
    return Scanned(
        prompt=prompt,
        model=model_info(vocab),
        lists=lists,
        config=config,
        reference=reference,
        geometry=geometry,
        findings=findings,
        verdict=verdict,
        notes=notes + skipped + init_notes(vocab, init) + geometry.notes,
    )


def behaviour_tests(scanned: Scanned, vocab: Vocabulary):
    """What the behavioural check should test from the geometry: the distinct readings, the flagged
    positions to ablate and each position's neighbours (:func:`audit.behaviour.hypotheses.hypotheses`)."""
    from audit.behaviour.hypotheses import hypotheses

    verdict = scanned.verdict
    rankable = ~vocab.tokens.special
    return hypotheses(scanned.geometry, verdict.flags, verdict.risks, scanned.config.max_ablations, rankable)


def assemble(scanned: Scanned, behaviour: BehaviourResult | None) -> AuditResult:
    """The audit's record from the scan and (with ``--behaviour``) the behavioural check."""
    from audit.verdict.explain import checked, with_reasons

    geometry, findings, verdict, config = scanned.geometry, scanned.findings, scanned.verdict, scanned.config
    wordlists = wordlist_infos(scanned.lists, findings)
    placed = positions(geometry, verdict.flags, escalate(verdict.risks, behaviour))
    summary = with_behaviour(verdict.summary, behaviour)
    return AuditResult(
        tool_version=__version__,
        prompt=prompt_info(scanned.prompt),
        model=scanned.model,
        wordlists=wordlists,
        wordlist_bundle=scanned.lists.bundle_version,
        reference_text=scanned.reference,
        methods=geometry.methods,
        agreement_methods=geometry.agreement_methods,
        top_k=geometry.top_k,
        centered_components=config.centered_components,
        languages=tuple(config.languages),
        seed=config.seed,
        fail_on=config.fail_on,
        positions=placed,
        projected_text=geometry.projected_text,
        waywardness=geometry.waywardness,
        summary=with_reasons(summary, placed, geometry.methods, behaviour),
        coverage=findings.coverage,
        notes=scanned.notes,
        methodology=verdict.methodology,
        category_labels=findings.category_labels,
        checked=checked(
            config.languages, geometry.methods, geometry.top_k, wordlists, findings.coverage, behaviour
        ),
        behaviour=behaviour,
    )


def applicable_methods(config: AuditConfig, vocab: Vocabulary) -> tuple[AuditConfig, tuple[str, ...]]:
    """``config`` without the methods that read an output matrix when the model has none (an encoder
    saved without a language-model head), and the note saying so."""
    methods = resolve_methods(config.methods)
    dropped = [m for m in methods if METHODS[m].matrix == "output"] if not vocab.lm_head else []
    if not dropped:
        return config, ()
    kept = tuple(m for m in methods if m not in dropped)
    names = ", ".join(f"'{m}'" for m in dropped)
    if not kept:
        raise AuditInputError(
            f"model '{vocab.spec}' has no output (unembedding) matrix, so {names} cannot run",
            "choose another method (see `prompt-audit methods`)",
        )
    note = (
        f"Model '{vocab.spec}' ({vocab.model_type}) has no output (unembedding) matrix: it was saved "
        f"without a language-model head, so there is nothing tied to its input embeddings and {names} "
        "(which reads the output matrix) was skipped."
    )
    return replace(config, methods=kept), (note,)


def init_waywardness(
    geometry: Geometry, prompt: SoftPrompt, vocab: Vocabulary, init: TextInit
) -> dict[str, dict[str, float]]:
    """Each method's F1 against the TEXT init as PEFT built it (repeated or cut to the prompt's rows),
    both texts decoded alike (segments named, control tokens skipped)."""
    ids = torch.tensor(init.token_ids, dtype=torch.int64)[:, None]
    built = TopK(ids, torch.zeros(ids.shape))
    reference = measures.projected_text(prompt, vocab, built, skip_special=True)
    return {
        m: {
            "prompt_f1": prompt_f1(
                measures.projected_text(prompt, vocab, geometry.tops[m], skip_special=True), reference
            )
        }
        for m in geometry.methods
    }


def init_notes(vocab: Vocabulary, init: TextInit | None) -> tuple[str, ...]:
    """Says that F1 compares with the init as PEFT built it, when that is not the text once."""
    if init is None:
        return ()
    n_rows, n_text = len(init.token_ids), init.n_text_tokens
    if n_rows == n_text:
        return ()
    how = (
        f"repeated to fill the prompt's {n_rows} positions"
        if n_rows > n_text
        else f"cut to the prompt's {n_rows} positions"
    )
    built = vocab.decode(list(init.token_ids))
    shown = built if len(built) <= 160 else built[:157] + "..."
    return (
        f"PEFT's TEXT init embedded the init text's {n_text} tokens {how}: '{shown}'. F1 and drift compare "
        "each reading with that, not with the text once.",
    )


# Putting records together: lookups only, no maths.


def prompt_info(prompt: SoftPrompt) -> PromptInfo:
    return PromptInfo(
        path=str(prompt.path),
        sha256=prompt.sha256,
        format=prompt.format,
        n_tokens=int(prompt.vectors.shape[0]),
        dim=int(prompt.vectors.shape[1]),
        peft_type=prompt.peft.peft_type if prompt.peft else None,
        segments=tuple((s.name, s.start, s.stop) for s in prompt.segments),
    )


def model_info(vocab: Vocabulary) -> ModelInfo:
    return ModelInfo(
        spec=vocab.spec,
        model_type=vocab.model_type,
        vocab_size=vocab.size,
        dim=vocab.dim,
        embed_scale=vocab.embed_scale,
        tied=vocab.tied,
        sha256=vocab.sha256,
        n_rankable=int((~vocab.tokens.special).sum()),
    )


def wordlist_infos(lists: Wordlists, findings: Findings) -> tuple[WordlistInfo, ...]:
    share = {(r.language, r.category): r.share for r in findings.coverage}
    return tuple(
        WordlistInfo(
            f.id,
            f.version,
            f.language,
            f.category,
            f.sha256,
            f.n_terms,
            share.get((f.language, f.category)),
            f.origin,
        )
        for f in sorted(lists.files, key=lambda f: (f.origin, f.id, f.path))
    )


def positions(
    geometry: Geometry, flags: tuple[Flag, ...], risks: dict[int, object]
) -> tuple[PositionResult, ...]:
    """One record per position: its geometry, its flags (active and allow-listed) and its risk."""
    out = []
    for pos in geometry.positions:
        own = [f for f in flags if f.hit.position == pos.index]
        sensitive = {f.hit.token_id for f in own if f.hit.suppressed is None}
        out.append(
            PositionResult(
                index=pos.index,
                segment=pos.segment,
                projections=pos.projections,
                neighbors=pos.neighbors,
                agreement=pos.agreement,
                jaccard=pos.jaccard,
                off_manifold=pos.off_manifold,
                norm_ratio=pos.norm_ratio,
                norm_percentile=pos.norm_percentile,
                drift=pos.drift,
                risk=risks[pos.index],
                flags=tuple(f for f in own if f.hit.suppressed is None),
                suppressed=tuple(f for f in own if f.hit.suppressed is not None),
                map_points=tuple(replace(p, sensitive=p.token_id in sensitive) for p in pos.map_points),
            )
        )
    return tuple(out)
