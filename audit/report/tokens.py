"""How a token is shown to a reader: invisible characters as escaped code points, foreign scripts with
their code points (a font may lack their glyphs and draw boxes). Plain strings: templates autoescape them.
"""

from __future__ import annotations

import unicodedata

# Characters a reader cannot see: controls, format characters (zero-width joiners, bidi marks),
# surrogates, private use, unassigned, line and paragraph separators.
INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
# Letters of these scripts are in every common font; others get their code points shown too.
COMMON_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def escape_invisible(text: str) -> str:
    """``text`` with every invisible character (and every space other than U+0020) as ``\\uXXXX``."""
    out = []
    for char in text:
        category = unicodedata.category(char)
        if category in INVISIBLE or (category == "Zs" and char != " "):
            out.append(_escape(char))
        else:
            out.append(char)
    return "".join(out)


def visible(token: str) -> str:
    """A token as a reader should see it: a whitespace-only or empty token as its code points
    (``U+0020``), invisible characters escaped, everything else (``▁``, accents) unchanged."""
    if not token:
        return "''"
    if not token.strip():
        return " ".join(f"U+{ord(c):04X}" for c in token)
    return escape_invisible(token)


def quoted(token: str) -> str:
    """``'token'`` with its spaces kept visible by the quotes (or its code points when it is blank)."""
    return f"'{visible(token)}'" if token.strip() else visible(token)


def codepoints(token: str) -> str:
    """``U+0E02 U+0E32 U+0E27`` for a token with letters outside Latin, Greek and Cyrillic, else ''."""
    foreign = any(
        unicodedata.category(c)[0] in "LM" and not unicodedata.name(c, "").startswith(COMMON_SCRIPTS)
        for c in token
    )
    return " ".join(f"U+{ord(c):04X}" for c in token.strip()) if foreign else ""
