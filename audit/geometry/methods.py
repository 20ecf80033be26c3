"""The projection methods: one registry entry each, with its scoring steps and its report texts.

Every method is a pure scoring function ``(prompt (n, d), rows (c, d), ctx) -> scores (n, c)``
(higher = nearer), written as two steps around one shared matmul (see :class:`Method`).
Scores: ``l2`` is the negative Euclidean distance; ``dot`` and ``unembed`` are inner products
(logits); ``cosine``, ``centered`` and ``whitened`` are cosine similarities in [-1, 1].
Imports no torch at module level: `prompt-audit methods` and `--help` list the registry cheaply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from audit.errors import AuditInputError

if TYPE_CHECKING:
    import torch

    from audit.geometry.stats import VocabStats


@dataclass(frozen=True)
class Method:
    """A projection method as two pure steps around one shared matmul.

    ``query(prompt, stats) -> (n, d)`` transforms the prompt once; the engine computes
    ``raw = query @ rows.T`` for a chunk of rows; ``finish(raw, prompt, stats, start, stop) -> (n, c)``
    turns the inner products into scores using per-token quantities precomputed in ``stats``.
    Writing every method this way keeps a scan to one matmul per chunk and makes chunked and
    unchunked results identical.
    """

    name: str
    summary: str  # one line for `prompt-audit methods`
    description: dict[str, str]  # report language -> the methodology note of the HTML report
    matrix: str  # "input": E * embed_scale, "output": the unembedding matrix
    query: Callable[[torch.Tensor, VocabStats], torch.Tensor]
    finish: Callable[[torch.Tensor, torch.Tensor, VocabStats, int, int], torch.Tensor]
    # For an "output" method on a model without an output matrix (tied): the input-pass method it then
    # equals (counted once in agreement) and the factor that turns that method's scores into its own.
    tied_to: str | None = None


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _identity(prompt: torch.Tensor, stats: VocabStats) -> torch.Tensor:
    return prompt


def _raw(raw: torch.Tensor, prompt: torch.Tensor, stats: VocabStats, start: int, stop: int) -> torch.Tensor:
    return raw


def _l2_finish(
    raw: torch.Tensor, prompt: torch.Tensor, stats: VocabStats, start: int, stop: int
) -> torch.Tensor:
    """-||p - e|| from p.e: ||p||^2 - 2 p.e + ||e||^2 (token norms precomputed)."""
    sq_tok = stats.token_norms[start:stop].to(raw.device) ** 2
    sq = (prompt * prompt).sum(-1, keepdim=True) - 2.0 * raw + sq_tok
    return -sq.clamp_min(0.0).sqrt()


def _cosine_finish(
    raw: torch.Tensor, prompt: torch.Tensor, stats: VocabStats, start: int, stop: int
) -> torch.Tensor:
    return raw / stats.token_norms[start:stop].to(raw.device).clamp_min(1e-12)


def _remove_top(x: torch.Tensor, components: torch.Tensor) -> torch.Tensor:
    if components.shape[0] == 0:
        return x
    return x - (x @ components.T) @ components


def _centered_query(prompt: torch.Tensor, stats: VocabStats) -> torch.Tensor:
    """Unit (p - mu) with the top principal directions removed: (n, d)."""
    return _unit(_remove_top(prompt - stats.mean.to(prompt.device), stats.components.to(prompt.device)))


def _centered_finish(
    raw: torch.Tensor, prompt: torch.Tensor, stats: VocabStats, start: int, stop: int
) -> torch.Tensor:
    """cos(p_perp, (e - mu)_perp) = (q.e - q.mu) / ||(e - mu)_perp|| with q the unit p_perp."""
    query = _centered_query(prompt, stats)
    offset = query @ stats.mean.to(raw.device)
    return (raw - offset[:, None]) / stats.centered_norms[start:stop].to(raw.device).clamp_min(1e-12)


def _whitened_query(prompt: torch.Tensor, stats: VocabStats) -> torch.Tensor:
    """C_reg^-1 (p - mu) / ||W (p - mu)||: (n, d)."""
    centred = prompt - stats.mean.to(prompt.device)
    query = centred @ stats.precision.to(prompt.device)  # precision is symmetric
    return query / (query * centred).sum(-1, keepdim=True).clamp_min(1e-12).sqrt()


def _whitened_finish(
    raw: torch.Tensor, prompt: torch.Tensor, stats: VocabStats, start: int, stop: int
) -> torch.Tensor:
    """cos(W(p - mu), W(e - mu)) = (q.e - q.mu) / ||W(e - mu)||, W = C_reg^(-1/2)."""
    offset = _whitened_query(prompt, stats) @ stats.mean.to(raw.device)
    return (raw - offset[:, None]) / stats.whitened_norms[start:stop].to(raw.device).clamp_min(1e-12)


def _cosine_query(prompt: torch.Tensor, stats: VocabStats) -> torch.Tensor:
    return _unit(prompt)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "l2",
            "nearest token by Euclidean distance to E*scale (Prompt Waywardness code)",
            {
                "en": "nearest by Euclidean distance to the scaled embeddings (Prompt Waywardness code)",
                "es": "el más cercano por distancia euclídea a los embeddings escalados (código de Prompt "
                "Waywardness)",
            },
            "input",
            _identity,
            _l2_finish,
        ),
        Method(
            "dot",
            "largest inner product with E*scale (Prompt Waywardness paper; tied LM logit)",
            {
                "en": "largest inner product with the scaled embeddings (Prompt Waywardness paper; tied LM "
                "logit)",
                "es": "mayor producto escalar con los embeddings escalados (artículo de Prompt Waywardness; "
                "logit del LM con embeddings compartidos)",
            },
            "input",
            _identity,
            _raw,
        ),
        Method(
            "cosine",
            "largest cosine similarity with E*scale (Lester et al. 2021, PEZ)",
            {
                "en": "largest cosine similarity (Lester et al. 2021; PEZ)",
                "es": "mayor similitud coseno (Lester et al. 2021; PEZ)",
            },
            "input",
            _cosine_query,
            _cosine_finish,
        ),
        Method(
            "centered",
            "cosine after removing the vocabulary mean (and top principal directions)",
            {
                "en": "cosine after removing the vocabulary mean (and optionally top principal directions)",
                "es": "coseno tras restar la media del vocabulario (y, opcionalmente, las direcciones "
                "principales)",
            },
            "input",
            _centered_query,
            _centered_finish,
        ),
        Method(
            "whitened",
            "cosine after regularised whitening with the vocabulary covariance (Mahalanobis)",
            {
                "en": "cosine after regularised whitening with the vocabulary covariance (Mahalanobis)",
                "es": "coseno tras un blanqueo regularizado con la covarianza del vocabulario (Mahalanobis)",
            },
            "input",
            _whitened_query,
            _whitened_finish,
        ),
        Method(
            "unembed",
            "logits of the output matrix (layer-0 logit lens); equals dot when tied",
            {
                "en": "logits of the output matrix (layer-0 logit lens); equals dot for tied models",
                "es": "logits de la matriz de salida (logit lens de la capa 0); igual a dot si el modelo "
                "comparte las matrices de entrada y salida",
            },
            "output",
            _identity,
            _raw,
            tied_to="dot",
        ),
    )
}


def register(method: Method) -> None:
    """Adds a method to the registry (the only list of methods: CLI, JSON, reports and tests read it)."""
    if method.name in METHODS or method.name == "all":
        raise ValueError(f"projection method {method.name!r} is already registered")
    METHODS[method.name] = method


def resolve_methods(requested: tuple[str, ...] | None) -> tuple[str, ...]:
    """Validates method names ("all" or None: every method), keeping registry order."""
    if requested is None or requested == ("all",):
        return tuple(METHODS)
    unknown = [m for m in requested if m not in METHODS]
    if unknown:
        raise AuditInputError(
            f"unknown projection method(s) {', '.join(unknown)}",
            f"choose from {', '.join(METHODS)} or 'all' (see `prompt-audit methods`)",
        )
    if not requested:
        raise AuditInputError("no projection method selected", "pass --methods all or a list")
    return tuple(m for m in METHODS if m in requested)
