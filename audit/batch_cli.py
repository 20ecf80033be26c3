"""``prompt-audit scan PROMPT [PROMPT ...] --out-dir DIR``: the command line of a batch scan.

Writes ``DIR/<name>.json`` and ``DIR/<name>.html`` (and ``.md`` with ``--markdown``) per audited prompt,
``DIR/index.html`` and ``DIR/summary.json``, and ``--junit PATH`` (one test suite per adapter). Exit code:
2 when any prompt could not be audited (its error row says why), else ``--fail-on`` applied to the worst
risk. Options that are wrong for every prompt exit 2 before any work, writing nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from audit.config import AuditConfig
from audit.errors import AuditInputError

if TYPE_CHECKING:
    from audit.batch import Outcome

EXIT_INPUT = 2
MARKDOWN_IN_OUT_DIR = True  # --markdown given without a PATH (not a str: argparse would make it a Path)


def add_options(scan: argparse.ArgumentParser) -> None:
    """scan's batch options (--out-dir, --jobs)."""
    scan.add_argument(
        "--out-dir",
        type=Path,
        metavar="DIR",
        help="audit every PROMPT (adapter folders, prompt files, folders searched for adapters below them, "
        "globs) and write DIR/<name>.json, DIR/<name>.html (.md with --markdown), DIR/index.html and "
        "DIR/summary.json; each base model is loaded once for all its prompts",
    )
    scan.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="with --out-dir and --behaviour: run the behavioural checks in N processes, each loading its "
        "own copy of the model (default 1: in this process, each model loaded once)",
    )


def run_batch_scan(args: argparse.Namespace, make_config: Callable[[argparse.Namespace], AuditConfig]) -> int:
    """The batch scan of ``args.prompt`` into ``args.out_dir``; returns the exit code."""
    from audit.batch import collect, run_batch
    from audit.output import check_writable
    from audit.report.batch import terminal_lines

    out_dir = _check_options(args)
    inputs = collect(args.prompt)
    config = make_config(args)
    markdown = args.markdown is not None
    planned = report_files(out_dir, [i.name for i in inputs.items], markdown=markdown)
    extra = [p for p in (out_dir / "index.html", out_dir / "summary.json", args.junit) if p is not None]
    check_writable([p for files in planned.values() for p in files.values()] + extra, force=args.force)

    outcomes = run_batch(inputs.items, config, jobs=args.jobs)

    code, rows, run, written = write_batch(
        out_dir,
        outcomes,
        config,
        duplicates=inputs.duplicates,
        lang=args.report_lang,
        markdown=markdown,
        junit=args.junit,
    )
    print(terminal_lines(rows, run, written), end="")
    return code


def report_files(out_dir: Path, names: list[str], *, markdown: bool) -> dict[str, dict[str, Path]]:
    """name -> report kind (json, html, markdown) -> its path in ``out_dir``."""
    kinds = {"json": ".json", "html": ".html", **({"markdown": ".md"} if markdown else {})}
    return {name: {kind: out_dir / f"{name}{ext}" for kind, ext in kinds.items()} for name in names}


def write_batch(
    out_dir: Path,
    outcomes: Sequence[Outcome],
    config: AuditConfig,
    *,
    duplicates: Sequence[Path] = (),
    lang: str = "en",
    markdown: bool = False,
    junit: Path | None = None,
):
    """Writes a batch's files into ``out_dir``: each audited prompt's reports (rendered as a single scan
    renders them), ``index.html``, ``summary.json`` and, given ``junit``, the JUnit XML; removes the
    reports an earlier run left for a prompt that has none now. Usable on outcomes gathered from several
    :func:`audit.batch.run_batch` calls (shards run elsewhere), in name order.

    Returns:
        (exit code, rows, run info, paths of the run-level files written).
    """
    from audit.cli import exit_code
    from audit.geometry.methods import resolve_methods
    from audit.output import write_outputs
    from audit.report.batch import Row, RunInfo, render_index, render_summary, worst_risk

    planned = report_files(out_dir, [o.item.name for o in outcomes], markdown=markdown)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for outcome in outcomes:
        item, files = outcome.item, planned[outcome.item.name]
        if outcome.result is None:
            for path in files.values():  # a report left from an earlier run would read as this run's
                path.unlink(missing_ok=True)
            rows.append(Row(item.name, str(item.path), None, outcome.error, {}))
            continue
        write_outputs(_reports(outcome.result, files, lang))
        names = {kind: path.name for kind, path in files.items()}
        rows.append(Row(item.name, str(item.path), outcome.result, None, names))
    worst = worst_risk(rows)
    if any(r.result is None for r in rows) or worst is None:
        code = EXIT_INPUT
    else:
        code = exit_code(worst.label, config.fail_on)
    run = RunInfo(
        fail_on=config.fail_on,
        methods=resolve_methods(config.methods),
        top_k=config.top_k,
        languages=tuple(config.languages),
        seed=config.seed,
        model=config.model,
        behaviour=config.behaviour,
        duplicates=tuple(str(p) for p in duplicates),
        exit_code=code,
    )
    contents = {
        out_dir / "index.html": render_index(rows, run, lang),
        out_dir / "summary.json": render_summary(rows, run),
    }
    if junit:
        from audit.report.junit import render_junit

        audits = [(r.name, r.result) for r in rows if r.result is not None]
        errors = [(r.name, r.error or "") for r in rows if r.result is None]
        contents[junit] = render_junit(audits, config.fail_on, lang, errors=errors)
    write_outputs(contents)
    return code, rows, run, [str(p) for p in contents]


def check_single(args: argparse.Namespace) -> None:
    """Refuses the batch options on a single-prompt scan."""
    if args.jobs != 1:
        raise AuditInputError("--jobs applies to a batch scan", "add --out-dir DIR, or drop --jobs")
    if args.markdown is MARKDOWN_IN_OUT_DIR:
        raise AuditInputError("--markdown needs a PATH without --out-dir", "pass --markdown OUT.md")


def _check_options(args: argparse.Namespace) -> Path:
    """The output folder, once the options a batch cannot take are refused."""
    if args.out_dir is None:
        raise AuditInputError(
            f"{len(args.prompt)} prompts given but no --out-dir",
            "pass --out-dir DIR to audit several prompts in one run (or scan one prompt)",
        )
    given = [name for name, value in (("--json", args.json), ("--html", args.html)) if value is not None]
    if given:
        raise AuditInputError(
            f"{' and '.join(given)} name one report file, but --out-dir writes one per prompt",
            f"drop {' and '.join(given)}: DIR/<name>.json and DIR/<name>.html are always written",
        )
    if args.markdown is not None and args.markdown is not MARKDOWN_IN_OUT_DIR:
        raise AuditInputError(
            "--markdown takes no PATH with --out-dir", "pass --markdown alone: it writes DIR/<name>.md"
        )
    if args.out_dir.exists() and not args.out_dir.is_dir():
        raise AuditInputError(f"--out-dir {args.out_dir} is not a directory", "pass a folder path")
    return args.out_dir


def _reports(result, files: dict[str, Path], lang: str) -> dict[Path, str]:
    """One prompt's report files, rendered exactly as a single scan renders them."""
    from audit.report.html import render_html
    from audit.report.json_out import render_json
    from audit.report.markdown import render_markdown

    render = {
        "json": lambda: render_json(result),
        "html": lambda: render_html(result, lang),
        "markdown": lambda: render_markdown(result, lang),
    }
    return {path: render[kind]() for kind, path in files.items()}
