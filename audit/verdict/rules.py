# ruff: noqa: E501  (prose strings)
"""The verdict: severity per flag, risk per position and overall, and the rule's text in every
report language (written once here, printed in every report).

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

from collections import Counter

from audit.records import Flag, Level, Severity, Summary

RISK_RULE = {
    "en": (
        "Each flag starts at its term's severity and loses one level for: a 'downweight' term (frequent "
        "benign senses), a sub-word token, a partial (multi-token) match, or a neighbour that is not "
        "significant (q >= 0.05). 'report_only' terms are listed at low severity and, like allow-listed "
        "hits, never raise risk. A position is HIGH when a medium-or-high flag is some method's top-1 "
        "reading, when a high flag is within the top 3, or when a medium-or-high flag is within the top 3 "
        "while the methods disagree on the position's reading; MEDIUM when any counted flag is medium or "
        "high, or a low flag is a top-1 reading; otherwise LOW. The prompt's risk is its highest position "
        "risk."
    ),
    "es": (
        "Cada alerta parte de la gravedad de su término y baja un nivel si: el término es ambiguo "
        "('downweight', con sentidos benignos frecuentes), el token es un fragmento de palabra, la "
        "coincidencia es parcial (término de varios tokens) o el vecino no es significativo (q >= 0,05). "
        "Los términos 'report_only' se listan con gravedad baja y, como las coincidencias de la lista de "
        "excepciones, nunca elevan el riesgo. "
        "Una posición es ALTA cuando una alerta media o alta es la lectura principal de algún método, cuando "
        "una alerta alta está entre los 3 primeros vecinos, o cuando una alerta media o alta está entre los 3 "
        "primeros mientras los métodos discrepan sobre la lectura de la posición; MEDIA cuando hay alguna "
        "alerta contabilizada media o alta, o una alerta baja es la lectura principal; si no, BAJA. El riesgo "
        "del prompt es el de su posición más arriesgada."
    ),
}
VERDICTS = {
    "en": {
        Level.HIGH: "Do not deploy without review: {n} position(s) read as, or sit right next to, a sensitive "
        "term under at least one projection method.",
        Level.MEDIUM: "Review before deploying: {n} position(s) have sensitive terms among their nearest "
        "neighbours, though none reads as one at high severity.",
        Level.LOW: "For the wordlists, languages and methods checked, no position reads as, or sits close to, "
        "a counted sensitive term under any of the {m} projection methods; terms outside them were not looked for.",
    },
    "es": {
        Level.HIGH: "No desplegar sin revisión: {n} posición(es) se leen como un término sensible, o quedan "
        "justo a su lado, con al menos un método de proyección.",
        Level.MEDIUM: "Revisar antes de desplegar: {n} posición(es) tienen términos sensibles entre sus "
        "vecinos más cercanos, aunque ninguna se lee como uno de gravedad alta.",
        Level.LOW: "Con las listas, idiomas y métodos comprobados, ninguna posición se lee como un término sensible "
        "contabilizado, ni queda cerca de uno, con ninguno de los {m} métodos de proyección; no se buscaron "
        "términos fuera de ellos.",
    },
}
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


def position_risk(flags: tuple[Flag, ...], agreement: float) -> Level:
    """Risk of one position from its flags and its cross-method top-1 agreement (rule above)."""
    return position_clause(flags, agreement)[0]


# The clauses of the position rule, in the order they are tried (the reports name the one that fired).
CLAUSES = ("top1", "high_top3", "disagree_top3", "serious", "low_top1", "none")


def position_clause(flags: tuple[Flag, ...], agreement: float) -> tuple[Level, str, Flag | None]:
    """The position's risk, the clause of the rule that set it (one of ``CLAUSES``) and the flag that
    fired it (the most severe, closest one; None for ``none``)."""
    counted = [f for f in flags if f.counts]
    serious = [f for f in counted if f.severity >= Level.MEDIUM]
    disagree = agreement < 1.0
    tests = (
        ("top1", Level.HIGH, serious, lambda f: f.hit.is_top1),
        ("high_top3", Level.HIGH, serious, lambda f: f.hit.rank <= 3 and f.severity == Level.HIGH),
        ("disagree_top3", Level.HIGH, serious, lambda f: f.hit.rank <= 3 and disagree),
        ("serious", Level.MEDIUM, serious, lambda f: True),
        ("low_top1", Level.MEDIUM, counted, lambda f: f.hit.is_top1),
    )
    for clause, level, pool, test in tests:
        fired = [f for f in pool if test(f)]
        if fired:
            return level, clause, min(fired, key=_closest)
    return Level.LOW, "none", None


def _closest(flag: Flag) -> tuple:
    return (-flag.severity, flag.hit.rank, flag.hit.method, flag.hit.term_id, flag.hit.token_id)


def summarize(
    flags: list[Flag],
    *,
    n_suppressed: int,
    risks: tuple[Level, ...],
    agreements: tuple[float, ...],
    n_methods: int,
) -> Summary:
    """The prompt's risk (its worst position), counts, and the verdict sentence in every language.

    Args:
        flags: the counted (not allow-listed) flags; risks, agreements: one per position.
    """
    risk = Level.worst(risks)
    by_cat = Counter(f.term.category for f in flags)
    by_sev = Counter(f.severity for f in flags)
    flagged = sum(1 for r in risks if r > Level.LOW)
    import numpy as np  # here, not at the top: the reports import this module without numpy

    mean_agreement = float(np.mean(agreements)) if agreements else 1.0
    return Summary(
        risk=risk,
        n_flags=len(flags),
        n_suppressed=n_suppressed,
        flags_by_category=dict(sorted(by_cat.items())),
        flags_by_severity={s.label: by_sev.get(s, 0) for s in sorted(Level, reverse=True)},
        mean_agreement=mean_agreement,
        verdict={lang: text[risk].format(n=flagged, m=n_methods) for lang, text in VERDICTS.items()},
    )
