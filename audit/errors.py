"""Errors a user can fix (the CLI prints them as one line and exits with code 2), and the exit codes.

Exit codes: 0 done and risk below --fail-on; 1 risk at or above --fail-on; 2 usage or input error (one
line on stderr, no output file written); 3 internal error (a bug: please report it).
"""

from __future__ import annotations

EXIT_OK, EXIT_RISK, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


def exit_code(risk: str, fail_on: str) -> int:
    """EXIT_RISK when ``risk`` (low|medium|high) is at or above ``fail_on`` (never|low|medium|high)."""
    if fail_on == "never":
        return EXIT_OK
    order = ("low", "medium", "high")
    return EXIT_RISK if order.index(risk) >= order.index(fail_on) else EXIT_OK


class AuditInputError(Exception):
    """Bad input or usage: the message names the problem and the fix, in one line."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}: {fix}" if fix else problem)
