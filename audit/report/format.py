"""How numbers, tokens and method names are written in every report (decimal comma and thin-space
thousands in Spanish, 'n/a' for a missing value): one place for the reports, the diff and the batch index.
"""

from __future__ import annotations

from audit.records import AuditResult
from audit.report.i18n import strings
from audit.report.tokens import visible


def fmt(value: float | None, digits: int = 3, lang: str = "en") -> str:
    """A number with ``digits`` decimals (decimal comma in Spanish); 'n/a' for None."""
    if value is None:
        return strings(lang)["b_na"]
    text = f"{value:.{digits}f}"
    text = text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.00"
    return text.replace(".", ",") if lang == "es" else text


def sig(value: float | None, lang: str) -> str:
    """A p- or q-value with two significant digits."""
    if value is None:
        return strings(lang)["b_na"]
    text = f"{value:.2g}"
    return text.replace(".", ",") if lang == "es" else text


def pct(value: float, lang: str) -> str:
    """A share as a percentage, with the decimal comma in Spanish."""
    text = f"{100 * value:.1f} %"
    return text.replace(".", ",") if lang == "es" else text


def integer(value: int, lang: str) -> str:
    """An integer with a thousands separator (a thin space in Spanish, a comma in English)."""
    text = f"{value:,}"
    return text.replace(",", "\u202f") if lang == "es" else text


def category_label(result: AuditResult, category: str, lang: str) -> str:
    return result.category_labels.get(category, {}).get(lang, category)


def shown(token: str) -> str:
    """A token inside a sentence or a map label: surrounding spaces dropped, invisible characters escaped."""
    return visible(token.strip()) if token.strip() else visible(token)


def method_names(methods: list[str], result: AuditResult) -> str:
    """Method names, with a tied model's unembed folded into dot (it ranks exactly like dot)."""
    names = list(methods)
    if result.model.tied and "dot" in names and "unembed" in names:
        names = ["dot=unembed" if m == "dot" else m for m in names if m != "unembed"]
    return ", ".join(names)


def where(ranks: list[tuple[str, int]], result: AuditResult, t: dict, *, short: bool = False) -> str:
    """'the top-1 reading under centered, whitened; #2 under l2, dot = unembed' from (method, rank)."""
    by_rank: dict[int, list[str]] = {}
    for method, rank in ranks:
        by_rank.setdefault(rank, []).append(method)
    parts = []
    for rank in sorted(by_rank):
        methods = method_names(by_rank[rank], result)
        if short:
            parts.append(f"#{rank} {methods}")
        elif rank == 1:
            parts.append(t["where_top1"].format(methods=methods))
        else:
            parts.append(t["where_rank"].format(rank=rank, methods=methods))
    return "; ".join(parts)
