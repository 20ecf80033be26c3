"""``scan`` (one prompt, or many with --out-dir), ``render`` and ``prepare``: parse, call the engine, hand
the records to the writers, return the exit code."""

from __future__ import annotations

import argparse
from pathlib import Path

from audit.cli import options
from audit.config import (
    DEFAULT_ALPHA,
    DEFAULT_FAITHFUL_BUDGET,
    DEFAULT_IMPACT_THRESHOLD,
    DEFAULT_MAX_ABLATIONS,
    DEVICE_CHOICES,
    FAIL_ON_CHOICES,
    AuditConfig,
)
from audit.errors import EXIT_OK, AuditInputError, exit_code
from audit.report.writers import AUDIT_FORMATS, RUN_FORMATS


def add_parsers(sub: argparse._SubParsersAction) -> None:
    scan = sub.add_parser(
        "scan",
        help="audit one soft prompt (or many, with --out-dir)",
        description="Audit one soft prompt, or many in one run with --out-dir.",
        epilog="exit codes: 0 done, risk below --fail-on; 1 risk at or above --fail-on; 2 usage or input "
        "error (one line on stderr, nothing written; with --out-dir also when an adapter could not be "
        "audited: it gets an error row); 3 internal error",
    )
    scan.add_argument(
        "prompt",
        type=Path,
        nargs="+",
        help="PEFT adapter directory, .safetensors, .npy or .pt file (with --out-dir: several, and folders "
        "and globs)",
    )
    options.model_option(scan, required=False)
    options.vocabulary_options(scan)
    scan.add_argument(
        "--reference-text", help="the prompt's claimed intent; default: PEFT's prompt_tuning_init_text"
    )
    options.report_options(scan, scan=True)
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
        help="with --out-dir: audit in N local processes, each taking shards of one base model and loading "
        "that model once per shard (default 1: in this process, each model loaded once)",
    )
    scan.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="with --out-dir: where the shards run: this machine (--jobs processes) or a Ray cluster "
        "(pip install 'prompt-audit[ray]'); default local",
    )
    scan.add_argument(
        "--ray-address",
        metavar="auto|HOST:PORT",
        help="with --engine ray: the cluster to join (auto: the one this machine belongs to); default: "
        "start a Ray instance on this machine, on the loopback interface only",
    )
    scan.add_argument(
        "--ray-ship-adapters",
        action="store_true",
        help="with --engine ray: send each adapter's files with its task, for workers that do not mount "
        "the adapters' storage (default: workers read the paths as given)",
    )
    scan.add_argument(
        "--resume",
        action="store_true",
        help="with --out-dir: skip every adapter whose reports in DIR were written from the same inputs and "
        "options (DIR/.prompt-audit-batch records them); audit the rest; index and summary cover all",
    )
    scan.add_argument(
        "--fail-on",
        choices=FAIL_ON_CHOICES,
        default="never",
        help="exit 1 when the overall risk is at or above this level (default never)",
    )
    scan.add_argument(
        "--behaviour",
        metavar="SUITE",
        help=f"also run the model with the prompt on a counterfactual probe suite (packaged: {_suites()}; "
        "or a .toml path) and measure group selection gaps; needs a causal LM",
    )
    scan.add_argument(
        "--max-ablations",
        type=int,
        default=DEFAULT_MAX_ABLATIONS,
        metavar="N",
        help="with --behaviour: at most N flagged positions are replaced and rerun (2 suite runs each; "
        f"default {DEFAULT_MAX_ABLATIONS}, the worst first; the report names any left out)",
    )
    scan.add_argument(
        "--impact-threshold",
        type=float,
        metavar="R",
        help="with --behaviour: the impact ratio below which a significant gap is adverse impact, and which "
        f"LOW needs every group's lower confidence bound to reach (default {DEFAULT_IMPACT_THRESHOLD:g}: the "
        "four-fifths rule, US employment practice, EEOC 29 CFR 1607.4(D)); in (0, 1]",
    )
    scan.add_argument(
        "--alpha",
        type=float,
        metavar="A",
        help=f"with --behaviour: the level of the gap test (q < A), the non-inferiority test and the power "
        f"figures (default {DEFAULT_ALPHA:g}, the tool's choice); in (0, 0.5)",
    )
    scan.add_argument(
        "--sequential",
        action="store_true",
        help="with --behaviour: score the suite in looks (a quarter of its templates, half, all) and stop at "
        "the first look whose verdict is HIGH or LOW (a group-sequential plan that keeps the error rates; "
        "the last look runs at 0.9 x alpha); the report says where it stopped. Default: the whole suite",
    )
    scan.add_argument(
        "--faithful-reading",
        action="store_true",
        help="with --behaviour: search the discrete text of the prompt's length whose decisions agree most "
        "with the soft prompt's (from the best projection; the methods' neighbours and gradient-ranked "
        "tokens, tried on a seeded sample, the winner confirmed on the whole suite) and report it as a "
        "reading; seeded and deterministic. Default: off",
    )
    scan.add_argument(
        "--faithful-budget",
        type=float,
        metavar="RUNS",
        help="with --faithful-reading: texts the search may score, in whole-suite runs (the confirmation "
        f"run included; default {DEFAULT_FAITHFUL_BUDGET:g})",
    )
    scan.add_argument(
        "--faithful-seconds",
        type=float,
        metavar="S",
        help="with --faithful-reading: stop the search after S seconds of wall time (then the result "
        "depends on the machine's speed, and the report says it stopped on time). Default: no limit",
    )
    scan.add_argument("--key", help="tensor name inside a multi-tensor prompt file")
    scan.add_argument(
        "--model-mismatch-ok",
        action="store_true",
        help="audit against --model even when it is certainly not the adapter's recorded base model "
        "(otherwise exit 2); the report still carries the warning",
    )
    scan.add_argument("--device", choices=DEVICE_CHOICES, default="cpu", help="compute device (default cpu)")
    scan.add_argument("--quiet", action="store_true", help="no progress bars")

    render = sub.add_parser(
        "render",
        help="re-render a saved audit (its --json) as HTML or Markdown",
        description="Re-render the HTML and Markdown reports of a saved audit from its JSON, e.g. in "
        "another report language; needs no model (and does not import torch).",
    )
    render.add_argument("audit", type=Path, metavar="AUDIT.json", help="the JSON a scan wrote with --json")
    options.report_options(render, scan=False)

    prepare = sub.add_parser(
        "prepare",
        help="fill the cache for a model ahead of scans (CI images, shared runners)",
        description="Compute once, ahead of time, what the first scan of a model would: the GGUF "
        "conversion, token table, vocabulary statistics, term index and null model. Later scans with the "
        "same model, wordlists, allow-list, seed and --remove-directions (and --top-k up to 50) only read "
        "the cache ($PROMPT_AUDIT_CACHE, default ~/.cache/prompt-audit).",
    )
    options.model_option(prepare, required=True)
    options.vocabulary_options(prepare)
    prepare.add_argument("--quiet", action="store_true", help="no progress bars")


def _suites() -> str:
    from audit.behaviour.suite.load import packaged_suites

    return ", ".join(packaged_suites())


def scan_config(args: argparse.Namespace) -> AuditConfig:
    rule = {"impact_threshold": args.impact_threshold, "alpha": args.alpha}
    given = {k: v for k, v in rule.items() if v is not None}
    if getattr(args, "summary_csv", None) is not None and not args.behaviour:
        raise AuditInputError(
            "--summary-csv writes the behavioural check's bias-audit summary",
            "add --behaviour SUITE, or drop it",
        )
    if args.sequential:
        given["sequential"] = True
    search = {"faithful_budget": args.faithful_budget, "faithful_seconds": args.faithful_seconds}
    if any(v is not None for v in search.values()) and not args.faithful_reading:
        name = "--" + next(k for k, v in search.items() if v is not None).replace("_", "-")
        raise AuditInputError(f"{name} applies to --faithful-reading", "add --faithful-reading, or drop it")
    if args.faithful_reading:
        given.update(faithful_reading=True, **{k: v for k, v in search.items() if v is not None})
    if given and not args.behaviour:
        name = "--" + next(iter(given)).replace("_", "-")
        raise AuditInputError(f"{name} applies to the behavioural check", "add --behaviour SUITE, or drop it")
    return options.config_from(
        args,
        reference_text=args.reference_text,
        fail_on=args.fail_on,
        key=args.key,
        device=args.device,
        behaviour=args.behaviour,
        max_ablations=args.max_ablations,
        model_mismatch_ok=args.model_mismatch_ok,
        **given,
    )


def run_scan(args: argparse.Namespace) -> int:
    if args.out_dir is not None or len(args.prompt) > 1:
        return _batch(args)
    batch_only = [
        name
        for name, given in (
            ("--jobs", args.jobs != 1),
            ("--engine", args.engine != "local"),
            ("--ray-address", args.ray_address is not None),
            ("--ray-ship-adapters", args.ray_ship_adapters),
            ("--resume", args.resume),
        )
        if given
    ]
    if batch_only:
        raise AuditInputError(
            f"{batch_only[0]} applies to a batch scan", f"add --out-dir DIR, or drop {batch_only[0]}"
        )
    alone = options.in_out_dir(args)
    if alone:
        raise AuditInputError(
            f"--{alone[0]} needs a PATH without --out-dir",
            f"pass --{alone[0]} OUT{AUDIT_FORMATS[alone[0]].suffix}",
        )
    from audit.engine import audit_one
    from audit.output import check_writable, run_info, write_outputs
    from audit.report.batch import Row
    from audit.report.junit import adapter_name
    from audit.report.terminal import render_terminal

    audits, runs = options.audit_paths(args), options.run_paths(args)
    check_writable([*audits.values(), *runs.values()], force=args.force)
    config = scan_config(args)
    result = audit_one(args.prompt[0], config)
    contents = {path: AUDIT_FORMATS[name].render(result, args.report_lang) for name, path in audits.items()}
    labels = {path: AUDIT_FORMATS[name].label for name, path in audits.items()}
    if runs:  # a single scan's run files name the prompt by its file or folder name
        rows = [Row(adapter_name(result), result.prompt.path, result, None, {})]
        run = run_info(config, exit_code(result.summary.risk.label, args.fail_on))
        contents.update(
            {path: RUN_FORMATS[n].render(rows, run, args.report_lang) for n, path in runs.items()}
        )
        labels.update({path: RUN_FORMATS[n].label for n, path in runs.items()})
    write_outputs(contents)
    print(render_terminal(result, {labels[p]: str(p) for p in contents}), end="")
    return exit_code(result.summary.risk.label, args.fail_on)


def _batch(args: argparse.Namespace) -> int:
    from audit.cli.batch import run_batch_scan

    return run_batch_scan(args, _check_batch_options(args), scan_config(args))


def _check_batch_options(args: argparse.Namespace) -> Path:
    """The output folder, once the options a batch cannot take are refused."""
    if args.out_dir is None:
        raise AuditInputError(
            f"{len(args.prompt)} prompts given but no --out-dir",
            "pass --out-dir DIR to audit several prompts in one run (or scan one prompt)",
        )
    given = [f"--{n}" for n, f in AUDIT_FORMATS.items() if f.in_batch and n in options.audit_paths(args)]
    if given:
        written = " and ".join(f"DIR/<name>{f.suffix}" for f in AUDIT_FORMATS.values() if f.in_batch)
        raise AuditInputError(
            f"{' and '.join(given)} name one report file, but --out-dir writes one per prompt",
            f"drop {' and '.join(given)}: {written} are always written",
        )
    with_path = [n for n in options.audit_paths(args) if not AUDIT_FORMATS[n].in_batch]
    if with_path:
        name = with_path[0]
        raise AuditInputError(
            f"--{name} takes no PATH with --out-dir",
            f"pass --{name} alone: it writes DIR/<name>{AUDIT_FORMATS[name].suffix}",
        )
    if args.out_dir.exists() and not args.out_dir.is_dir():
        raise AuditInputError(f"--out-dir {args.out_dir} is not a directory", "pass a folder path")
    return args.out_dir


def run_render(args: argparse.Namespace) -> int:
    from audit.output import check_writable, write_outputs
    from audit.report.load import read_result

    outputs = options.audit_paths(args, from_json=True)
    if not outputs:
        names = [f"--{n}" for n, f in AUDIT_FORMATS.items() if f.from_json]
        raise AuditInputError(
            f"render writes nothing without {' or '.join(names)}",
            f"pass {names[0]} OUT{AUDIT_FORMATS[names[0][2:]].suffix}",
        )
    check_writable(list(outputs.values()), force=args.force)
    result = read_result(args.audit)
    contents = {path: AUDIT_FORMATS[name].render(result, args.report_lang) for name, path in outputs.items()}
    write_outputs(contents)
    for path in contents:
        print(f"wrote {path}")
    return EXIT_OK


def run_prepare(args: argparse.Namespace) -> int:
    import time

    from audit.cache import root
    from audit.engine import prepare
    from audit.geometry.methods import resolve_methods

    start = time.perf_counter()
    vocab = prepare(options.config_from(args))
    methods = resolve_methods(args.methods)
    print(
        f"prepared {vocab.spec} ({vocab.size} x {vocab.dim}): token table, statistics, term index, "
        f"null model for {len(methods)} method(s), seed {args.seed}; cache {root()}; "
        f"{time.perf_counter() - start:.1f} s"
    )
    return EXIT_OK
