"""run_audit: the pipeline, top to bottom, one call per stage. Rendering is a separate call (audit.report).

inputs (prompt, vocabulary, wordlists) -> geometry (projections and per-position measures)
-> evidence (hits, null model, p and q) -> verdict (severity, risk, summary) -> AuditResult
"""

from __future__ import annotations

from dataclasses import replace

from audit import __version__
from audit.config import AuditConfig
from audit.errors import AuditInputError
from audit.evidence.stage import Findings, find
from audit.geometry.methods import resolve_methods
from audit.geometry.stage import Geometry, measure
from audit.inputs.formats import load_vocabulary
from audit.inputs.prompts import SoftPrompt, load_prompt
from audit.inputs.vocab import Vocabulary
from audit.records import AuditResult, Flag, ModelInfo, PositionResult, PromptInfo, WordlistInfo
from audit.terms.load import load_wordlists
from audit.terms.schema import Wordlists
from audit.verdict.stage import escalate, judge, with_behaviour


def resolve_model_spec(config: AuditConfig, prompt: SoftPrompt) -> str:
    if config.model:
        return config.model
    if prompt.peft is not None and prompt.peft.base_model:
        return prompt.peft.base_model
    raise AuditInputError(
        f"no model given and {prompt.path} names no base model",
        "pass --model (a packaged alias such as gemma-3-270m, a .gguf file or a model directory)",
    )


def check_options(config: AuditConfig) -> tuple[str, ...]:
    """Validates the options that need no loading; returns the method names."""
    if config.top_k < 1:
        raise AuditInputError(f"--top-k {config.top_k} is not positive", "use --top-k 10 (the default)")
    if config.max_ablations < 0:
        raise AuditInputError(
            f"--max-ablations {config.max_ablations} is negative", "use 0 to skip ablations"
        )
    return resolve_methods(config.methods)


def run_audit(config: AuditConfig) -> AuditResult:
    """Loads the prompt, vocabulary and wordlists, then audits (see :func:`audit_prompt`)."""
    check_options(config)  # fail fast, before any loading
    prompt = load_prompt(config.prompt, key=config.key)
    spec = resolve_model_spec(config, prompt)
    if config.behaviour:
        from audit.behaviour.stage import preflight

        preflight(config, spec)  # a bad suite or a non-causal model fails before the scan
    vocab = load_vocabulary(spec, allow_pickle=config.allow_pickle_model, progress=config.progress)
    lists = load_wordlists(
        user_dirs=config.wordlist_dirs, languages=config.languages, allowlist=config.allowlist
    )
    return audit_prompt(prompt, vocab, lists, config)


def audit_prompt(prompt: SoftPrompt, vocab: Vocabulary, lists: Wordlists, config: AuditConfig) -> AuditResult:
    """Projects, flags and scores an already loaded prompt against a vocabulary. No rendering.

    Reads and fills only the on-disk caches (vocabulary statistics, null model, term index).
    """
    reference = config.reference_text or (prompt.peft.init_text if prompt.peft else None)
    geometry = measure(prompt, vocab, config, reference)
    findings = find(geometry, vocab, lists, config)
    verdict = judge(geometry, findings, lists)
    behaviour = None
    if config.behaviour:  # loads the whole model: only when asked
        from audit.behaviour.hypotheses import hypotheses
        from audit.behaviour.stage import check

        tests = hypotheses(geometry, verdict.flags, verdict.risks, config.max_ablations)
        behaviour = check(prompt, vocab.spec, reference, config, tests)
    return AuditResult(
        tool_version=__version__,
        prompt=prompt_info(prompt),
        model=model_info(vocab),
        wordlists=wordlist_infos(lists, findings),
        wordlist_bundle=lists.bundle_version,
        reference_text=reference,
        methods=geometry.methods,
        agreement_methods=geometry.agreement_methods,
        top_k=geometry.top_k,
        centered_components=config.centered_components,
        languages=tuple(config.languages),
        seed=config.seed,
        fail_on=config.fail_on,
        positions=positions(geometry, verdict.flags, escalate(verdict.risks, behaviour)),
        projected_text=geometry.projected_text,
        waywardness=geometry.waywardness,
        summary=with_behaviour(verdict.summary, behaviour),
        coverage=findings.coverage,
        notes=geometry.notes,
        methodology=verdict.methodology,
        category_labels=findings.category_labels,
        behaviour=behaviour,
    )


def prepare_model(config: AuditConfig) -> Vocabulary:
    """Fills every on-disk cache a scan of ``config.model`` reads, so the first scan is as fast as later
    ones: GGUF conversion, token table, vocabulary statistics, term index (``config``'s wordlists) and
    the null model for ``config.methods`` (seed, depth and removed directions as in ``config``).
    ``config.prompt`` is not used. Returns the vocabulary."""
    from audit.evidence.stage import prepare_evidence
    from audit.geometry.stage import statistics

    methods = check_options(config)
    if not config.model:
        raise AuditInputError("prepare needs --model", "e.g. --model gemma-3-270m")
    vocab = load_vocabulary(config.model, allow_pickle=config.allow_pickle_model, progress=config.progress)
    stats = statistics(vocab, config)
    lists = load_wordlists(
        user_dirs=config.wordlist_dirs, languages=config.languages, allowlist=config.allowlist
    )
    prepare_evidence(vocab, stats, lists, methods, config)
    return vocab


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
