"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class AuditInputError(Exception):
    """Bad input or usage: the message names the problem and the fix, in one line."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}: {fix}" if fix else problem)
