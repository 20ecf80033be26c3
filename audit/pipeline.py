"""run_audit: the pipeline, top to bottom. Rendering is a separate call (audit.report)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from audit import __version__
from audit.config import AuditConfig
from audit.errors import AuditInputError
from audit.flags import Hit, bh_q_values, category_min_ranks, find_hits, null_neighbours, p_value
from audit.progress import progress_bar
from audit.projection import TopK, agreement, count_rows, pca_2d, project, resolve_methods
from audit.prompts import SoftPrompt, load_prompt
from audit.records import (
    AuditResult,
    Flag,
    MapPoint,
    ModelInfo,
    Neighbor,
    PositionResult,
    Projection,
    PromptInfo,
    Risk,
    Summary,
    WordlistInfo,
)
from audit.report.i18n import STRINGS
from audit.scoring import flag_severity, position_risk, prompt_f1
from audit.stats import VocabStats, load_or_compute_stats, norm_percentile
from audit.vocab import Vocabulary, load_vocabulary
from audit.wordlists import Wordlists, build_index, coverage, load_wordlists


def resolve_model_spec(config: AuditConfig, prompt: SoftPrompt) -> str:
    if config.model:
        return config.model
    if prompt.peft is not None and prompt.peft.base_model:
        return prompt.peft.base_model
    raise AuditInputError(
        f"no model given and {prompt.path} names no base model",
        "pass --model (a packaged alias such as gemma-3-270m, a .gguf file or a model directory)",
    )


def check_dims(prompt: SoftPrompt, vocab: Vocabulary) -> None:
    if prompt.vectors.shape[1] != vocab.dim:
        raise AuditInputError(
            f"prompt has dim {prompt.vectors.shape[1]} but model '{vocab.spec}' has d_model {vocab.dim}",
            "is this the right base model? pass --model",
        )


def check_options(config: AuditConfig) -> tuple[str, ...]:
    """Validates the options that need no loading; returns the method names."""
    if config.top_k < 1:
        raise AuditInputError(f"--top-k {config.top_k} is not positive", "use --top-k 10 (the default)")
    return resolve_methods(config.methods)


def run_audit(config: AuditConfig) -> AuditResult:
    """Loads the prompt, vocabulary and wordlists, then audits (see :func:`audit_prompt`)."""
    check_options(config)  # fail fast, before any loading
    prompt = load_prompt(config.prompt, key=config.key)
    vocab = load_vocabulary(
        resolve_model_spec(config, prompt), allow_pickle=config.allow_pickle_model, progress=config.progress
    )
    lists = load_wordlists(
        user_dirs=config.wordlist_dirs, languages=config.languages, allowlist=config.allowlist
    )
    return audit_prompt(prompt, vocab, lists, config)


def audit_prompt(prompt: SoftPrompt, vocab: Vocabulary, lists: Wordlists, config: AuditConfig) -> AuditResult:
    """Projects, flags and scores an already loaded prompt against a vocabulary. No rendering.

    Reads and fills only the on-disk caches (vocabulary statistics, null model, term index).
    """
    methods = resolve_methods(config.methods)
    check_dims(prompt, vocab)
    stats = _stats(vocab, config.centered_components, config.chunk_size, config.progress)
    tops = _project_with_progress(prompt, vocab, stats, methods, config)
    index = build_index(vocab, lists)
    hits = find_hits(tops, vocab, index, lists)
    # p-values are needed only for hits: the null model is built (once, cached) for the methods that have one.
    hit_methods = tuple(m for m in methods if any(h.method == m for h in hits))
    null_ranks = _null_ranks(vocab, stats, hit_methods, config, index, lists) if hit_methods else {}
    reference = config.reference_text or (prompt.peft.init_text if prompt.peft else None)
    return assemble(config, prompt, vocab, lists, stats, methods, tops, hits, index, reference, null_ranks)


def _stats(vocab: Vocabulary, centered_components: int, chunk_size: int, progress: bool) -> VocabStats:
    stats = load_or_compute_stats(vocab, chunk_size=chunk_size, show_progress=progress)
    if not 0 <= centered_components <= stats.principal.shape[0]:
        raise AuditInputError(
            f"--remove-directions {centered_components} is out of range",
            f"use 0 (mean only, the default) to {stats.principal.shape[0]}",
        )
    return stats.with_components(centered_components)


def _null(vocab, stats, methods, seed: int, top_k: int, progress: bool) -> dict[str, torch.Tensor]:
    desc = "null model (once per model and seed, cached)"
    with progress_bar(desc, count_rows(vocab, methods), enabled=progress) as bar:
        return null_neighbours(vocab, stats, methods, seed, top_k, progress=bar.update)


def _null_ranks(vocab, stats, methods, config, index, lists) -> dict[str, dict[str, np.ndarray]]:
    """method -> category -> (N,) best rank of that category near each null vector."""
    null = _null(vocab, stats, methods, config.seed, config.top_k, config.progress)
    return {m: category_min_ranks(null[m], index, lists) for m in methods}


def prepare_model(config: AuditConfig) -> Vocabulary:
    """Fills every on-disk cache a scan of ``config.model`` reads, so the first scan is as fast as later
    ones: GGUF conversion, token table, vocabulary statistics, term index (``config``'s wordlists) and
    the null model for ``config.methods`` (seed, depth and removed directions as in ``config``).
    ``config.prompt`` is not used. Returns the vocabulary."""
    methods = check_options(config)
    if not config.model:
        raise AuditInputError("prepare needs --model", "e.g. --model gemma-3-270m")
    vocab = load_vocabulary(config.model, allow_pickle=config.allow_pickle_model, progress=config.progress)
    stats = _stats(vocab, config.centered_components, config.chunk_size, config.progress)
    lists = load_wordlists(
        user_dirs=config.wordlist_dirs, languages=config.languages, allowlist=config.allowlist
    )
    build_index(vocab, lists)
    _null(vocab, stats, methods, config.seed, config.top_k, config.progress)
    return vocab


def _project_with_progress(prompt, vocab, stats, methods, config) -> dict[str, TopK]:
    device = _device(config.device)
    with progress_bar("projecting", count_rows(vocab, methods), enabled=config.progress) as bar:
        return project(
            prompt.vectors,
            vocab,
            stats,
            methods,
            config.top_k,
            chunk_size=config.chunk_size,
            device=device,
            progress=bar.update,
        )


def _device(choice: str) -> str:
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise AuditInputError(
            "--device cuda was asked for but no CUDA device is available", "use --device cpu"
        )
    return choice


def assemble(
    config: AuditConfig,
    prompt: SoftPrompt,
    vocab: Vocabulary,
    lists: Wordlists,
    stats: VocabStats,
    methods: tuple[str, ...],
    tops: dict[str, TopK],
    hits: list[Hit],
    index,
    reference: str | None,
    null_ranks: dict[str, dict[str, np.ndarray]],
) -> AuditResult:
    """Turns projections and hits into the typed result (pure apart from tokenizing the reference)."""
    surfaces = vocab.tokens.surfaces
    agreement_methods = tuple(m for m in methods if not (m == "unembed" and vocab.tied and "dot" in methods))
    top1_agree, jaccard = agreement({m: tops[m] for m in agreement_methods})
    nearest_l2 = _nearest_distance(prompt.vectors, vocab, stats, tops)
    norms = prompt.vectors.norm(dim=1).numpy()
    percentiles = norm_percentile(stats, norms)
    drift = _drift(prompt, vocab, reference)
    p_values = [p_value(null_ranks[h.method].get(lists.term(h.term_id).category), h.rank) for h in hits]
    active = [i for i, h in enumerate(hits) if h.suppressed is None]
    q_values: list[float | None] = [None] * len(hits)
    for i, q in zip(active, bh_q_values([p_values[i] for i in active])):
        q_values[i] = q
    flags_by_pos: dict[int, list[Flag]] = {}
    for hit, p, q in zip(hits, p_values, q_values):
        flags_by_pos.setdefault(hit.position, []).append(_flag(hit, lists, p, q))
    positions = []
    for segment in prompt.segments:
        for pos in range(segment.start, segment.stop):
            pos_flags = tuple(flags_by_pos.get(pos, ()))
            active = tuple(f for f in pos_flags if f.suppressed is None)
            suppressed = tuple(f for f in pos_flags if f.suppressed is not None)
            neighbors = {
                m: tuple(
                    Neighbor(r + 1, int(t), surfaces[int(t)], float(s))
                    for r, (t, s) in enumerate(zip(tops[m].ids[pos].tolist(), tops[m].scores[pos].tolist()))
                )
                for m in methods
            }
            projections = {
                m: Projection(
                    nb[0].token_id,
                    nb[0].token,
                    nb[0].score,
                    nb[0].score - nb[1].score if len(nb) > 1 else 0.0,
                )
                for m, nb in neighbors.items()
            }
            points = _map_points(prompt.vectors[pos], vocab, neighbors, {f.token_id for f in active})
            positions.append(
                PositionResult(
                    index=pos,
                    segment=segment.name,
                    projections=projections,
                    neighbors=neighbors,
                    agreement=float(top1_agree[pos]),
                    jaccard=float(jaccard[pos]),
                    off_manifold=float(nearest_l2[pos] / max(stats.median_nn_distance, 1e-12)),
                    norm_ratio=float(norms[pos] / max(stats.median_token_norm, 1e-12)),
                    norm_percentile=float(percentiles[pos]),
                    drift=None if drift is None else float(drift[pos]),
                    risk=position_risk(active, float(top1_agree[pos])),
                    flags=active,
                    suppressed=suppressed,
                    map_points=points,
                )
            )
    projected = {m: _projected_text(prompt, vocab, tops[m]) for m in methods}
    # F1 compares words: control tokens (<bos>, [CLS]) the reading starts with are not words.
    waywardness = (
        {
            m: {"prompt_f1": prompt_f1(_projected_text(prompt, vocab, tops[m], skip_special=True), reference)}
            for m in methods
        }
        if reference
        else None
    )
    rows = coverage(lists, index)
    share = {(r.language, r.category): r.share for r in rows}
    result_positions = tuple(positions)
    return AuditResult(
        tool_version=__version__,
        prompt=PromptInfo(
            path=str(prompt.path),
            sha256=prompt.sha256,
            format=prompt.format,
            n_tokens=int(prompt.vectors.shape[0]),
            dim=int(prompt.vectors.shape[1]),
            peft_type=prompt.peft.peft_type if prompt.peft else None,
            segments=tuple((s.name, s.start, s.stop) for s in prompt.segments),
        ),
        model=ModelInfo(
            spec=vocab.spec,
            model_type=vocab.model_type,
            vocab_size=vocab.size,
            dim=vocab.dim,
            embed_scale=vocab.embed_scale,
            tied=vocab.tied,
            sha256=vocab.sha256,
            n_rankable=int((~vocab.tokens.special).sum()),
        ),
        wordlists=tuple(
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
        ),
        wordlist_bundle=lists.bundle_version,
        reference_text=reference,
        methods=methods,
        agreement_methods=agreement_methods,
        top_k=int(next(iter(tops.values())).ids.shape[1]),
        centered_components=config.centered_components,
        languages=tuple(config.languages),
        seed=config.seed,
        fail_on=config.fail_on,
        positions=result_positions,
        projected_text=projected,
        waywardness=waywardness,
        summary=summarize(result_positions, len(methods)),
        coverage=rows,
        notes=_notes(vocab, methods),
    )


def _flag(hit: Hit, lists: Wordlists, p: float, q: float | None) -> Flag:
    term = lists.term(hit.term_id)
    severity = flag_severity(term.severity, term.policy, hit.word_start, hit.partial, q)
    return Flag(
        position=hit.position,
        method=hit.method,
        rank=hit.rank,
        token_id=hit.token_id,
        token=hit.token,
        term_id=term.id,
        term=term.lemma,
        category=term.category,
        language=term.language,
        score=hit.score,
        gap_to_top1=hit.gap_to_top1,
        is_top1=hit.rank == 1,
        word_start=hit.word_start,
        partial=hit.partial,
        policy=term.policy,
        term_severity=term.severity.label,
        p_value=p,
        q_value=q,
        severity=severity.label,
        suppressed=hit.suppressed,
    )


def summarize(positions: tuple[PositionResult, ...], n_methods: int) -> Summary:
    flags = [f for p in positions for f in p.flags]
    risk = Risk.worst(p.risk for p in positions)
    by_cat = Counter(f.category for f in flags)
    by_sev = Counter(f.severity for f in flags)
    flagged = [p.index for p in positions if p.risk != Risk.LOW]
    # The same sentence the English report prints (one source for the wording).
    verdict = STRINGS["en"][f"verdict_{risk.value}"].format(n=len(flagged), m=n_methods)
    mean_agreement = float(np.mean([p.agreement for p in positions])) if positions else 1.0
    return Summary(
        risk=risk,
        n_flags=len(flags),
        n_suppressed=sum(len(p.suppressed) for p in positions),
        flags_by_category=dict(sorted(by_cat.items())),
        flags_by_severity={s: by_sev.get(s, 0) for s in ("high", "medium", "low")},
        mean_agreement=mean_agreement,
        verdict=verdict,
    )


MAP_NEIGHBOURS = 24


def _map_points(
    vector: torch.Tensor, vocab: Vocabulary, neighbors, sensitive: set[int]
) -> tuple[MapPoint, ...]:
    """2-D PCA of the prompt vector and the union of its neighbours (first MAP_NEIGHBOURS, best first)."""
    ids: list[int] = []
    for rank in range(max(len(nb) for nb in neighbors.values())):
        for nb in neighbors.values():
            if rank < len(nb) and nb[rank].token_id not in ids:
                ids.append(nb[rank].token_id)
    ids = ids[:MAP_NEIGHBOURS]
    rows = torch.cat([vocab.input.rows(i, i + 1) for i in ids]) * vocab.embed_scale
    coords = pca_2d(torch.cat([vector[None, :], rows]))
    points = [MapPoint(-1, "", float(coords[0, 0]), float(coords[0, 1]), False)]
    for (x, y), tok in zip(coords[1:], ids):
        points.append(MapPoint(tok, vocab.tokens.surfaces[tok], float(x), float(y), tok in sensitive))
    return tuple(points)


def _nearest_distance(
    vectors: torch.Tensor, vocab: Vocabulary, stats: VocabStats, tops: dict[str, TopK]
) -> np.ndarray:
    """Euclidean distance from each prompt row to its nearest rankable token (scaled space). (n,)"""
    top = tops["l2"] if "l2" in tops else project(vectors, vocab, stats, ("l2",), 1)["l2"]
    return (-top.scores[:, 0]).numpy()


def _drift(prompt: SoftPrompt, vocab: Vocabulary, reference: str | None) -> np.ndarray | None:
    """Cosine of each row to the token a TEXT init would have placed there for the reference text. (n,)

    PEFT embeds ``tokenizer(text)`` with special tokens (e.g. a leading <bos>), cut or repeated to the
    prompt's length; some training scripts drop the special tokens. Both alignments are tried and the
    one the prompt is closer to is used.
    """
    if not reference:
        return None
    n = prompt.vectors.shape[0]
    candidates = [vocab.init_token_ids(reference, n), vocab.init_token_ids(reference, n, special=False)]
    best = None
    for ids in candidates:
        if not ids:
            continue
        ref = torch.cat([vocab.input.rows(i, i + 1) for i in ids]) * vocab.embed_scale
        cos = torch.nn.functional.cosine_similarity(prompt.vectors, ref, dim=1).numpy()
        if best is None or cos.mean() > best.mean():
            best = cos
    return best


def _projected_text(prompt: SoftPrompt, vocab: Vocabulary, top: TopK, *, skip_special: bool = False) -> str:
    parts = []
    for segment in prompt.segments:
        text = vocab.decode(top.ids[segment.start : segment.stop, 0].tolist(), skip_special=skip_special)
        parts.append(text if len(prompt.segments) == 1 else f"[{segment.name}] {text}")
    return " ".join(parts)


def _notes(vocab: Vocabulary, methods: tuple[str, ...]) -> tuple[str, ...]:
    notes = []
    if "unembed" in methods and vocab.tied:
        notes.append(
            "The model ties its output matrix to the input embeddings, so 'unembed' ranks tokens exactly "
            "like 'dot'; it is shown but counted once in cross-method agreement."
        )
    if vocab.embed_scale != 1.0:
        notes.append(
            f"This model multiplies input embeddings by {vocab.embed_scale:.4f}; prompts are compared with "
            "E * scale (the space PEFT stores them in)."
        )
    notes.append(
        f"{int(vocab.tokens.special.sum())} placeholder rows (<unusedN> tokens, rows past the tokenizer) are "
        "excluded from every ranking; named control tokens such as <bos> or [CLS] are ranked."
    )
    return tuple(notes)
