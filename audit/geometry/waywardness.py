"""Waywardness (Khashabi et al. 2022): word-level F1 between a projected text and the reference."""

from __future__ import annotations

import re
import string
from collections import Counter

ARTICLES = {"a", "an", "the", "el", "la", "los", "las", "un", "una", "unos", "unas", "lo"}
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}¿¡«»“”‘’…]")


def f1_words(text: str) -> list[str]:
    """Lower-cased words with punctuation and (English and Spanish) articles removed."""
    cleaned = _PUNCT.sub(" ", text.lower())
    return [w for w in cleaned.split() if w not in ARTICLES]


def prompt_f1(prediction: str, reference: str) -> float:
    """Word-level F1 (bag of words, as in SQuAD and Prompt Waywardness)."""
    pred, ref = f1_words(prediction), f1_words(reference)
    if not pred and not ref:
        return 1.0
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)
