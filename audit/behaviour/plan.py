"""Planning the runner's work (pure: token ids in, groups out): one :class:`Row` per text (or per answer
of a multi-token answer), grouped on shared token prefixes (:func:`plan_groups`) so that ``[prompt][prefix]``
runs once per group and the differing suffixes run as batches on top of its cached keys and values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GROUP_OVERHEAD_TOKENS = 8  # what one extra prefix pass costs beyond its tokens, in token-equivalents
MAX_GROUP_ROWS = 4096  # bounds the planner's work (O(rows x this)); a larger group is only split


@dataclass(frozen=True)
class Row:
    """One sequence to run and the answer tokens it predicts.

    Attributes:
        tokens: the text's token ids, plus an answer's tokens but its last when it is multi-token.
        reads: (position in ``tokens`` whose logits predict the token, token id, text index,
            answer index) for every answer token this row scores.
        cap: the longest prefix that may run apart from the row (its first read position, so that
            every read lies in the suffix).
    """

    tokens: tuple[int, ...]
    reads: tuple[tuple[int, int, int, int], ...]
    cap: int


@dataclass(frozen=True)
class Group:
    """Rows run on one shared prefix: ``rows[k].tokens[:prefix]`` is the same for every row."""

    prefix: int
    rows: tuple[Row, ...]


def build_rows(encoded: Sequence[Sequence[int]], answers: tuple[Sequence[int], Sequence[int]]) -> list[Row]:
    """The rows to run for each tokenized text: one when both answers are single tokens (or one
    answer's row is a prefix of the other's), else one per answer (teacher forcing)."""
    rows = []
    for text, ids in enumerate(encoded):
        last = len(ids) - 1
        per_answer = []
        for answer, ans in enumerate(answers):
            tokens = tuple(ids) + tuple(ans[:-1])
            reads = tuple((last + j, int(tok), text, answer) for j, tok in enumerate(ans))
            per_answer.append((tokens, reads))
        (t0, r0), (t1, r1) = per_answer
        if t1[: len(t0)] == t0:  # t0 is a prefix of t1 (equal when both answers are one token)
            rows.append(Row(t1, r0 + r1, last))
        elif t0[: len(t1)] == t1:
            rows.append(Row(t0, r0 + r1, last))
        else:
            rows.extend(Row(t, r, last) for t, r in per_answer)
    return rows


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def plan_groups(
    rows: Sequence[Row],
    n_virtual: int,
    *,
    overhead: int = GROUP_OVERHEAD_TOKENS,
    max_rows: int = MAX_GROUP_ROWS,
) -> list[Group]:
    """Partitions rows into groups that run on a shared prefix, minimising the tokens run.

    Rows are sorted by token ids, so rows sharing a prefix are neighbours; the sorted list is cut into
    contiguous groups by dynamic programming over the cost of a group of ``k`` rows sharing a prefix
    of ``m`` text tokens: ``overhead + n_virtual + sum(len) - (k - 1) * m`` (the prompt and the prefix
    run once, each suffix once). ``m`` is the group's longest common prefix, capped at every row's
    first read position.
    """
    order = sorted(range(len(rows)), key=lambda i: rows[i].tokens)
    seqs = [rows[i].tokens for i in order]
    n = len(seqs)
    if n == 0:
        return []
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    caps = np.array([rows[i].cap for i in order], dtype=np.int64)
    adjacent = np.zeros(n, dtype=np.int64)  # adjacent[k] = common prefix of seqs[k-1] and seqs[k]
    for k in range(1, n):
        adjacent[k] = _common_prefix(seqs[k - 1], seqs[k])
    sums = np.concatenate([[0], np.cumsum(lengths)])
    best = np.zeros(n + 1, dtype=np.int64)
    start = np.zeros(n + 1, dtype=np.int64)
    shared = np.zeros(n, dtype=np.int64)  # shared[i]: common prefix of the group seqs[i:j]
    for j in range(1, n + 1):
        r = j - 1
        lo = max(0, j - max_rows)
        if r > lo:
            np.minimum(shared[lo:r], min(adjacent[r], caps[r]), out=shared[lo:r])
        shared[r] = caps[r]
        first = np.arange(lo, j)
        m = shared[lo:j]
        cost = best[lo:j] + sums[j] - sums[lo:j] - (j - first - 1) * m
        cost = cost + np.where(m + n_virtual > 0, overhead + n_virtual, 0)
        k = int(np.argmin(cost))
        best[j] = cost[k]
        start[j] = lo + k
    groups = []
    j = n
    while j > 0:
        i = int(start[j])
        prefix = int(caps[i:j].min())
        for k in range(i + 1, j):
            prefix = min(prefix, int(adjacent[k]))
        groups.append(Group(prefix, tuple(rows[order[k]] for k in range(i, j))))
        j = i
    groups.reverse()
    return groups


# ---------------------------------------------------------------------------------------------
# Running
