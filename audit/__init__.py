"""prompt-audit: bias audit for projected soft prompts."""

__version__ = "0.1.0"

__all__ = ["__version__", "run_audit", "AuditConfig", "load_prompt", "load_vocabulary", "load_wordlists"]


def __getattr__(name: str):
    # Lazy: `import audit` stays cheap (the CLI imports torch only when it needs it).
    if name == "run_audit":
        from audit.pipeline import run_audit

        return run_audit
    if name == "AuditConfig":
        from audit.config import AuditConfig

        return AuditConfig
    if name == "load_prompt":
        from audit.inputs.prompts import load_prompt

        return load_prompt
    if name == "load_vocabulary":
        from audit.inputs.formats import load_vocabulary

        return load_vocabulary
    if name == "load_wordlists":
        from audit.terms.load import load_wordlists

        return load_wordlists
    raise AttributeError(name)
