"""``scan --out-dir``: a batch through the engine's backends, each adapter's reports written as it
arrives, ``--resume`` and a clean Ctrl-C (what is finished stays written; the note says how to go on)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audit import __version__
from audit.cli import options
from audit.config import AuditConfig
from audit.errors import AuditInputError
from audit.output import batch_formats
from audit.report.writers import AUDIT_FORMATS

AUDIT_SUFFIX = {name: f.suffix for name, f in AUDIT_FORMATS.items()}

EXIT_INTERRUPTED = 130


def backend_for(args: argparse.Namespace, config: AuditConfig):
    """The backend the options ask for (Ray started or joined here), or exit 2 naming the clash."""
    from audit.engine.backends import local

    if args.jobs < 1:
        raise AuditInputError(f"--jobs {args.jobs} is not positive", "use --jobs 1 (the default) or more")
    if args.engine == "local":
        for name, given in (
            ("--ray-address", args.ray_address),
            ("--ray-ship-adapters", args.ray_ship_adapters),
        ):
            if given:
                raise AuditInputError(f"{name} applies to --engine ray", f"add --engine ray, or drop {name}")
        return local(args.jobs)
    if args.jobs != 1:
        raise AuditInputError(
            "--jobs sets the local engine's processes; Ray runs as many shards as the cluster has CPUs",
            "drop --jobs with --engine ray",
        )
    import torch

    from audit.engine.ray_backend import RayBackend

    return RayBackend(args.ray_address, torch.get_num_threads(), args.ray_ship_adapters).start()


def run_batch_scan(args: argparse.Namespace, out_dir: Path, config: AuditConfig) -> int:
    from dataclasses import replace

    from audit.engine import collect
    from audit.engine.run import Listener, _error_stderr
    from audit.engine.shards import run_batch
    from audit.output import check_writable, planned_paths, write_prompt_reports, write_run_files
    from audit.report.batch import Row, terminal_lines
    from audit.report.codec import canonical
    from audit.resume import Record, already_done, read_manifest

    inputs = collect(args.prompt)
    extra, junit = options.in_out_dir(args), options.run_paths(args).get("junit")
    names = [i.name for i in inputs.items]
    recorded = read_manifest(out_dir) if args.resume else {}
    planned = planned_paths(out_dir, names, extra, junit)
    # --resume may replace the reports this batch recorded and the run-level files; nothing else.
    replaceable = set(planned_paths(out_dir, sorted(recorded), extra, junit)) if recorded else set()
    check_writable([p for p in planned if p not in replaceable], force=args.force)
    backend = backend_for(args, config)
    rows: dict[str, Row] = {}
    state: dict[str, object] = {"kept": {}}
    bar = _bar(len(names), config.progress and backend.workers > 1)

    def skip(the_plan) -> dict:
        kept = already_done(the_plan, out_dir, extra, config) if args.resume else {}
        state["kept"] = kept
        state["record"] = Record(out_dir, the_plan.fingerprints, {n: the_plan.fingerprints[n] for n in kept})
        return kept

    def arrived(outcome) -> None:
        _error_stderr(outcome)
        if outcome.name in state["kept"]:
            files = {k: f"{outcome.name}{AUDIT_SUFFIX[k]}" for k in batch_formats(extra)}
            rows[outcome.name] = Row(outcome.name, str(outcome.path), outcome.result, None, files)
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            rows[outcome.name] = write_prompt_reports(outcome, out_dir, formats=extra, lang=args.report_lang)
            if "record" in state:
                state["record"].finished(outcome.name, outcome.result is not None)
        bar.update(1)
        failed = sum(1 for r in rows.values() if r.result is None)
        runs = sum(suite_runs(r.result) for n, r in rows.items() if n not in state["kept"])
        bar.set_postfix_str(f"in flight {len(names) - len(rows)}, failed {failed}, suite runs {runs}")

    fingerprint_extra = {"formats": sorted(extra), "lang": args.report_lang, "tool": __version__}
    try:
        outcomes = run_batch(
            inputs.items,
            config,
            backend,
            skip=skip,
            listener=Listener(outcome=arrived),
            extra=fingerprint_extra,
        )
    except KeyboardInterrupt:
        bar.close()
        done = sum(1 for r in rows.values() if r.result is not None)
        print(
            f"prompt-audit: interrupted: the reports of {done} of {len(names)} adapters are written in "
            f"{out_dir}; run the same command with --resume to audit the rest",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    bar.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    # The run-level files from the records as saved, so that a resumed run writes what a whole run does.
    ordered = [rows[o.name] for o in outcomes]
    ordered = [r if r.result is None else replace(r, result=canonical(r.result)) for r in ordered]
    written = write_run_files(
        ordered,
        outcomes,
        out_dir,
        config=config,
        lang=args.report_lang,
        junit=junit,
        duplicates=inputs.duplicates,
    )
    print(terminal_lines(list(written.rows), written.run, [str(p) for p in written.run_files]), end="")
    if args.resume:
        kept = len(state["kept"])
        print(f"resumed: {kept} adapter(s) kept as written in {out_dir}, {len(outcomes) - kept} audited now")
    return written.exit_code


def suite_runs(result) -> int:
    """The behavioural suite runs an audit reports (conditions, readings, ablation replacements; runs
    shared through the cache are counted for every adapter that reports them)."""
    b = result.behaviour if result is not None else None
    if b is None:
        return 0
    return len(b.conditions) + len(b.readings) + len({(a.position, a.replacement) for a in b.ablations})


def _bar(total: int, enabled: bool):
    """One progress bar for the whole batch (adapters done; in flight, failed and suite runs in the
    postfix), when the work runs in other processes (in this process the steps' own bars show)."""
    from audit.progress import progress_bar

    return progress_bar("adapters", total, enabled=enabled, unit="adapter")
