"""The audit engine: one code path from prompt paths to records (see :mod:`audit.engine.run`).

``scan(prompts, config)`` is what the CLI, the demo, ``--jobs`` and the Python API call; a single scan is
a batch of one (``audit_one``). Nothing here renders or writes files (:mod:`audit.report.writers`).
"""

from audit.engine.plan import Inputs, Item, adapter_names, collect, single
from audit.engine.run import Listener, Outcome, audit_one, scan
from audit.engine.session import prepare
from audit.engine.steps import audit_prompt

__all__ = [
    "Inputs",
    "Item",
    "Listener",
    "Outcome",
    "adapter_names",
    "audit_one",
    "audit_prompt",
    "collect",
    "prepare",
    "scan",
    "single",
]
