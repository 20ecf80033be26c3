"""``scan --json``: the audit as its JSON contract keeps it (schema_version "2", docs/json.md).

One generic codec (:mod:`audit.report.codec`) writes every record field under its own name; keys sorted,
floats rounded once: identical inputs give identical bytes. :mod:`audit.report.load` reads it back.
"""

from __future__ import annotations

from audit.records import AuditResult
from audit.report.codec import DECIMALS
from audit.report.contract import SCHEMA_VERSION, audit_dict, render_audit

__all__ = ["DECIMALS", "SCHEMA_VERSION", "audit_dict", "render_json"]


def render_json(result: AuditResult) -> str:
    return render_audit(result)
