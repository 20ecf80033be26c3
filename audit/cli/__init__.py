"""Command line: parses arguments into an AuditConfig, calls the engine, hands the records to the writers,
sets the exit code (:mod:`audit.errors`: 0 done and risk below --fail-on; 1 risk at or above --fail-on;
2 usage or input error, one line on stderr and no output file written; 3 internal error).

One module per group of subcommands; each adds its parsers and has one handler per subcommand.
"""

from __future__ import annotations

import argparse
import os
import sys

from audit import __version__
from audit.cli import cache, diff, inspect, models, scan
from audit.errors import EXIT_INPUT, EXIT_INTERNAL, AuditInputError


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (exit 2) instead of usage + message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise AuditInputError(f"{self.prog}: {message}", f"see `{self.prog} --help`")


HANDLERS = {
    "scan": scan.run_scan,
    "render": scan.run_render,
    "diff": diff.run_diff,
    "prepare": scan.run_prepare,
    "demo": inspect.run_demo,
    "methods": inspect.run_methods,
    "wordlists": inspect.run_wordlists,
    "cache": cache.run,
    "models": models.run,
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="prompt-audit",
        description="Audit a soft prompt: project it onto the vocabulary with several methods, measure their "
        "disagreement, flag sensitive neighbours, and write JSON/HTML risk reports.",
    )
    parser.add_argument("--version", action="version", version=f"prompt-audit {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, required=True)
    scan.add_parsers(sub)  # scan, render, prepare
    diff.add_diff_command(sub)
    inspect.add_parsers(sub)  # demo, methods, wordlists
    cache.add_parser(sub)
    models.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        args = build_parser().parse_args(argv)
        return HANDLERS[args.command](args)
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
