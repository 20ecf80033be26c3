"""Validation of a parsed suite file: the header, each table, then the checks across tables."""

from __future__ import annotations

from audit.behaviour.suite.locate import _Add, _Locator, _Problems
from audit.behaviour.suite.records import (
    ID_PATTERN,
    LANGUAGE_PATTERN,
    SCHEMA_VERSION,
    TOP_LEVEL_KEYS,
    Attribute,
    Template,
)
from audit.behaviour.suite.tables import (
    _check_answers_table,
    _check_attributes,
    _check_slots,
    _check_templates,
    _is_str,
    _suggest,
)


def _validate(data: dict, loc: _Locator, problems: _Problems) -> dict | None:
    """Checks the parsed file; returns the Suite's fields when it is valid, else None."""
    add = problems.add
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            add(
                loc.line(key),
                f"unknown top-level key '{key}'{_suggest(key, TOP_LEVEL_KEYS)}",
                f"use only {', '.join(TOP_LEVEL_KEYS)}",
            )
    schema = data.get("schema")
    if "schema" not in data:
        add(1, "missing 'schema'", f"add `schema = {SCHEMA_VERSION}` at the top")
    elif type(schema) is not int or schema != SCHEMA_VERSION:
        add(
            loc.line("schema"),
            f"schema {schema!r} is not supported",
            f"this version of prompt-audit reads `schema = {SCHEMA_VERSION}`",
        )
        return None  # another schema: the other checks would only mislead
    for key, pattern, example in (
        ("id", ID_PATTERN, 'id = "hiring-xx" (lowercase letters, digits, - and _)'),
        ("version", None, 'version = "1.0.0"'),
        ("language", LANGUAGE_PATTERN, 'language = "es" (an ISO 639-1 code)'),
    ):
        value = data.get(key)
        if key not in data:
            add(1, f"missing '{key}'", f"add {example}")
        elif not _is_str(value) or (pattern and not pattern.match(value)):
            add(loc.line(key), f"{key} {value!r} is not valid", f"write {example}")
    if "description" in data and not isinstance(data["description"], str):
        add(loc.line("description"), "description must be a string", 'write description = "..."')
    answers = _check_answers_table(data, loc, add)
    defaults = _check_slots(data, loc, add)
    attributes = _check_attributes(data, loc, add)
    templates = _check_templates(data, loc, add)
    if answers is None or defaults is None or attributes is None or templates is None:
        return None
    _check_cross(defaults, attributes, templates, loc, add)
    if problems.items:
        return None
    return {
        "id": data["id"],
        "version": data["version"],
        "language": data["language"],
        "description": data.get("description", ""),
        "answers": answers,
        "slot_defaults": tuple(defaults.items()),
        "attributes": attributes,
        "templates": templates,
    }


def _check_cross(
    defaults: dict[str, str],
    attributes: tuple[Attribute, ...],
    templates: tuple[Template, ...],
    loc: _Locator,
    add: _Add,
) -> None:
    varied = {a.slot for a in attributes}
    used = {slot for t in templates for slot in t.slots}
    for attribute in attributes:
        if attribute.slot not in used:
            add(
                loc.line("attributes", attribute.id, "slot"),
                f"attribute '{attribute.id}': no template uses its slot {{{attribute.slot}}}",
                f"add {{{attribute.slot}}} to the templates or remove the attribute",
            )
    for slot in defaults:
        if slot not in used:
            add(loc.line("slots", slot), f"slot '{slot}' in [slots] is used by no template", "remove it")
    for template in templates:
        slots = template.slots
        name = f"template #{template.index + 1}"
        unknown = [s for s in slots if s not in varied and s not in defaults]
        for slot in unknown:
            add(
                template.line,
                f"{name} uses {{{slot}}}, which is neither an attribute's slot nor in [slots]"
                + _suggest(slot, varied | set(defaults)),
                f'add {slot} = "..." under [slots], or fix the placeholder ({{{{ }}}} for literal braces)',
            )
        if not any(s in varied for s in slots):
            add(
                template.line,
                f"{name} uses no attribute's slot, so it would never be rendered",
                f"add one of {', '.join('{' + s + '}' for s in sorted(varied))} or remove the template",
            )
            continue
        for slot in slots:
            if slot in defaults or slot in unknown:
                continue
            if any(other in varied for other in slots if other != slot):
                add(
                    template.line,
                    f"{name} uses {{{slot}}} with no default, needed while another attribute varies",
                    f'add {slot} = "..." under [slots]',
                )
