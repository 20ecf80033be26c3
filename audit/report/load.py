"""Reading a saved audit (the JSON contract, docs/json.md) back into the records the renderers take.

Every renderer works from records rounded as the JSON stores them (:func:`canonical`), so a report
rendered later from the JSON (``prompt-audit render``) is byte-identical to the scan's own.
"""

from __future__ import annotations

from audit.records import AuditResult
from audit.report import codec
from audit.report.contract import read_result, result_from_dict

__all__ = ["canonical", "read_result", "result_from_dict"]


def canonical(result: AuditResult) -> AuditResult:
    """The result as its JSON keeps it (floats rounded once)."""
    return codec.canonical(result)
