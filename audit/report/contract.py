"""The JSON contract of a saved audit (schema_version "2", docs/json.md): an :class:`AuditResult` written
by :mod:`audit.report.codec` with ``schema_version`` beside its fields, its reader, and the JSON schemas
derived from the records (``schema.json``, ``summary_schema.json``; ``python -m audit.report.contract``
rewrites both). A field added to a record appears in the JSON, the reader and the schema at once.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from enum import Enum
from pathlib import Path
from typing import Any

from audit.errors import AuditInputError
from audit.records import AuditResult
from audit.report.codec import ContractError, decode, dumps, encode, hints, optional_of

SCHEMA_VERSION = "5"  # bump on any field change (docs/json.md, "Versioning")
HERE = Path(__file__).resolve().parent
AUDIT_SCHEMA = HERE / "schema.json"
SUMMARY_SCHEMA = HERE / "summary_schema.json"
FIX = "pass the JSON a scan wrote with --json"


def audit_dict(result: AuditResult) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, **encode(result)}


def render_audit(result: AuditResult) -> str:
    return dumps(audit_dict(result))


def read_json(path: Path, fix: str = FIX) -> Any:
    """The parsed JSON of ``path``, or one-line errors for a missing, unreadable or non-JSON file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise AuditInputError(f"{path} does not exist", fix) from exc
    except IsADirectoryError as exc:
        raise AuditInputError(f"{path} is a directory", fix) from exc
    except PermissionError as exc:
        raise AuditInputError(f"{path} cannot be read (permission denied)", fix) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AuditInputError(f"{path} is not JSON ({exc})", fix) from exc


def result_from_dict(data: Any, path: Path | str = "the audit", fix: str = FIX) -> AuditResult:
    """The audit a ``--json`` document holds; exit-2 errors name what is wrong and the fix.

    Raises:
        AuditInputError: not an audit, another schema_version (no reading across versions), or a
            document that does not fit the records.
    """
    if not isinstance(data, dict) or not isinstance(data.get("schema_version"), str):
        raise AuditInputError(f"{path} is not a prompt-audit result (no schema_version)", fix)
    version = data["schema_version"]
    if version != SCHEMA_VERSION:
        raise AuditInputError(
            f"{path} has schema_version {version!r}; this prompt-audit reads {SCHEMA_VERSION!r}",
            "rerun the scan with this prompt-audit to write it again",
        )
    if not {"prompt", "positions", "summary"} <= data.keys():
        raise AuditInputError(f"{path} is not a prompt-audit result (no prompt, positions and summary)", fix)
    body = {k: v for k, v in data.items() if k != "schema_version"}
    try:
        return decode(AuditResult, body)
    except ContractError as exc:
        raise AuditInputError(
            f"{path} is not a complete prompt-audit result ({exc})",
            "pass the unmodified JSON a scan wrote with --json",
        ) from exc


def read_result(path: Path) -> AuditResult:
    """Loads a ``--json`` file written by ``prompt-audit scan``."""
    return result_from_dict(read_json(path), path)


# ---------------------------------------------------------------------------------------------
# JSON schema, derived from the records


def type_schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of one field type; records go to ``defs`` (by class name) and are referenced."""
    inner = optional_of(tp)
    if inner is not None:
        return {"anyOf": [type_schema(inner, defs), {"type": "null"}]}
    if dataclasses.is_dataclass(tp):
        record_schema(tp, defs)
        return {"$ref": f"#/$defs/{tp.__name__}"}
    if isinstance(tp, type) and issubclass(tp, Enum):
        return {"enum": [m.name.lower() for m in tp]}
    if tp is float:
        return {"type": ["number", "null"]}  # null: a value that was not finite
    if tp in (str, int, bool):
        return {"type": {str: "string", int: "integer", bool: "boolean"}[tp]}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": type_schema(args[0], defs)}
        items = [type_schema(t, defs) for t in args]
        return {"type": "array", "prefixItems": items, "minItems": len(args), "maxItems": len(args)}
    if origin is dict:
        return {"type": "object", "additionalProperties": type_schema(args[1], defs)}
    raise TypeError(f"no JSON schema for {tp!r}")


def record_schema(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    """The schema of one record (added to ``defs`` once): every field, all written, no others."""
    name = cls.__name__
    if name in defs:
        return defs[name]
    defs[name] = {}  # placeholder: records can nest themselves indirectly
    doc = (cls.__doc__ or "").strip()
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": [f.name for f in dataclasses.fields(cls)],
        "properties": {n: type_schema(t, defs) for n, t in hints(cls).items()},
    }
    if doc and not doc.startswith(f"{name}("):  # not the dataclass's generated signature
        schema["description"] = " ".join(doc.split())
    defs[name] = schema
    return schema


def document_schema(root: type, *, id_: str, title: str, description: str, envelope: dict) -> dict:
    """A top-level schema: ``root``'s fields plus the ``envelope`` properties (schema_version, kind)."""
    defs: dict[str, Any] = {}
    body = dict(record_schema(root, defs))
    del defs[root.__name__]
    body["properties"] = {**envelope, **body["properties"]}
    body["required"] = [*envelope, *body["required"]]
    body.pop("description", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": id_,
        "title": title,
        "description": description,
        **body,
        "$defs": dict(sorted(defs.items())),
    }


def audit_schema() -> dict[str, Any]:
    return document_schema(
        AuditResult,
        id_=f"https://prompt-audit.invalid/schema/audit-{SCHEMA_VERSION}.json",
        title="prompt-audit audit",
        description="Written by `prompt-audit scan --json` (docs/json.md): every record field under its "
        "own name, keys sorted, floats rounded to 6 decimals (null where not finite), enums as lower-case "
        "names; identical inputs give identical bytes.",
        envelope={"schema_version": {"const": SCHEMA_VERSION}},
    )


def mismatches(schema: dict[str, Any], records: dict[str, type]) -> list[str]:
    """Where ``schema``'s definitions and the records' fields differ, one line each (empty: they agree).

    Args:
        records: schema definition name -> record class (the document's root under ``""``).
    """
    out = []
    for name, cls in records.items():
        node = schema if name == "" else schema.get("$defs", {}).get(name)
        label = name or "the document"
        if node is None:
            out.append(f"{label} ({cls.__name__}) is not in the schema")
            continue
        in_schema = set(node.get("properties", {})) - {"schema_version"}  # the envelope
        fields = {f.name for f in dataclasses.fields(cls)}
        out += [
            f"{label}.{f}: a field of {cls.__name__} missing from the schema"
            for f in sorted(fields - in_schema)
        ]
        out += [
            f"{label}.{f}: in the schema, not a field of {cls.__name__}" for f in sorted(in_schema - fields)
        ]
    return out


def reachable(root: type) -> dict[str, type]:
    """Every record ``root`` nests, by class name, with ``root`` itself under ``""``."""
    found: dict[str, type] = {}

    def walk(tp: Any) -> None:
        if dataclasses.is_dataclass(tp):
            if tp.__name__ in found:
                return
            found[tp.__name__] = tp
            for t in hints(tp).values():
                walk(t)
        for arg in typing.get_args(tp):
            walk(arg)

    walk(root)
    return {("" if cls is root else name): cls for name, cls in found.items()}


def schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas() -> None:
    """Rewrites schema.json and summary_schema.json from the records (commit the result)."""
    from audit.report.batch import summary_schema

    AUDIT_SCHEMA.write_text(schema_text(audit_schema()), encoding="utf-8")
    SUMMARY_SCHEMA.write_text(schema_text(summary_schema()), encoding="utf-8")


if __name__ == "__main__":  # python -m audit.report.contract
    write_schemas()
    sys.stdout.write(f"wrote {AUDIT_SCHEMA}\nwrote {SUMMARY_SCHEMA}\n")
