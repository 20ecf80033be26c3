"""Records <-> JSON, written once and generically: every dataclass field under its own name, driven by
``dataclasses.fields`` and the type hints of :mod:`audit.records` (and of any other frozen record).

Encoding: enums as their lower-case name (``"medium"``), tuples as arrays, floats rounded once to
``DECIMALS`` decimals (no ``-0.0``; NaN and infinities as ``null``). :func:`dumps` sorts keys, so identical
records give identical bytes. Decoding checks every value against its field's type, refuses unknown and
missing fields (a field with a default may be absent), and rebuilds the same records:
``decode(cls, encode(x)) == x`` for records whose floats are already rounded (:func:`canonical`).
Plain Python: no numpy, no torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from enum import Enum
from functools import cache
from typing import Any, TypeVar, Union

DECIMALS = 6
T = TypeVar("T")


class ContractError(ValueError):
    """A JSON value that does not fit the record field it is read into (``where`` names the field)."""

    def __init__(self, where: str, problem: str):
        super().__init__(f"{where or 'the document'}: {problem}")
        self.where = where
        self.problem = problem


@cache
def hints(cls: type) -> dict[str, Any]:
    """Field name -> resolved type of a dataclass (string annotations resolved in its module)."""
    resolved = typing.get_type_hints(cls)
    return {f.name: resolved[f.name] for f in dataclasses.fields(cls)}


def number(value: float | None) -> float | None:
    """A float as the JSON keeps it: rounded once, no ``-0.0``, None for NaN and infinities."""
    if value is None or not math.isfinite(value):
        return None
    rounded = round(float(value), DECIMALS)
    return 0.0 if rounded == 0 else rounded


def optional_of(tp: Any) -> Any | None:
    """``X`` for ``X | None``, else None."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
        raise TypeError(f"unsupported union {tp!r}: only X | None")
    return None


def encode(value: Any, tp: Any = None) -> Any:
    """The JSON-ready form (dicts, lists, str, int, float, bool, None) of a record or a field value."""
    if tp is None:
        tp = type(value)
    if value is None:
        return None
    inner = optional_of(tp)
    if inner is not None:
        return encode(value, inner)
    if dataclasses.is_dataclass(tp):
        return {name: encode(getattr(value, name), t) for name, t in hints(type(value)).items()}
    if isinstance(tp, type) and issubclass(tp, Enum):
        return value.name.lower()
    if tp is float:
        return number(value)
    if tp in (str, int, bool):
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return [encode(v, args[0]) for v in value]
        return [encode(v, t) for v, t in zip(value, args)]
    if origin is dict:
        return {str(k): encode(v, args[1]) for k, v in value.items()}
    raise TypeError(f"no JSON form for {tp!r}")


def decode(tp: type[T] | Any, data: Any, where: str = "") -> T:
    """The record (or field value) of type ``tp`` that ``data`` encodes.

    Raises:
        ContractError: a value of the wrong type, an unknown or missing field, an unknown enum member.
    """
    inner = optional_of(tp)
    if inner is not None:
        return None if data is None else decode(inner, data, where)
    if dataclasses.is_dataclass(tp):
        return _record(tp, data, where)
    if isinstance(tp, type) and issubclass(tp, Enum):
        if not isinstance(data, str) or data.upper() not in tp.__members__:
            names = ", ".join(m.name.lower() for m in tp)
            raise ContractError(where, f"expected one of {names}, got {data!r}")
        return tp[data.upper()]
    if tp is float:
        if data is None:
            return math.nan  # written for a value that was not finite
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise ContractError(where, f"expected a number, got {_kind(data)}")
        return float(data)
    if tp in (str, int, bool):
        if type(data) is not tp:
            raise ContractError(where, f"expected {tp.__name__}, got {_kind(data)}")
        return data
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple:
        if not isinstance(data, list):
            raise ContractError(where, f"expected an array, got {_kind(data)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(data))
        if len(data) != len(args):
            raise ContractError(where, f"expected {len(args)} items, got {len(data)}")
        return tuple(decode(t, v, f"{where}[{i}]") for i, (t, v) in enumerate(zip(args, data)))
    if origin is dict:
        if not isinstance(data, dict):
            raise ContractError(where, f"expected an object, got {_kind(data)}")
        return {k: decode(args[1], v, f"{where}.{k}") for k, v in data.items()}
    raise TypeError(f"no JSON form for {tp!r}")


def _record(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ContractError(where, f"expected an object ({cls.__name__}), got {_kind(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ContractError(where, f"unknown field(s) {', '.join(unknown)} in {cls.__name__}")
    values = {}
    for name, tp in hints(cls).items():
        path = f"{where}.{name}" if where else name
        if name in data:
            values[name] = decode(tp, data[name], path)
        elif not _has_default(fields[name]):
            raise ContractError(path, f"missing field of {cls.__name__}")
    return cls(**values)


def _has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _kind(data: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(data), "null" if data is None else type(data).__name__
    )


def dumps(data: Any) -> str:
    """The one JSON text form: keys sorted, two-space indent, UTF-8 text (no ``\\u`` escapes), a final
    newline."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def canonical(record: T) -> T:
    """The record as its JSON keeps it (floats rounded once)."""
    return decode(type(record), encode(record))
