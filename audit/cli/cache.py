"""`prompt-audit cache info|clear`: the subcommand's options and printing (the work: audit.cache_admin)."""

from __future__ import annotations

import argparse
import math

from audit.cache import root_and_source
from audit.cache_admin import clear, info_lines


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``cache info`` and ``cache clear`` on the CLI's subcommands."""
    cache = sub.add_parser(
        "cache",
        help="show or clear the on-disk cache",
        description="Show what the cache holds (location, size per model and kind, versions) or remove "
        "entries. The cache is only an optimisation: whatever is removed is rebuilt when needed.",
    )
    actions = cache.add_subparsers(
        dest="cache_action", metavar="{info,clear}", parser_class=type(cache), required=True
    )
    actions.add_parser(
        "info", help="location, size per model and kind, versions", description="Show the cache."
    )
    clear = actions.add_parser(
        "clear",
        help="remove entries (all, one model's, or old ones) and list what was removed",
        description="Remove cache entries without asking, printing each one removed; --model and "
        "--older-than narrow it (both: entries matching both).",
    )
    clear.add_argument(
        "--model", metavar="SPEC", help="a model name or id as `prompt-audit cache info` lists it"
    )
    clear.add_argument(
        "--older-than", type=_days, metavar="DAYS", help="only entries written more than DAYS days ago"
    )


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of days") from None
    if not math.isfinite(days) or days < 0:
        raise argparse.ArgumentTypeError(f"give a number of days >= 0, not '{text}'")
    return days


def run(args: argparse.Namespace) -> int:
    """The ``cache`` subcommand; prints to stdout and returns the exit code."""
    root, source = root_and_source()
    if args.cache_action == "info":
        print("\n".join(info_lines(root, source)))
    else:
        print("\n".join(clear(root, model=args.model, older_than=args.older_than)))
    return 0
