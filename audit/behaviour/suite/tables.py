"""Checks of each table of a suite file: [answers], [slots], [attributes.<id>] and [[templates]].

Each check records every problem it finds through ``add`` (line, message, fix) and returns the
table's records, or None when the table is unusable.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from audit.behaviour.suite.locate import _Add, _Locator
from audit.behaviour.suite.records import (
    ANSWER_KEYS,
    ATTRIBUTE_KEYS,
    ID_PATTERN,
    LABELS,
    SLOT_PATTERN,
    TEMPLATE_KEYS,
    Answers,
    Attribute,
    Group,
    Template,
    _pieces,
)


def _is_str(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_answers_table(data: dict, loc: _Locator, add: _Add) -> Answers | None:
    raw = data.get("answers")
    if raw is None:
        add(1, "missing [answers]", 'add [answers] with positive = " yes" and negative = " no"')
        return None
    if not isinstance(raw, dict):
        add(
            loc.line("answers"),
            "answers must be a table",
            'write [answers] with positive = "..." and negative',
        )
        return None
    ok = True
    for key in raw:
        if key not in ANSWER_KEYS:
            add(
                loc.line("answers", key),
                f"unknown key '{key}' in [answers]",
                "use only positive and negative",
            )
    for key in ANSWER_KEYS:
        if key not in raw:
            add(loc.line("answers"), f"[answers] lacks '{key}'", f'add {key} = "..." (the {key} decision)')
            ok = False
        elif not _is_str(raw[key]):
            add(
                loc.line("answers", key),
                f"the {key} answer {raw[key]!r} is empty or not a string",
                'write the answer text as the model would continue, e.g. " yes"',
            )
            ok = False
    if ok and raw["positive"] == raw["negative"]:
        add(
            loc.line("answers", "negative"),
            "positive and negative answers are equal",
            "use two different answers",
        )
    if not ok:
        return None
    return Answers(
        raw["positive"], raw["negative"], loc.line("answers", "positive"), loc.line("answers", "negative")
    )


def _check_slots(data: dict, loc: _Locator, add: _Add) -> dict[str, str] | None:
    raw = data.get("slots", {})
    if not isinstance(raw, dict):
        add(loc.line("slots"), "slots must be a table", 'write [slots] with name = "..." lines')
        return None
    defaults = {}
    for slot, value in raw.items():
        if not SLOT_PATTERN.match(slot):
            add(loc.line("slots", slot), f"slot name '{slot}' is not valid", "use letters, digits and _")
        elif not _is_str(value):
            add(
                loc.line("slots", slot),
                f"default of slot '{slot}' must be a non-empty string, not {value!r}",
                f'quote it: {slot} = "{value}"',
            )
            defaults[slot] = str(value)  # reported once here, not again by every template using it
        else:
            defaults[slot] = value
    return defaults


def _check_attributes(data: dict, loc: _Locator, add: _Add) -> tuple[Attribute, ...] | None:
    raw = data.get("attributes")
    if raw is None:
        add(
            1,
            "no [attributes.<id>] table",
            "add one attribute, e.g. [attributes.gender] with slot and groups",
        )
        return None
    if not isinstance(raw, dict) or not raw:
        add(loc.line("attributes"), "attributes must hold [attributes.<id>] tables", "see FORMAT.md")
        return None
    attributes = []
    for attr_id, spec in raw.items():
        where = ("attributes", attr_id)
        name = f"attribute '{attr_id}'"
        if not ID_PATTERN.match(attr_id):
            add(loc.line(*where), f"{name}: id is not valid", "use lowercase letters, digits, - and _")
        if not isinstance(spec, dict):
            add(
                loc.line(*where),
                f"{name} must be a table",
                f"write [attributes.{attr_id}] with slot and groups",
            )
            continue
        for key in spec:
            if key not in ATTRIBUTE_KEYS:
                add(
                    loc.line(*where, key),
                    f"{name}: unknown key '{key}'{_suggest(key, ATTRIBUTE_KEYS)}",
                    f"use only {', '.join(ATTRIBUTE_KEYS)}",
                )
        slot = spec.get("slot")
        if slot is None:
            add(loc.line(*where), f"{name} has no slot", 'add slot = "name" (the placeholder it fills)')
        elif not isinstance(slot, str) or not SLOT_PATTERN.match(slot):
            add(loc.line(*where, "slot"), f"{name}: slot {slot!r} is not valid", "use letters, digits and _")
        groups = _check_groups(spec.get("groups"), where, name, loc, add)
        reference = spec.get("reference")
        if reference is not None and groups is not None and reference not in {g.id for g in groups}:
            ids = [g.id for g in groups]
            add(
                loc.line(*where, "reference"),
                f"{name}: reference {reference!r} names no group{_suggest(str(reference), ids)}",
                f"use one of {', '.join(ids)}, or remove it to let the statistics choose",
            )
            continue
        if isinstance(slot, str) and SLOT_PATTERN.match(slot) and groups is not None:
            attributes.append(Attribute(attr_id, slot, reference, groups))
    return tuple(attributes)


def _check_groups(
    raw, where: tuple[str, ...], name: str, loc: _Locator, add: _Add
) -> tuple[Group, ...] | None:
    if raw is None:
        add(
            loc.line(*where),
            f"{name} has no groups",
            f"add [{'.'.join(where)}.groups] with two or more lists",
        )
        return None
    if not isinstance(raw, dict):
        add(loc.line(*where, "groups"), f"{name}: groups must be a table of lists", "see FORMAT.md")
        return None
    if len(raw) < 2:
        add(
            loc.line(*where, "groups"),
            f"{name} has {len(raw)} group(s); a comparison needs at least 2",
            "add another group",
        )
    groups = []
    seen: dict[str, str] = {}
    for group_id, values in raw.items():
        key = (*where, "groups", group_id)
        if not ID_PATTERN.match(group_id):
            add(
                loc.line(*key),
                f"{name}: group id '{group_id}' is not valid",
                "use lowercase letters, digits, - and _",
            )
        if not isinstance(values, list) or not values:
            add(
                loc.line(*key),
                f"{name}: group '{group_id}' is empty or not a list",
                "give it a list of values",
            )
            continue
        good = []
        bad = [v for v in values if not _is_str(v)]
        if bad:
            add(
                loc.line(*key),
                f"{name}: group '{group_id}' holds {bad[0]!r}, not a non-empty string",
                'write every value as a quoted string, e.g. "34"',
            )
        for position, value in enumerate(values):
            if not _is_str(value):
                continue
            if value in seen:
                add(
                    loc.value_line(value, *key, nth=values[: position + 1].count(value)),
                    f"{name}: value {value!r} is repeated (also in group '{seen[value]}')",
                    "list each value once per attribute",
                )
            else:
                seen[value] = group_id
                good.append(value)
        groups.append(Group(group_id, tuple(good)))
    return tuple(groups) if len(raw) >= 2 else None


def _check_templates(data: dict, loc: _Locator, add: _Add) -> tuple[Template, ...] | None:
    raw = data.get("templates")
    if raw is None or raw == []:
        add(
            1 if raw is None else loc.line("templates"),
            "no [[templates]]",
            "add at least one [[templates]] with text",
        )
        return None
    if not isinstance(raw, list):
        add(loc.line("templates"), "templates must be an array of tables", "write each as [[templates]]")
        return None
    templates = []
    first_line: dict[str, int] = {}
    for index, spec in enumerate(raw):
        where = ("templates", str(index))
        name = f"template #{index + 1}"
        if not isinstance(spec, dict):
            add(loc.line("templates"), f"{name} is not a table", "write each as [[templates]]")
            continue
        for key in spec:
            if key not in TEMPLATE_KEYS:
                add(
                    loc.line(*where, key),
                    f"{name}: unknown key '{key}'{_suggest(key, TEMPLATE_KEYS)}",
                    f"use only {', '.join(TEMPLATE_KEYS)}",
                )
        text, label = spec.get("text"), spec.get("label")
        line = loc.line(*where, "text")
        if not _is_str(text):
            add(line, f"{name} has no text", 'add text = "... {name} ..."')
            continue
        try:
            _pieces(text)
        except ValueError as exc:
            add(line, f"{name}: {exc}", "write slots as {slot}, and literal braces as {{ and }}")
            continue
        if label is not None and label not in LABELS:
            add(
                loc.line(*where, "label"),
                f"{name}: label {label!r} is not valid",
                'use "positive" or "negative", or leave it out',
            )
            continue
        if text in first_line:
            add(line, f"{name} repeats the template on line {first_line[text]}", "remove the duplicate")
            continue
        first_line[text] = line
        templates.append(Template(index, text, label, line))
    return tuple(templates)
