"""prompt-audit: bias audit for projected soft prompts.

The Python API (lazy imports: ``import audit`` stays cheap, torch is imported when an audit runs)::

    from audit import AuditConfig, scan, write_reports

    outcomes = scan(["audit/demo/adapters"], AuditConfig(model="gemma-3-270m"))
    write_reports(outcomes, "reports/api")
"""

import os

__version__ = "0.1.0"

# Deterministic output needs reproducible float32 maths: without conditional numerical reproducibility,
# MKL picks kernels by the memory alignment of its inputs, so the same scan could flip a last digit (and a
# tie between two neighbours) from one run to the next. Set before torch loads MKL (torch is imported
# lazily); a value the user set is kept.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__all__ = [
    "__version__",
    "AuditConfig",
    "Item",
    "Outcome",
    "audit_one",
    "load_prompt",
    "load_vocabulary",
    "load_wordlists",
    "read_result",
    "scan",
    "write_reports",
]

_WHERE = {
    "AuditConfig": "audit.config",
    "Item": "audit.engine",
    "Outcome": "audit.engine",
    "audit_one": "audit.engine",
    "scan": "audit.engine",
    "write_reports": "audit.output",
    "load_prompt": "audit.inputs.prompts",
    "load_vocabulary": "audit.inputs.formats",
    "load_wordlists": "audit.terms.load",
    "read_result": "audit.report.load",
}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(_WHERE[name]), name)
