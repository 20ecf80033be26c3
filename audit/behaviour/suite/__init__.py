"""Counterfactual probe suites for the behavioural check: loading, validation, rendering.

A suite (TOML, ``schema = 1``; full description in ``audit/behaviour/suites/FORMAT.md``) holds a
decision task (``[[templates]]`` with ``{slot}`` placeholders and an optional correct ``label``), the
two answers whose log-probabilities decide it (``[answers]``), the attributes that vary
(``[attributes.<id>]``: a ``slot`` and named ``groups`` of values) and a default value per slot
(``[slots]``, an extension of the design's format).

Design:
    * An attribute is evaluated on every template that contains its slot. Each such template is
      rendered with every value of every group of the attribute (a crossed, counterfactual design:
      templates x values); every other slot of the template takes its ``[slots]`` default. Two
      attributes may share a slot (``origin`` and ``gender`` both vary ``{name}``).
    * A template that uses two or more slots needs a default for each slot that another attribute
      varies around (``{age}`` while the name varies, ``{name}`` while the age varies); a template
      with a single varying slot needs none.
    * Renderings are deduplicated by text across attributes (``unique_texts``): the runner scores each
      distinct text once. When the ``gender`` groups are exactly the ``origin`` names split by
      gender, gender costs no extra forward passes and is balanced across origins.
    * ``reference`` names the group that impact ratios compare with; without it the statistics choose
      (the group with the highest selection rate). ``label`` (``positive``/``negative``) is the
      correct answer: the statistics use it for task accuracy and to restrict selection rates to
      qualifying CVs; the suite only carries it.

Every problem in a file is an ``AuditInputError`` naming ``file:line`` and the fix. Pure Python:
no torch, numpy or transformers; answer encodability is checked with a caller-supplied ``encode``
(``check_answers``).
"""

from audit.behaviour.suite.load import load_suite, packaged_suites, parse_suite
from audit.behaviour.suite.records import (
    ANSWER_KEYS,
    ATTRIBUTE_KEYS,
    ID_PATTERN,
    LABELS,
    LANGUAGE_PATTERN,
    MAX_LISTED_PROBLEMS,
    PACKAGE,
    PACKAGED_DISPLAY,
    SCHEMA_VERSION,
    SLOT_PATTERN,
    TEMPLATE_KEYS,
    TOP_LEVEL_KEYS,
    AnswerIds,
    Answers,
    Attribute,
    Group,
    Rendering,
    Suite,
    SuiteError,
    Template,
)
from audit.behaviour.suite.render import check_answers, render, unique_texts

__all__ = [
    "ANSWER_KEYS",
    "ATTRIBUTE_KEYS",
    "ID_PATTERN",
    "LABELS",
    "LANGUAGE_PATTERN",
    "MAX_LISTED_PROBLEMS",
    "PACKAGE",
    "PACKAGED_DISPLAY",
    "SCHEMA_VERSION",
    "SLOT_PATTERN",
    "TEMPLATE_KEYS",
    "TOP_LEVEL_KEYS",
    "AnswerIds",
    "Answers",
    "Attribute",
    "Group",
    "Rendering",
    "Suite",
    "SuiteError",
    "Template",
    "check_answers",
    "load_suite",
    "packaged_suites",
    "parse_suite",
    "render",
    "unique_texts",
]
