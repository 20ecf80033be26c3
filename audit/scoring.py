"""Severity per flag, risk per position and overall, and waywardness metrics.

Risk rule (version 1; printed in every report):
  * A flag starts at its term's severity (low / medium / high) and loses one level for each of:
    the term's policy is ``downweight`` (frequent benign senses), the token is a sub-word piece
    (not word-start), the hit is partial (a multi-token term), the neighbour is not significant
    (q-value >= 0.05 under the null model). ``report_only`` terms are listed at low severity and, like
    allow-listed hits, never raise risk.
  * A position is ``high`` when a counted flag of severity medium or high is some method's top-1
    (the projection itself reads as the sensitive term), when a high-severity flag is within the
    top 3, or when a medium-or-high flag is within the top 3 while the methods disagree on the
    position's reading (top-1 agreement < 1: the seed case, ``buenos`` under cosine with ``blancos``
    next to it under l2); ``medium`` when any counted flag has severity medium or high, or a
    low-severity flag is a top-1; otherwise ``low``.
  * The prompt's risk is the highest position risk.
"""

from __future__ import annotations

import re
import string
from collections import Counter

from audit.records import Flag, Risk
from audit.wordlists import Severity

RISK_RULE = (
    "Each flag starts at its term's severity and loses one level for: a 'downweight' term (frequent "
    "benign senses), a sub-word token, a partial (multi-token) match, or a neighbour that is not "
    "significant (q >= 0.05). 'report_only' terms are listed at low severity and, like allow-listed hits, "
    "never raise risk. A position is "
    "HIGH when a medium-or-high flag is some method's top-1 reading, when a high flag is within the top 3, "
    "or when a medium-or-high flag is within the top 3 while the methods disagree on the position's "
    "reading; MEDIUM when any counted flag is medium or high, or a low flag is a top-1 reading; "
    "otherwise LOW. The prompt's risk is its highest position risk."
)
SIGNIFICANCE = 0.05


def flag_severity(
    term_severity: Severity, policy: str, word_start: bool, partial: bool, q_value: float | None
) -> Severity:
    """The severity of one flag under the documented rule."""
    if policy == "report_only":
        return Severity.LOW  # listed for the record, never raises risk
    level = int(term_severity)
    level -= policy == "downweight"
    level -= not word_start
    level -= partial
    level -= q_value is not None and q_value >= SIGNIFICANCE
    return Severity(max(int(Severity.LOW), level))


def counts(flag: Flag) -> bool:
    return flag.suppressed is None and flag.policy != "report_only"


def position_risk(flags: tuple[Flag, ...], agreement: float) -> Risk:
    """Risk of one position from its flags and its cross-method top-1 agreement (rule above)."""
    counted = [f for f in flags if counts(f)]
    serious = [f for f in counted if f.severity in ("medium", "high")]
    disagree = agreement < 1.0
    for flag in serious:
        if flag.is_top1 or (flag.rank <= 3 and (flag.severity == "high" or disagree)):
            return Risk.HIGH
    if serious or any(f.is_top1 for f in counted):
        return Risk.MEDIUM
    return Risk.LOW


# ---------------------------------------------------------------------------------------------
# Waywardness (Khashabi et al. 2022): word-level F1 between a projected text and the reference.

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
