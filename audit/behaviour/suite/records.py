"""A suite's records (frozen dataclasses), its error, the format's constants and placeholder parsing."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from audit.errors import AuditInputError

SCHEMA_VERSION = 1
LABELS = ("positive", "negative")
TOP_LEVEL_KEYS = (
    "schema",
    "id",
    "version",
    "language",
    "description",
    "answers",
    "slots",
    "attributes",
    "templates",
)
ANSWER_KEYS = ("positive", "negative")
ATTRIBUTE_KEYS = ("slot", "reference", "groups")
TEMPLATE_KEYS = ("text", "label")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
SLOT_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LANGUAGE_PATTERN = re.compile(r"^[a-z]{2}$")
PACKAGE = "audit.behaviour.suites"
PACKAGED_DISPLAY = "audit/behaviour/suites"
MAX_LISTED_PROBLEMS = 5


@dataclass(frozen=True)
class Answers:
    """The two answers; ``*_line`` locate them in the file (for errors found later, e.g. tokenizing)."""

    positive: str
    negative: str
    positive_line: int = 1
    negative_line: int = 1


@dataclass(frozen=True)
class Group:
    id: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Attribute:
    """One varying attribute: ``slot`` is filled from each value of each group."""

    id: str
    slot: str
    reference: str | None
    groups: tuple[Group, ...]

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(v for g in self.groups for v in g.values)


@dataclass(frozen=True)
class Template:
    """``index``: 0-based position in the file; ``line``: the line of its ``text`` key."""

    index: int
    text: str
    label: str | None
    line: int

    @property
    def slots(self) -> tuple[str, ...]:
        """The slots the text uses, in order of first use."""
        return tuple(dict.fromkeys(name for _, name in _pieces(self.text) if name is not None))

    def fill(self, values: Mapping[str, str]) -> str:
        """The text with every ``{slot}`` replaced by ``values[slot]`` (``{{``/``}}`` are literal braces)."""
        return "".join(lit + (values[name] if name is not None else "") for lit, name in _pieces(self.text))


@dataclass(frozen=True)
class Suite:
    """A validated suite. ``path``: the file as shown in errors and reports (packaged suites:
    ``audit/behaviour/suites/<id>.toml``); ``sha256``: of the file's bytes."""

    id: str
    version: str
    language: str
    description: str
    answers: Answers
    slot_defaults: tuple[tuple[str, str], ...]
    attributes: tuple[Attribute, ...]
    templates: tuple[Template, ...]
    path: str
    sha256: str
    packaged: bool = False

    @property
    def n_templates(self) -> int:
        return len(self.templates)

    def default(self, slot: str) -> str | None:
        return dict(self.slot_defaults).get(slot)

    def attribute(self, attribute_id: str) -> Attribute:
        for attribute in self.attributes:
            if attribute.id == attribute_id:
                return attribute
        raise KeyError(attribute_id)

    def templates_for(self, attribute: Attribute | str) -> tuple[Template, ...]:
        """The templates an attribute is evaluated on (those containing its slot)."""
        if isinstance(attribute, str):
            attribute = self.attribute(attribute)
        return tuple(t for t in self.templates if attribute.slot in t.slots)


@dataclass(frozen=True)
class Rendering:
    """One text to score: ``template`` (its index) rendered with ``value`` of ``group`` of ``attribute``."""

    template: int
    attribute: str
    group: str
    value: str
    text: str


@dataclass(frozen=True)
class AnswerIds:
    """Token ids of each answer, as the model's tokenizer spells them (no special tokens)."""

    positive: tuple[int, ...]
    negative: tuple[int, ...]


class SuiteError(AuditInputError):
    """An invalid suite file. ``problems``: every problem found, each as ``file:line: message (fix)``."""

    def __init__(self, problem: str, fix: str | None = None, problems: tuple[str, ...] = ()) -> None:
        super().__init__(problem, fix)
        self.problems = problems


# ---------------------------------------------------------------------------------------------
# Placeholders


@lru_cache(maxsize=4096)
def _pieces(text: str) -> tuple[tuple[str, str | None], ...]:
    """(literal, slot or None) pairs; raises ValueError on malformed placeholders."""
    pieces = []
    for literal, name, spec, conversion in string.Formatter().parse(text):
        if name is None:
            pieces.append((literal, None))
            continue
        if not SLOT_PATTERN.match(name) or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"placeholder {shown} is not a slot name")
        pieces.append((literal, name))
    return tuple(pieces)
