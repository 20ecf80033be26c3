"""The null model: seeded vectors with no intent, and how often their neighbourhoods hold terms.

Null vectors resemble soft prompts without any intent: NULL_PER_KIND vocabulary rows displaced
off the token manifold by a random direction of length rho x (median token-to-nearest-token
distance), rho ~ U(0.5, 3); and NULL_PER_KIND random directions scaled to norms drawn from the
vocabulary's own token norms. Their top-NULL_K neighbours under every method are computed once per
(vocabulary, seed) and cached, so the wordlists and later prompts reuse them.
"""

from __future__ import annotations

import numpy as np
import torch

from audit.cache import entry_path, load_safetensors, save_safetensors, store, warn_damaged
from audit.geometry.engine import project
from audit.geometry.stats import stats_key
from audit.terms.match import TermIndex
from audit.terms.schema import Wordlists

# Null vectors resemble soft prompts without any intent: NULL_PER_KIND vocabulary rows displaced
# off the token manifold by a random direction of length rho x (median token-to-nearest-token
# distance), rho ~ U(0.5, 3); and NULL_PER_KIND random directions scaled to norms drawn from the
# vocabulary's own token norms. Their top-NULL_K neighbours under every method are computed once per
# (vocabulary, seed) and cached, so the wordlists and later prompts reuse them. For a flag of category
# C at rank r under method m, p = (1 + #{null vectors with a C term at rank <= r under m}) / (N + 1);
# q-values control the false discovery rate over all flags of the report (Benjamini-Hochberg).

NULL_PER_KIND = 256
NULL_K = 50
NULL_RHO = (0.5, 3.0)
NULL_VERSION = "1"

NULL_SIZE = 2 * NULL_PER_KIND
NULL_MODEL_TEXT = {
    "en": (
        f"Null model: {NULL_SIZE} seeded null vectors: {NULL_PER_KIND} vocabulary rows displaced off the "
        f"token manifold by {NULL_RHO[0]:g}-{NULL_RHO[1]:g} x the typical token-to-nearest-token distance, "
        f"and {NULL_PER_KIND} random directions scaled to the vocabulary's own token norms. A flag's p-value "
        "is the share of null vectors that have a term of the same category at the same rank or closer "
        "under the same method (plus one, over N plus one); q-values control the false discovery rate over "
        "the whole report (Benjamini-Hochberg)."
    ),
    "es": (
        f"Modelo nulo: {NULL_SIZE} vectores nulos con semilla: {NULL_PER_KIND} filas del vocabulario "
        "desplazadas fuera de la distribución de tokens entre 0,5 y 3 veces la distancia típica de un "
        f"token a su vecino más cercano, y {NULL_PER_KIND} direcciones aleatorias escaladas a las normas "
        "de los propios tokens. El valor p de una alerta es la proporción de vectores nulos que tienen "
        "un término de la misma categoría en el mismo puesto o más cerca con el mismo método (más uno, "
        "sobre N más uno); los valores q controlan la tasa de falsos descubrimientos en todo el informe "
        "(Benjamini-Hochberg)."
    ),
}


def null_vectors(stats, scale_rows, seed: int) -> torch.Tensor:
    """The seeded null vectors. Returns (2 * NULL_PER_KIND, d) float32.

    Args:
        stats: VocabStats (valid mask, token norms, nearest-token distances).
        scale_rows: callable(ids) -> (len(ids), d) scaled vocabulary rows.
    """
    gen = torch.Generator().manual_seed(seed)
    valid = stats.valid.nonzero().squeeze(1)
    rows = valid[torch.randint(len(valid), (NULL_PER_KIND,), generator=gen)]
    base = scale_rows(rows.tolist())
    d = base.shape[1]
    direction = torch.nn.functional.normalize(torch.randn(NULL_PER_KIND, d, generator=gen), dim=1)
    rho = NULL_RHO[0] + (NULL_RHO[1] - NULL_RHO[0]) * torch.rand(NULL_PER_KIND, 1, generator=gen)
    displaced = base + direction * rho * stats.median_nn_distance
    norms = stats.token_norms[valid[torch.randint(len(valid), (NULL_PER_KIND,), generator=gen)]]
    random_dirs = torch.nn.functional.normalize(torch.randn(NULL_PER_KIND, d, generator=gen), dim=1)
    return torch.cat([displaced, random_dirs * norms[:, None]]).to(torch.float32)


def null_neighbours(
    vocab, stats, methods: tuple[str, ...], seed: int, k: int, **engine
) -> dict[str, torch.Tensor]:
    """Top-max(k, NULL_K) neighbour ids of every null vector under every method, cached on disk.

    Args:
        engine: the projection's device, chunk_size and progress callback.

    Returns:
        method -> (N, K) int64 ids.
    """
    depth = max(k, NULL_K)
    # Keyed by the statistics' key too: the null vectors and the centered/whitened rankings derive from them.
    key = f"{stats_key(vocab)}-seed{seed}-k{depth}-c{stats.n_removed}-v{NULL_VERSION}"
    path = entry_path("null", key, ".safetensors")
    # project() keeps at most the rankable tokens: a small vocabulary has fewer columns than depth.
    columns = max(1, min(depth, int((~vocab.tokens.special).sum())))
    cached: dict[str, torch.Tensor] = {}
    if path.exists():
        try:
            cached = _read_null(path, columns)
        except Exception as exc:  # a damaged entry is rebuilt
            warn_damaged(path, exc)
    missing = tuple(m for m in methods if m not in cached)
    if missing:

        def scaled(ids):
            return torch.cat([vocab.input.rows(i, i + 1) for i in ids]) * vocab.embed_scale

        vectors = null_vectors(stats, scaled, seed)
        tops = project(vectors, vocab, stats, missing, depth, **engine)
        cached.update({m: tops[m].ids.to(torch.int64) for m in missing})
        store(path, cached, save_safetensors)
    return {m: cached[m] for m in methods}


def _read_null(path, columns: int) -> dict[str, torch.Tensor]:
    tensors = load_safetensors(path)
    expected = (NULL_SIZE, columns)
    for method, ids in tensors.items():
        if tuple(ids.shape) != expected:
            raise ValueError(f"{method} neighbours have shape {tuple(ids.shape)}, expected {expected}")
    return tensors


def category_min_ranks(null_ids: torch.Tensor, index: TermIndex, lists: Wordlists) -> dict[str, np.ndarray]:
    """For each category: the best (smallest, 1-based) rank at which each null vector has a term of that
    category among its neighbours (whole-token or prefix hits); K + 1 when none. (N,) per category."""
    token_categories: dict[int, set[str]] = {}
    active = lists.by_id
    for table in (index.token_terms, index.prefix):
        for tok, term_ids in table.items():
            cats = {active[t].category for t in term_ids if t in active}
            if cats:
                token_categories.setdefault(tok, set()).update(cats)
    n, depth = null_ids.shape
    ranks: dict[str, np.ndarray] = {}
    for row, ids in enumerate(null_ids.tolist()):
        for rank, tok in enumerate(ids, start=1):
            for cat in token_categories.get(tok, ()):
                arr = ranks.setdefault(cat, np.full(n, depth + 1, dtype=np.int64))
                if rank < arr[row]:
                    arr[row] = rank
    return ranks
