"""Where problems are: the TOML line locator and the collection of problems into one SuiteError."""

from __future__ import annotations

import re
from collections.abc import Callable

from audit.behaviour.suite.records import MAX_LISTED_PROBLEMS, SuiteError

_Add = Callable[[int, str, str], None]  # records a problem: (line, message, fix)


class _Problems:
    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[tuple[int, str, str]] = []

    def add(self, line: int, message: str, fix: str) -> None:
        self.items.append((line or 1, message, fix))

    def raise_if_any(self) -> None:
        if not self.items:
            return
        items = sorted(self.items, key=lambda item: item[0])
        full = tuple(f"{self.path}:{line}: {message} ({fix})" for line, message, fix in items)
        if len(items) == 1:
            line, message, fix = items[0]
            raise SuiteError(f"{self.path}:{line}: {message}", fix, full)
        listed = "; ".join(full[:MAX_LISTED_PROBLEMS])
        more = len(full) - MAX_LISTED_PROBLEMS
        raise SuiteError(
            f"{len(full)} problems in behaviour suite: {listed}" + (f"; and {more} more" if more > 0 else ""),
            "fix each line named",
            full,
        )


# ---------------------------------------------------------------------------------------------
# Line numbers: TOML parsers drop positions, so the file text is scanned for tables and keys.

_BARE_OR_QUOTED = r"(?:[A-Za-z0-9_-]+|\"[^\"\\]*\"|'[^']*')"
_KEY_PATH = rf"{_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*"
_ARRAY_HEADER = re.compile(rf"^\s*\[\[\s*({_KEY_PATH})\s*\]\]")
_TABLE_HEADER = re.compile(rf"^\s*\[\s*({_KEY_PATH})\s*\]")
_KEY_LINE = re.compile(rf"^\s*({_KEY_PATH})\s*=")


def _split_key(key_path: str) -> tuple[str, ...]:
    parts = re.findall(_BARE_OR_QUOTED, key_path)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


class _Locator:
    """Maps key paths (``("attributes", "origin", "slot")``, ``("templates", "3", "text")``) to lines."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.where: dict[tuple[str, ...], int] = {}
        self.starts: list[int] = []  # lines that open a key or a table: ends of value spans
        table: tuple[str, ...] = ()
        counts: dict[tuple[str, ...], int] = {}
        in_string: str | None = None
        for number, line in enumerate(self.lines, start=1):
            if in_string:
                if line.count(in_string) % 2:
                    in_string = None
                continue
            if match := _ARRAY_HEADER.match(line):
                name = _split_key(match.group(1))
                index = counts.get(name, -1) + 1
                counts[name] = index
                table = (*name, str(index))
                self._record(table, number)
            elif match := _TABLE_HEADER.match(line):
                table = _split_key(match.group(1))
                self._record(table, number)
            elif match := _KEY_LINE.match(line):
                self._record((*table, *_split_key(match.group(1))), number)
            for quote in ('"""', "'''"):
                if line.count(quote) % 2:
                    in_string = quote
                    break

    def _record(self, key: tuple[str, ...], number: int) -> None:
        self.where.setdefault(key, number)
        self.starts.append(number)

    def line(self, *key: str) -> int:
        """The line of ``key``; else of its nearest enclosing table; else 1."""
        path = tuple(key)
        while path:
            if path in self.where:
                return self.where[path]
            path = path[:-1]
        return 1

    def value_line(self, value: str, *key: str, nth: int = 1) -> int:
        """The line, within the value of ``key`` (an array spanning lines), of ``value``'s nth occurrence."""
        start = self.line(*key)
        end = next((s for s in self.starts if s > start), len(self.lines) + 1)
        seen = 0
        for number in range(start, end):
            line = self.lines[number - 1]
            seen += line.count(f'"{value}"') + line.count(f"'{value}'")
            if seen >= nth:
                return number
        return start
