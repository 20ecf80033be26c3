"""The geometry stage: statistics, projections under every method, and per-position measures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from audit.config import AuditConfig
from audit.errors import AuditInputError
from audit.geometry import measures
from audit.geometry.engine import (
    TopK,
    agreement_methods,
    check_prompt,
    count_rows,
    project,
    project_many,
)
from audit.geometry.methods import METHODS, resolve_methods
from audit.geometry.stats import VocabStats, load_or_compute_stats
from audit.geometry.waywardness import prompt_f1
from audit.inputs.prompts import SoftPrompt
from audit.inputs.vocab import Vocabulary
from audit.progress import progress_bar
from audit.records import MapPoint, MethodInfo, Neighbor, Projection


@dataclass(frozen=True)
class PositionGeometry:
    index: int
    segment: str
    projections: dict[str, Projection]
    neighbors: dict[str, tuple[Neighbor, ...]]
    agreement: float
    jaccard: float
    off_manifold: float
    norm_ratio: float
    norm_percentile: float
    drift: float | None
    map_points: tuple[MapPoint, ...]


@dataclass(frozen=True)
class Geometry:
    """What the projections say. ``tops``: method -> (n, k) neighbours; ``stats`` of the vocabulary."""

    methods: tuple[str, ...]
    agreement_methods: tuple[str, ...]
    top_k: int
    tops: dict[str, TopK]
    stats: VocabStats
    positions: tuple[PositionGeometry, ...]
    projected_text: dict[str, str]
    waywardness: dict[str, dict[str, float]] | None
    notes: tuple[str, ...]
    method_infos: tuple[MethodInfo, ...]


def device(choice: str) -> str:
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise AuditInputError(
            "--device cuda was asked for but no CUDA device is available", "use --device cpu"
        )
    return choice


def statistics(vocab: Vocabulary, config: AuditConfig) -> VocabStats:
    """The vocabulary's statistics (cached) with ``config.centered_components`` directions removed."""
    stats = load_or_compute_stats(vocab, chunk_size=config.chunk_size, show_progress=config.progress)
    if not 0 <= config.centered_components <= stats.principal.shape[0]:
        raise AuditInputError(
            f"--remove-directions {config.centered_components} is out of range",
            f"use 0 (mean only, the default) to {stats.principal.shape[0]}",
        )
    return stats.with_components(config.centered_components)


def engine_options(config: AuditConfig) -> dict:
    """The projection engine's options, passed to every project() call of a scan."""
    return {"chunk_size": config.chunk_size, "device": device(config.device)}


def measure(
    prompt: SoftPrompt,
    vocab: Vocabulary,
    config: AuditConfig,
    reference: str | None,
    *,
    stats: VocabStats | None = None,
    tops: dict[str, TopK] | None = None,
) -> Geometry:
    """Projects the prompt under every requested method and measures each position.

    ``stats`` (:func:`statistics` of ``vocab`` and ``config``) and ``tops`` (this prompt's entry of
    :func:`project_prompts`) let a batch load and project once for many prompts; by default both are
    computed here."""
    methods = resolve_methods(config.methods)
    check_prompt(prompt.vectors, vocab)  # before the (first-use) statistics
    stats = statistics(vocab, config) if stats is None else stats
    engine = engine_options(config)
    if tops is None:
        with progress_bar("projecting", count_rows(vocab, methods), enabled=config.progress) as bar:
            tops = project(prompt.vectors, vocab, stats, methods, config.top_k, progress=bar.update, **engine)
    counted = agreement_methods(vocab, methods)
    top1_agree, jaccard = measures.agreement({m: tops[m] for m in counted})
    nearest = measures.nearest_distance(prompt.vectors, vocab, stats, tops, **engine)
    norms = prompt.vectors.norm(dim=1).numpy()
    percentiles = measures.norm_percentile(stats, norms)
    drift = measures.drift(prompt, vocab, reference)
    surfaces = vocab.tokens.surfaces
    positions = []
    for segment in prompt.segments:
        for pos in range(segment.start, segment.stop):
            neighbors = {m: measures.neighbours(tops[m], pos, surfaces) for m in methods}
            positions.append(
                PositionGeometry(
                    index=pos,
                    segment=segment.name,
                    projections={m: _projection(nb) for m, nb in neighbors.items()},
                    neighbors=neighbors,
                    agreement=float(top1_agree[pos]),
                    jaccard=float(jaccard[pos]),
                    off_manifold=float(nearest[pos] / max(stats.median_nn_distance, 1e-12)),
                    norm_ratio=float(norms[pos] / max(stats.median_token_norm, 1e-12)),
                    norm_percentile=float(percentiles[pos]),
                    drift=None if drift is None else float(drift[pos]),
                    map_points=measures.map_points(prompt.vectors[pos], vocab, neighbors),
                )
            )
    # F1 compares words: control tokens (<bos>, [CLS]) the reading starts with are not words.
    waywardness = None
    if reference:
        waywardness = {
            m: {
                "prompt_f1": prompt_f1(
                    measures.projected_text(prompt, vocab, tops[m], skip_special=True), reference
                )
            }
            for m in methods
        }
    return Geometry(
        methods=methods,
        agreement_methods=counted,
        top_k=int(next(iter(tops.values())).ids.shape[1]),
        tops=tops,
        stats=stats,
        positions=tuple(positions),
        projected_text={m: measures.projected_text(prompt, vocab, tops[m]) for m in methods},
        waywardness=waywardness,
        notes=notes(vocab, methods),
        method_infos=tuple(MethodInfo(m, METHODS[m].summary, dict(METHODS[m].description)) for m in methods),
    )


def project_prompts(
    prompts: Sequence[SoftPrompt], vocab: Vocabulary, config: AuditConfig, stats: VocabStats
) -> list[dict[str, TopK]]:
    """The projections :func:`measure` would compute for each prompt, in one pass over the vocabulary
    for all of them (:func:`audit.geometry.engine.project_many`); equal to theirs bit for bit."""
    methods = resolve_methods(config.methods)
    with progress_bar(
        f"projecting {len(prompts)} prompts", count_rows(vocab, methods), enabled=config.progress
    ) as bar:
        return project_many(
            [p.vectors for p in prompts],
            vocab,
            stats,
            methods,
            config.top_k,
            progress=bar.update,
            **engine_options(config),
        )


def _projection(neighbors: tuple[Neighbor, ...]) -> Projection:
    """The top-1 reading and its lead over the 2nd."""
    first = neighbors[0]
    margin = first.score - neighbors[1].score if len(neighbors) > 1 else 0.0
    return Projection(first.token_id, first.token, first.score, margin)


def notes(vocab: Vocabulary, methods: tuple[str, ...]) -> tuple[str, ...]:
    found = []
    for name in methods:
        twin = METHODS[name].tied_to
        if vocab.tied and twin and twin in methods:
            found.append(
                f"The model ties its output matrix to the input embeddings, so '{name}' ranks tokens exactly "
                f"like '{twin}'; it is shown but counted once in cross-method agreement."
            )
    if vocab.embed_scale != 1.0:
        found.append(
            f"This model multiplies input embeddings by {vocab.embed_scale:.4f}; prompts are compared with "
            "E * scale (the space PEFT stores them in)."
        )
    found.append(
        f"{int(vocab.tokens.special.sum())} placeholder rows (<unusedN> tokens, rows past the tokenizer) are "
        "excluded from every ranking; named control tokens such as <bos> or [CLS] are ranked."
    )
    return tuple(found)
