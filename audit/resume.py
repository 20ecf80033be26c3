"""``--resume``: a batch's record of what it finished, and the adapters a rerun need not audit again.

A batch writes ``DIR/.prompt-audit-batch`` (JSON) beside its reports: for every adapter whose reports are
written, the fingerprint of what produced them (the prompt's sha256, the model's key, the suite's and
the wordlists' sha256, every option of the run, the report language and formats, the tool version:
:func:`audit.engine.shards.plan`). It is rewritten (atomically) after each adapter, so a run stopped at
any point leaves an exact record. A rerun with ``--resume`` reads each such adapter's JSON back instead
of auditing it again; anything else (a new adapter, a changed file or option, a missing report) is
audited. The index and summary always cover every adapter.
"""

from __future__ import annotations

import json
from pathlib import Path

from audit.cache import atomic_write_bytes
from audit.config import AuditConfig
from audit.output import batch_formats, report_paths

MANIFEST = ".prompt-audit-batch"  # JSON; no .json suffix, so that globs for reports skip it
VERSION = 1


def read_manifest(out_dir: Path) -> dict[str, str]:
    """name -> fingerprint of the reports in ``out_dir`` (empty when there is no readable record)."""
    try:
        data = json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if (
        not isinstance(data, dict)
        or data.get("version") != VERSION
        or not isinstance(data.get("adapters"), dict)
    ):
        return {}
    return {str(k): str(v) for k, v in data["adapters"].items()}


class Record:
    """The manifest of one batch run, kept up to date as adapters finish."""

    def __init__(self, out_dir: Path, fingerprints: dict[str, str], keep: dict[str, str]):
        self.path = Path(out_dir) / MANIFEST
        self.fingerprints = fingerprints
        self.adapters = dict(keep)

    def finished(self, name: str, ok: bool) -> None:
        """Notes that ``name``'s reports are written (``ok``) or removed (it has none)."""
        if ok and name in self.fingerprints:
            self.adapters[name] = self.fingerprints[name]
        else:
            self.adapters.pop(name, None)
        text = json.dumps({"version": VERSION, "adapters": dict(sorted(self.adapters.items()))}, indent=2)
        atomic_write_bytes(self.path, (text + "\n").encode("utf-8"))


def already_done(the_plan, out_dir: Path, formats, config: AuditConfig) -> dict:
    """name -> Outcome read back from ``out_dir`` for every planned adapter whose recorded fingerprint is
    its current one and whose reports are all there (``--resume``)."""
    from audit.engine.run import Outcome
    from audit.errors import AuditInputError
    from audit.report.load import read_result

    recorded = read_manifest(out_dir)
    items = {i.name: i for _, group in the_plan.groups for i in group}
    paths = report_paths(Path(out_dir), list(items), batch_formats(formats))
    out = {}
    for name, item in items.items():
        files = paths[name]
        if recorded.get(name) != the_plan.fingerprints.get(name) or not all(
            p.exists() for p in files.values()
        ):
            continue
        try:
            result = read_result(files["json"])
        except AuditInputError:
            continue  # unreadable: audit it again
        out[name] = Outcome(item, result, config=config)
    return out
