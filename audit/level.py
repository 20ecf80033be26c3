"""The one order of term severities, flag severities and risks (plain Python, no dependencies)."""

from __future__ import annotations

from enum import IntEnum


class Level(IntEnum):
    """low < medium < high: the one order of term severities, flag severities and risks."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str) -> Level:
        return cls[value.upper()]

    @classmethod
    def worst(cls, levels) -> Level:
        return max(levels, default=cls.LOW)


Severity = Level  # of a term or a flag
Risk = Level  # of a position or a prompt
