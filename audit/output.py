"""Writing report files: all-or-nothing, never overwriting what the user had unless asked; a run's
reports (:func:`write_reports`) rendered through the format registry (:mod:`audit.report.writers`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from audit.cache import atomic_write_bytes
from audit.config import AuditConfig
from audit.errors import EXIT_INPUT, AuditInputError, exit_code

if TYPE_CHECKING:
    from audit.engine.run import Outcome


def check_writable(paths: list[Path], *, force: bool) -> None:
    """Fails before any work when an output exists (without --force) or names a directory."""
    for path in paths:
        if path.is_dir():
            raise AuditInputError(f"output path {path} is a directory", "pass a file path")
        if path.exists() and not force:
            raise AuditInputError(f"output file {path} already exists", "choose another path or pass --force")
        if path.parent.exists() and not path.parent.is_dir():
            raise AuditInputError(f"output folder {path.parent} is not a directory", "fix the path")


def write_outputs(contents: dict[Path, str]) -> None:
    """Writes every file via temp file + rename; on failure removes what this call wrote."""
    written: list[Path] = []
    try:
        for path, text in contents.items():
            atomic_write_bytes(path, text.encode("utf-8"))
            written.append(path)
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        raise AuditInputError(
            f"cannot write {path} ({exc.strerror})", "check the folder's permissions"
        ) from exc


# ---------------------------------------------------------------------------------------------------
# A run's reports: what the CLI's scan, the demo and the Python API write


def report_paths(out_dir: Path, names: Sequence[str], formats: Sequence[str]) -> dict[str, dict[str, Path]]:
    """name -> report format -> its path in ``out_dir`` (``DIR/<name><suffix>``)."""
    from audit.report.writers import AUDIT_FORMATS

    return {n: {f: out_dir / f"{n}{AUDIT_FORMATS[f].suffix}" for f in formats} for n in names}


def batch_formats(extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The per-prompt formats a batch writes: those always written, then ``extra`` (in registry order)."""
    from audit.report.writers import AUDIT_FORMATS

    unknown = [f for f in extra if f not in AUDIT_FORMATS]
    if unknown:
        raise AuditInputError(f"unknown report format {unknown[0]!r}", f"one of {', '.join(AUDIT_FORMATS)}")
    return tuple(n for n, f in AUDIT_FORMATS.items() if f.in_batch or n in extra)


def run_exit_code(outcomes: Sequence[Outcome], fail_on: str) -> int:
    """2 when a prompt could not be audited (or none was), else ``fail_on`` applied to the worst risk."""
    results = [o.result for o in outcomes if o.result is not None]
    if len(results) < len(outcomes) or not results:
        return EXIT_INPUT
    return exit_code(max(r.summary.risk for r in results).label, fail_on)


def run_info(config: AuditConfig, code: int, duplicates: Sequence[Path] = ()):
    """The run as the run-level reports state it (:class:`audit.report.batch.RunInfo`)."""
    from audit.geometry.methods import resolve_methods
    from audit.report.batch import RunInfo

    return RunInfo(
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


def _run_files(out_dir: Path, junit: Path | None) -> dict:
    """path -> run format of the run-level files (``DIR/index.html``, ``DIR/summary.json``, ``junit``)."""
    from audit.report.writers import RUN_FORMATS

    files = {out_dir / f.filename: f for f in RUN_FORMATS.values() if f.filename}
    if junit is not None:
        files[Path(junit)] = RUN_FORMATS["junit"]
    return files


def planned_paths(
    out_dir: Path, names: Sequence[str], formats: Sequence[str], junit: Path | None
) -> list[Path]:
    """Every file a run of ``names`` writes (:func:`write_reports` with these arguments)."""
    per_prompt = report_paths(out_dir, names, batch_formats(formats))
    return [p for files in per_prompt.values() for p in files.values()] + list(_run_files(out_dir, junit))


@dataclass(frozen=True)
class Written:
    """What :func:`write_reports` wrote: the exit code of the run, the index rows and run info the
    run-level files were rendered from, and the run-level files' paths."""

    exit_code: int
    rows: tuple
    run: object
    run_files: tuple[Path, ...]


def write_reports(
    outcomes: Sequence[Outcome],
    out_dir: str | Path,
    *,
    config: AuditConfig | None = None,
    formats: Sequence[str] = (),
    lang: str = "en",
    junit: Path | None = None,
    duplicates: Sequence[Path] = (),
    force: bool = False,
) -> Written:
    """Writes a run's files into ``out_dir``: each audited prompt's reports (the formats always written
    plus ``formats``, each rendered as a single scan renders it), ``index.html``, ``summary.json`` and,
    given ``junit``, that JUnit XML; removes the reports an earlier run left for a prompt that has none now.
    Outcomes of several :func:`audit.engine.scan` calls (shards run elsewhere) can be written together.

    Args:
        config: the run's options (default: the one the outcomes were audited with).
        force: replace files that exist (otherwise AuditInputError before anything is written).
    """
    out_dir = Path(out_dir)
    config = config or next((o.config for o in outcomes if o.config is not None), None) or AuditConfig()
    names = [o.name for o in outcomes]
    check_writable(planned_paths(out_dir, names, formats, junit), force=force)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [write_prompt_reports(o, out_dir, formats=formats, lang=lang) for o in outcomes]
    return write_run_files(
        rows, outcomes, out_dir, config=config, lang=lang, junit=junit, duplicates=duplicates
    )


def write_prompt_reports(outcome: Outcome, out_dir: Path, *, formats: Sequence[str] = (), lang: str = "en"):
    """One prompt's reports in ``out_dir`` (as a single scan renders them), written as soon as its outcome
    is known; for a prompt with no audit, removes the reports an earlier run left for it. Returns its
    index row (:class:`audit.report.batch.Row`). Writability is the caller's to check first."""
    from audit.report.batch import Row
    from audit.report.writers import AUDIT_FORMATS

    files = report_paths(Path(out_dir), [outcome.name], batch_formats(formats))[outcome.name]
    if outcome.result is None:
        for path in files.values():  # a report left from an earlier run would read as this run's
            path.unlink(missing_ok=True)
        return Row(outcome.name, str(outcome.path), None, outcome.error, {})
    write_outputs({p: AUDIT_FORMATS[k].render(outcome.result, lang) for k, p in files.items()})
    return Row(outcome.name, str(outcome.path), outcome.result, None, {k: p.name for k, p in files.items()})


def write_run_files(
    rows: Sequence,
    outcomes: Sequence[Outcome],
    out_dir: Path,
    *,
    config: AuditConfig,
    lang: str = "en",
    junit: Path | None = None,
    duplicates: Sequence[Path] = (),
) -> Written:
    """The run-level files (``index.html``, ``summary.json``, the JUnit XML) from every prompt's row."""
    run = run_info(config, run_exit_code(outcomes, config.fail_on), duplicates)
    run_files = _run_files(Path(out_dir), junit)
    write_outputs({path: fmt.render(rows, run, lang) for path, fmt in run_files.items()})
    return Written(run.exit_code, tuple(rows), run, tuple(run_files))
