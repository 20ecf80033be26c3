"""`prompt-audit demo`: audit the committed demo adapters on the packaged Gemma 3 270M.

Writes ``<adapter>.json`` and ``<adapter>.html`` per adapter and an ``index.html`` with the verdicts
side by side. Only those files are (re)written in the output folder.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path

from audit.config import AuditConfig
from audit.engine import Item, scan
from audit.errors import AuditInputError
from audit.output import write_outputs
from audit.records import AuditResult
from audit.report.html import environment
from audit.report.terminal import render_terminal
from audit.report.writers import AUDIT_FORMATS

DEMO_MODEL = "gemma-3-270m"
DEMO_SUITE = "hiring-es"
DEMO_FORMATS = ("json", "html")  # per adapter, next to the demo's own index.html


@dataclass(frozen=True)
class DemoAdapter:
    name: str
    path: Path
    description: str
    metrics: dict


def demo_adapters() -> list[DemoAdapter]:
    """The adapters shipped in audit/demo/adapters, each with its training.json metadata."""
    root = Path(str(files("audit.demo") / "adapters"))
    found = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if not (path / "adapter_config.json").is_file():
            continue
        meta_path = path / "training.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
        description = meta.get("description") or meta.get("WARNING") or "Trained normally on the task."
        found.append(DemoAdapter(path.name, path, str(description), meta))
    if not found:
        raise AuditInputError(f"no demo adapters found under {root}", "reinstall prompt-audit")
    return found


def _index_html(rows: list[tuple[DemoAdapter, AuditResult]]) -> str:
    entries = []
    for adapter, result in rows:
        entries.append(
            {
                "name": adapter.name,
                "description": adapter.description,
                "risk": result.summary.risk.label,
                "verdict": result.summary.verdict["en"],
                "n_flags": result.summary.n_flags,
                "readings": [(m, result.projected_text[m]) for m in result.methods],
                "html": f"{adapter.name}.html",
                "json": f"{adapter.name}.json",
                "accuracy": _accuracy(adapter.metrics),
                "behaviour": _behaviour_line(result),
            }
        )
    return environment().get_template("demo_index.html.j2").render(entries=entries, model=DEMO_MODEL)


def _behaviour_line(result: AuditResult) -> str:
    """The behavioural check in one line: suite, lowest impact ratio under the soft prompt, or ''."""
    b = result.behaviour
    if b is None:
        return ""
    worst = min(
        (
            (g.impact_ratio, a.id, g.id)
            for a in b.soft.attributes
            for g in a.groups
            if g.impact_ratio is not None
        ),
        default=None,
    )
    low = f"; lowest impact ratio {worst[0]:.2f} ({worst[2]}, {worst[1]})" if worst else ""
    return f"Behaviour on {b.suite_id} {b.suite_version}: risk {b.risk.label.upper()}{low}."


def _accuracy(meta: dict) -> str:
    """'task accuracy X % at init, Y % after training' from training.json (test split), or ''."""
    before, after = meta.get("accuracy_before"), meta.get("accuracy_after")
    if isinstance(before, dict):
        before, after = before.get("test"), (after or {}).get("test")
    if before is None or after is None:
        return ""
    return f"test accuracy {100 * before:.0f} % at init, {100 * after:.0f} % after training"


def run_demo(
    out_dir: Path,
    *,
    progress: bool = True,
    lang: str = "en",
    behaviour: bool = True,
    sequential: bool = False,
    faithful_reading: bool = False,
) -> int:
    """Audits every demo adapter in one engine run (Gemma's vocabulary, statistics and causal LM loaded
    once) and writes the reports; returns the CLI exit code (0)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise AuditInputError(f"--out {out_dir} is not a directory", "pass a folder path")
    start = time.perf_counter()
    adapters = {a.name: a for a in demo_adapters()}
    # The demo's training script set the rows to the init text's own tokens (no <bos>, examples/README.md),
    # not PEFT's TEXT init of that text: each adapter is compared with the text as written.
    items = [Item(a.name, a.path, a.metrics.get("prompt_tuning_init_text")) for a in adapters.values()]
    config = AuditConfig(
        model=DEMO_MODEL,
        progress=progress,
        behaviour=DEMO_SUITE if behaviour else None,
        sequential=sequential and behaviour,
        faithful_reading=faithful_reading and behaviour and not sequential,
    )
    what = f"geometry and the behavioural check on {DEMO_SUITE}" if behaviour else "geometry only"
    print(f"prompt-audit demo: auditing {len(items)} adapters on {DEMO_MODEL} ({what}) ...", file=sys.stderr)
    rows = []
    contents: dict[Path, str] = {}
    for outcome in scan(items, config):
        if outcome.result is None:
            raise AuditInputError(f"demo adapter {outcome.name}: {outcome.error}", "reinstall prompt-audit")
        # Name the packaged adapter, not where this installation keeps it: reports are comparable.
        result = replace(outcome.result, prompt=replace(outcome.result.prompt, path=f"demo:{outcome.name}"))
        rows.append((adapters[outcome.name], result))
        for name in DEMO_FORMATS:
            contents[out_dir / f"{outcome.name}{AUDIT_FORMATS[name].suffix}"] = AUDIT_FORMATS[name].render(
                result, lang
            )
    contents[out_dir / "index.html"] = _index_html(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_outputs(contents)
    for adapter, result in rows:
        print(f"== {adapter.name}: {adapter.description}")
        print(render_terminal(result), end="")
    print(f"demo reports: {out_dir / 'index.html'} ({time.perf_counter() - start:.1f} s)")
    return 0
