"""Command line: thin layer that parses arguments into AuditConfig, runs, renders, sets the exit code.

Exit codes: 0 done and risk below --fail-on; 1 risk at or above --fail-on; 2 usage or input error
(one line on stderr, no output file written); 3 internal error (a bug: please report it).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from audit import __version__, batch_cli, cache_cli, models_cli
from audit.config import (
    DEFAULT_LANGUAGES,
    DEFAULT_MAX_ABLATIONS,
    DEFAULT_SEED,
    DEFAULT_TOP_K,
    DEVICE_CHOICES,
    FAIL_ON_CHOICES,
    AuditConfig,
)
from audit.diff_cli import add_diff_command, run_diff
from audit.errors import AuditInputError
from audit.report.i18n import LANGUAGES

EXIT_OK, EXIT_RISK, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (exit 2) instead of usage + message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise AuditInputError(f"{self.prog}: {message}", f"see `{self.prog} --help`")


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="prompt-audit",
        description="Audit a soft prompt: project it onto the vocabulary with several methods, measure their "
        "disagreement, flag sensitive neighbours, and write JSON/HTML risk reports.",
    )
    parser.add_argument("--version", action="version", version=f"prompt-audit {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, required=True)

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
    _model_option(scan, required=False)
    _vocabulary_options(scan)
    scan.add_argument(
        "--reference-text", help="the prompt's claimed intent; default: PEFT's prompt_tuning_init_text"
    )
    _report_options(scan, json_too=True)
    batch_cli.add_options(scan)
    scan.add_argument(
        "--junit",
        type=Path,
        metavar="PATH",
        help="write a JUnit XML report here for CI: one test case per check (geometry; behaviour with "
        "--behaviour), failing when that check's risk is at or above --fail-on",
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
        help="also run the model with the prompt on a counterfactual probe suite (packaged: hiring-es, "
        "hiring-en; or a .toml path) and measure group selection gaps; needs a causal LM",
    )
    scan.add_argument(
        "--max-ablations",
        type=int,
        default=DEFAULT_MAX_ABLATIONS,
        metavar="N",
        help="with --behaviour: at most N flagged positions are replaced and rerun (2 suite runs each; "
        f"default {DEFAULT_MAX_ABLATIONS}, the worst first; the report names any left out)",
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
    _report_options(render, json_too=False)
    add_diff_command(sub)

    demo = sub.add_parser(
        "demo",
        help="audit the bundled example prompts (the embedded default)",
        description="Audit the bundled demo adapters on the packaged Gemma 3 270M and write "
        "their reports and an index page.",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("reports/demo"),
        help="output folder (default reports/demo); the demo's own report files there are replaced",
    )
    demo.add_argument("--report-lang", choices=LANGUAGES, default="en", help="report language (default en)")
    demo.add_argument(
        "--no-behaviour",
        action="store_true",
        help="skip the behavioural check (hiring-es): geometry only, seconds instead of minutes",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars")

    prepare = sub.add_parser(
        "prepare",
        help="fill the cache for a model ahead of scans (CI images, shared runners)",
        description="Compute once, ahead of time, what the first scan of a model would: the GGUF "
        "conversion, token table, vocabulary statistics, term index and null model. Later scans with the "
        "same model, wordlists, allow-list, seed and --remove-directions (and --top-k up to 50) only read "
        "the cache ($PROMPT_AUDIT_CACHE, default ~/.cache/prompt-audit).",
    )
    _model_option(prepare, required=True)
    _vocabulary_options(prepare)
    prepare.add_argument("--quiet", action="store_true", help="no progress bars")

    sub.add_parser("methods", help="list the projection methods", description="List the projection methods.")

    words = sub.add_parser(
        "wordlists",
        help="list, check or measure the sensitive-term wordlists",
        description="Inspect the sensitive-term wordlists.",
    )
    words.add_argument(
        "action",
        choices=("list", "check", "coverage", "manifest"),
        help="list: categories and counts; check: validate; coverage: per-category coverage "
        "for --model; manifest: regenerate wordlists/manifest.toml (developers)",
    )
    words.add_argument("--model", help="model for coverage (alias, .gguf, HF dir)")
    _wordlist_options(words)
    cache_cli.add_parser(sub)
    models_cli.add_parser(sub)
    return parser


def _model_option(parser: argparse.ArgumentParser, *, required: bool) -> None:
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


def _wordlist_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lang", type=_csv, default=DEFAULT_LANGUAGES, help="wordlist languages (default es,en)"
    )
    parser.add_argument(
        "--wordlists",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="extra wordlist folder (same schema; later files override by term id); repeatable",
    )


def _vocabulary_options(parser: argparse.ArgumentParser) -> None:
    """The options that decide what a scan computes and caches (shared by scan and prepare)."""
    parser.add_argument(
        "--methods",
        type=_csv,
        default=("all",),
        help="'all' (default) or a comma list; see `prompt-audit methods`",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=DEFAULT_TOP_K,
        help=f"neighbours per position and method (default {DEFAULT_TOP_K})",
    )
    _wordlist_options(parser)
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


def _report_options(parser: argparse.ArgumentParser, *, json_too: bool) -> None:
    if json_too:
        parser.add_argument("--json", type=Path, metavar="PATH", help="write the JSON result here")
    parser.add_argument("--html", type=Path, metavar="PATH", help="write the HTML report here")
    markdown = "write a short Markdown summary here (for PR comments)"
    if json_too:  # scan: with --out-dir, --markdown alone writes DIR/<name>.md
        markdown += "; with --out-dir: no PATH, DIR/<name>.md"
        parser.add_argument(
            "--markdown",
            type=Path,
            nargs="?",
            const=batch_cli.MARKDOWN_IN_OUT_DIR,
            metavar="PATH",
            help=markdown,
        )
    else:
        parser.add_argument("--markdown", type=Path, metavar="PATH", help=markdown)
    parser.add_argument(
        "--report-lang",
        choices=LANGUAGES,
        default="en",
        help="language of the HTML and Markdown reports (default en)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        args = build_parser().parse_args(argv)
        handler = {
            "scan": _scan,
            "render": _render,
            "diff": run_diff,
            "prepare": _prepare,
            "demo": _demo,
            "methods": _methods,
            "wordlists": _wordlists,
            "cache": cache_cli.run,
            "models": models_cli.run,
        }[args.command]
        return handler(args)
    except AuditInputError as exc:
        print(f"prompt-audit: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("prompt-audit: interrupted; no output written", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: still one line unless asked for the traceback
        if os.environ.get("PROMPT_AUDIT_DEBUG"):
            raise
        print(
            f"prompt-audit: internal error: {type(exc).__name__}: {exc} (rerun with PROMPT_AUDIT_DEBUG=1 "
            "for the traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _scan(args: argparse.Namespace) -> int:
    from audit.output import check_writable, write_outputs
    from audit.pipeline import run_audit
    from audit.report.html import render_html
    from audit.report.json_out import render_json
    from audit.report.markdown import render_markdown
    from audit.report.terminal import render_terminal

    if args.out_dir is not None or len(args.prompt) > 1:
        return batch_cli.run_batch_scan(args, lambda a: _scan_config(a, Path("-")))
    batch_cli.check_single(args)
    outputs = [p for p in (args.json, args.html, args.markdown, args.junit) if p is not None]
    check_writable(outputs, force=args.force)
    result = run_audit(_scan_config(args, args.prompt[0]))
    contents = {}
    if args.json:
        contents[args.json] = render_json(result)
    if args.html:
        contents[args.html] = render_html(result, args.report_lang)
    if args.markdown:
        contents[args.markdown] = render_markdown(result, args.report_lang)
    if args.junit:
        from audit.report.junit import adapter_name, render_junit

        contents[args.junit] = render_junit([(adapter_name(result), result)], args.fail_on, args.report_lang)
    write_outputs(contents)
    labels = {args.json: "JSON", args.html: "HTML", args.markdown: "Markdown", args.junit: "JUnit"}
    print(render_terminal(result, {labels[p]: str(p) for p in contents}), end="")
    return exit_code(result.summary.risk.label, args.fail_on)


def _render(args: argparse.Namespace) -> int:
    from audit.output import check_writable, write_outputs
    from audit.report.html import render_html
    from audit.report.load import read_result
    from audit.report.markdown import render_markdown

    outputs = [p for p in (args.html, args.markdown) if p is not None]
    if not outputs:
        raise AuditInputError("render writes nothing without --html or --markdown", "pass --html OUT.html")
    check_writable(outputs, force=args.force)
    result = read_result(args.audit)
    contents = {}
    if args.html:
        contents[args.html] = render_html(result, args.report_lang)
    if args.markdown:
        contents[args.markdown] = render_markdown(result, args.report_lang)
    write_outputs(contents)
    for path in contents:
        print(f"wrote {path}")
    return EXIT_OK


def _scan_config(args: argparse.Namespace, prompt: Path) -> AuditConfig:
    return _config(
        args,
        prompt,
        reference_text=args.reference_text,
        fail_on=args.fail_on,
        key=args.key,
        device=args.device,
        behaviour=args.behaviour,
        max_ablations=args.max_ablations,
        model_mismatch_ok=args.model_mismatch_ok,
    )


def _config(args: argparse.Namespace, prompt: Path, **extra) -> AuditConfig:
    """The AuditConfig of the options ``scan`` and ``prepare`` share, plus ``extra``."""
    return AuditConfig(
        prompt=prompt,
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


def _prepare(args: argparse.Namespace) -> int:
    import time

    from audit.cache import root
    from audit.geometry.methods import resolve_methods
    from audit.pipeline import prepare_model

    start = time.perf_counter()
    vocab = prepare_model(_config(args, Path("-")))
    methods = resolve_methods(args.methods)
    print(
        f"prepared {vocab.spec} ({vocab.size} x {vocab.dim}): token table, statistics, term index, "
        f"null model for {len(methods)} method(s), seed {args.seed}; cache {root()}; "
        f"{time.perf_counter() - start:.1f} s"
    )
    return EXIT_OK


def exit_code(risk: str, fail_on: str) -> int:
    from audit.records import Level

    if fail_on == "never":
        return EXIT_OK
    return EXIT_RISK if Level.parse(risk) >= Level.parse(fail_on) else EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from audit.demo.run import run_demo

    return run_demo(args.out, progress=not args.quiet, lang=args.report_lang, behaviour=not args.no_behaviour)


def _methods(args: argparse.Namespace) -> int:
    from audit.geometry.methods import METHODS

    width = max(len(n) for n in METHODS)
    for name, method in METHODS.items():
        print(f"{name:<{width}}  {method.summary}")
    return EXIT_OK


def _wordlists(args: argparse.Namespace) -> int:
    from audit.terms import bundle
    from audit.terms.load import load_wordlists
    from audit.terms.match import build_index, coverage
    from audit.terms.schema import LOW_COVERAGE

    if args.action == "manifest":
        print(f"wrote {bundle.write_manifest()}")
        return EXIT_OK
    if args.action == "check":
        problems = bundle.check_bundle(tuple(args.wordlists))
        if problems:
            for item in problems:
                print(item, file=sys.stderr)
            print(
                f"prompt-audit: error: {len(problems)} wordlist problem(s); fix the files named above",
                file=sys.stderr,
            )
            return EXIT_INPUT
        lists = load_wordlists(user_dirs=tuple(args.wordlists), languages=None)
        print(
            f"wordlists OK: bundle {lists.bundle_version}, {len(lists.files)} files, {len(lists.terms)} terms"
        )
        return EXIT_OK
    lists = load_wordlists(user_dirs=tuple(args.wordlists), languages=args.lang)
    if args.action == "list":
        counts: dict[tuple[str, str], list[int]] = {}
        for term in lists.terms:
            entry = counts.setdefault((term.language, term.category), [0, 0])
            entry[0] += 1
            entry[1] += len(term.forms)
        print(f"bundle {lists.bundle_version}")
        print(f"{'lang':<5}{'category':<20}{'terms':>7}{'forms':>7}")
        for (language, category), (n_terms, n_forms) in sorted(counts.items()):
            print(f"{language:<5}{category:<20}{n_terms:>7}{n_forms:>7}")
        return EXIT_OK
    if not args.model:
        raise AuditInputError("wordlists coverage needs --model", "e.g. --model gemma-3-270m")
    from audit.inputs.formats import load_vocabulary

    vocab = load_vocabulary(args.model)
    rows = coverage(lists, build_index(vocab, lists))
    print(
        f"coverage of {len(lists.terms)} terms in {vocab.spec} ({vocab.size} tokens): share of terms with a "
        "form that is one whole token"
    )
    print(f"{'lang':<5}{'category':<20}{'covered':>9}{'share':>8}  not representable as one token")
    for row in rows:
        flag = "  LOW" if row.low else ""
        missing = ", ".join(row.missing[:8]) + (" ..." if len(row.missing) > 8 else "")
        print(
            f"{row.language:<5}{row.category:<20}{row.n_covered:>4}/{row.n_terms:<4}{100 * row.share:>7.0f}%"
            f"{flag}  {missing}"
        )
    low = [r for r in rows if r.low]
    if low:
        print(
            f"warning: {len(low)} categories below {100 * LOW_COVERAGE:.0f} % coverage: hits on their "
            "missing terms can only be partial (multi-token)",
            file=sys.stderr,
        )
    return EXIT_OK
