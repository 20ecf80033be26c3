"""The one string catalogue (English and Spanish) that the reports, the diff and the batch index share.

Templates never contain prose: they print these strings (``t.key``) and values computed in Python. Each
language lives in its own module (``strings_en``, ``strings_es``) with three sections: ``REPORT`` (the
audit's HTML, Markdown and terminal summary), ``DIFF`` and ``BATCH``. The diff and the batch index read
the report's strings with their own section on top (:func:`diff_strings`, :func:`batch_strings`): a word
both use is written once, in ``REPORT``; a section repeats a key only where it says something else.
"""

from __future__ import annotations

from audit.report import strings_en, strings_es

LANGUAGES = ("en", "es")
_MODULES = {"en": strings_en, "es": strings_es}

STRINGS: dict[str, dict[str, str]] = {lang: m.REPORT for lang, m in _MODULES.items()}
DIFF_STRINGS: dict[str, dict[str, str]] = {lang: {**m.REPORT, **m.DIFF} for lang, m in _MODULES.items()}
BATCH_STRINGS: dict[str, dict[str, str]] = {lang: {**m.REPORT, **m.BATCH} for lang, m in _MODULES.items()}


def _check(lang: str) -> None:
    if lang not in _MODULES:
        raise ValueError(f"report language {lang!r} not in {LANGUAGES}")


def strings(lang: str) -> dict[str, str]:
    """The audit report's strings."""
    _check(lang)
    return STRINGS[lang]


def diff_strings(lang: str) -> dict[str, str]:
    """The diff's strings: the report's, with the diff's own on top."""
    _check(lang)
    return DIFF_STRINGS[lang]


def batch_strings(lang: str) -> dict[str, str]:
    """The batch index's strings: the report's, with the batch's own on top."""
    _check(lang)
    return BATCH_STRINGS[lang]
