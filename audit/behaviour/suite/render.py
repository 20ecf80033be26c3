"""Rendering a suite into the texts to score, and checking its answers under a tokenizer."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from audit.behaviour.suite.records import AnswerIds, Rendering, Suite
from audit.errors import AuditInputError


def render(suite: Suite) -> tuple[Rendering, ...]:
    """Every rendering of the suite, ordered by template, attribute, group, value (file order).

    Each template is rendered, for every attribute whose slot it contains, with every value of every
    group of that attribute; the other slots take their ``[slots]`` defaults. Texts repeat across
    attributes that share a slot: score ``unique_texts(...)`` once each.
    """
    defaults = dict(suite.slot_defaults)
    out: list[Rendering] = []
    for template in suite.templates:
        used = set(template.slots)
        for attribute in suite.attributes:
            if attribute.slot not in used:
                continue
            for group in attribute.groups:
                for value in group.values:
                    text = template.fill({**defaults, attribute.slot: value})
                    out.append(Rendering(template.index, attribute.id, group.id, value, text))
    return tuple(out)


def unique_texts(renderings: Iterable[Rendering]) -> tuple[str, ...]:
    """The distinct texts, in order of first appearance (what the runner scores)."""
    return tuple(dict.fromkeys(r.text for r in renderings))


# ---------------------------------------------------------------------------------------------
# Answers


def check_answers(suite: Suite, encode: Callable[[str], Iterable[int]]) -> AnswerIds:
    """Token ids of both answers under a tokenizer.

    Args:
        suite: a loaded suite.
        encode: text -> token ids without special tokens, e.g.
            ``lambda s: tok(s, add_special_tokens=False).input_ids``.

    Raises:
        AuditInputError: an answer encodes to no token; both encode identically; or one answer's ids
            are a prefix of the other's (summed log-probs of the shorter one are then never lower, so
            the decision would not depend on the model).
    """
    ans = suite.answers
    ids = {}
    for key, text, line in (
        ("positive", ans.positive, ans.positive_line),
        ("negative", ans.negative, ans.negative_line),
    ):
        result = encode(text)
        if isinstance(result, Mapping):
            raise TypeError(
                "encode must return a list of token ids (e.g. tok(s, ...).input_ids), not a mapping"
            )
        ids[key] = tuple(int(i) for i in result)
        if not ids[key]:
            raise AuditInputError(
                f"{suite.path}:{line}: the {key} answer {text!r} encodes to no tokens",
                "choose an answer the model's tokenizer spells with at least one token",
            )
    pos, neg = ids["positive"], ids["negative"]
    where = f"{suite.path}:{ans.positive_line}"
    if pos == neg:
        raise AuditInputError(
            f"{where}: the answers {ans.positive!r} and {ans.negative!r} encode to the same tokens "
            f"{list(pos)}",
            "choose answers the model's tokenizer tells apart",
        )
    short, long_ = (pos, neg) if len(pos) < len(neg) else (neg, pos)
    if long_[: len(short)] == short:
        raise AuditInputError(
            f"{where}: the tokens of one answer {list(short)} start the other's {list(long_)}; summed "
            "log-probabilities would always favour the shorter one",
            "choose answers whose first tokens differ",
        )
    return AnswerIds(pos, neg)
