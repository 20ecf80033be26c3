"""The options several subcommands share, and the AuditConfig they make. Report options are read from the
format registry (:mod:`audit.report.writers`): a registered format is an option here without an edit."""

from __future__ import annotations

import argparse
from pathlib import Path

from audit.config import DEFAULT_LANGUAGES, DEFAULT_SEED, DEFAULT_TOP_K, AuditConfig
from audit.report.writers import AUDIT_FORMATS, RUN_FORMATS

REPORT_LANGUAGES = ("en", "es")  # audit.report.i18n.LANGUAGES (not imported here: keeps --help light)


class InOutDir:
    """The value of a batch-optional report option given without a PATH (``--markdown`` alone); not a
    str, which argparse would convert with the option's ``type``."""

    def __repr__(self) -> str:
        return "IN_OUT_DIR"


IN_OUT_DIR = InOutDir()


def csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def model_option(parser: argparse.ArgumentParser, *, required: bool) -> None:
    default = "" if required else "; default: the adapter's base_model_name_or_path"
    parser.add_argument(
        "--model",
        required=required,
        help="packaged alias (gemma-3-270m, all-minilm-l6-v2, smollm2-135m), .gguf file, "
        f"HF model directory, or cached HF id{default}",
    )
    parser.add_argument(
        "--allow-pickle-model",
        action="store_true",
        help="allow a model directory with only pickle .bin weights (they can run code: only for files "
        "you trust)",
    )


def wordlist_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lang", type=csv, default=DEFAULT_LANGUAGES, help="wordlist languages (default es,en)"
    )
    parser.add_argument(
        "--wordlists",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="extra wordlist folder (same schema; later files override by term id); repeatable",
    )


def vocabulary_options(parser: argparse.ArgumentParser) -> None:
    """The options that decide what a scan computes and caches (shared by scan and prepare)."""
    parser.add_argument(
        "--methods",
        type=csv,
        default=("all",),
        help="'all' (default) or a comma list; see `prompt-audit methods`",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=DEFAULT_TOP_K,
        help=f"neighbours per position and method (default {DEFAULT_TOP_K})",
    )
    wordlist_options(parser)
    parser.add_argument(
        "--allowlist", type=Path, metavar="PATH", help="TOML allow-list of forms to suppress, with reasons"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="seed for every random draw (default 0)"
    )
    parser.add_argument(
        "--remove-directions",
        type=int,
        default=0,
        metavar="N",
        help="top principal directions the 'centered' method removes besides the mean "
        "('all-but-the-top'; default 0: mean only)",
    )


def report_options(parser: argparse.ArgumentParser, *, scan: bool) -> None:
    """One option per registered report format: ``scan`` takes every format (a batch-optional one also
    without a PATH, with --out-dir) and the run formats with a path; ``render`` those it can write from a
    saved audit."""
    for fmt in AUDIT_FORMATS.values():
        if not scan and not fmt.from_json:
            continue
        if scan and not fmt.in_batch:
            parser.add_argument(
                f"--{fmt.name}",
                type=Path,
                nargs="?",
                const=IN_OUT_DIR,
                metavar="PATH",
                help=f"{fmt.help}; with --out-dir: no PATH, DIR/<name>{fmt.suffix}",
            )
        else:
            parser.add_argument(f"--{fmt.name}", type=Path, metavar="PATH", help=fmt.help)
    if scan:
        for run_fmt in RUN_FORMATS.values():
            if run_fmt.filename is None:
                parser.add_argument(f"--{run_fmt.name}", type=Path, metavar="PATH", help=run_fmt.help)
    parser.add_argument(
        "--report-lang",
        choices=REPORT_LANGUAGES,
        default="en",
        help="language of the HTML and Markdown reports (default en)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")


def audit_paths(args: argparse.Namespace, *, from_json: bool = False) -> dict[str, Path]:
    """format name -> PATH of every per-audit report option given with a path."""
    out = {}
    for name, fmt in AUDIT_FORMATS.items():
        if from_json and not fmt.from_json:
            continue
        value = getattr(args, _dest(name), None)
        if value is not None and not isinstance(value, InOutDir):
            out[name] = value
    return out


def run_paths(args: argparse.Namespace) -> dict[str, Path]:
    """run format name -> PATH of every run report option given (``--junit PATH``)."""
    return {
        n: getattr(args, _dest(n))
        for n, f in RUN_FORMATS.items()
        if f.filename is None and getattr(args, _dest(n))
    }


def in_out_dir(args: argparse.Namespace) -> list[str]:
    """The batch-optional formats asked for without a PATH (``--markdown`` alone)."""
    return [n for n in AUDIT_FORMATS if isinstance(getattr(args, _dest(n), None), InOutDir)]


def _dest(name: str) -> str:
    return name.replace("-", "_")


def config_from(args: argparse.Namespace, **extra) -> AuditConfig:
    """The AuditConfig of the options ``scan`` and ``prepare`` share, plus ``extra``."""
    return AuditConfig(
        model=args.model,
        methods=args.methods,
        top_k=args.top_k,
        languages=args.lang,
        wordlist_dirs=tuple(args.wordlists),
        allowlist=args.allowlist,
        seed=args.seed,
        allow_pickle_model=args.allow_pickle_model,
        centered_components=args.remove_directions,
        progress=not args.quiet,
        **extra,
    )
