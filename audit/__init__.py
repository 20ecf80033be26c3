"""prompt-audit: bias audit for projected soft prompts.

The Python API (lazy imports: ``import audit`` stays cheap, torch is imported when an audit runs)::

    from audit import AuditConfig, scan, write_reports

    outcomes = scan(["audit/demo/adapters"], AuditConfig(model="gemma-3-270m"))
    write_reports(outcomes, "reports/api")
"""

__version__ = "0.1.0"

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
