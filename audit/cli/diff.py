"""``prompt-audit diff OLD.json NEW.json``: the subcommand's options and handler (no torch, no numpy).

Exit codes: 0 compared (and, with --fail-on-new, NEW adds no flag at that level or above); 1 NEW adds a
flag at or above --fail-on-new; 2 usage or input error (one line on stderr, nothing written).
"""

from __future__ import annotations

import argparse
from pathlib import Path

FAIL_ON_NEW_CHOICES = ("high", "medium", "low")
EXIT_OK, EXIT_NEW_FLAGS = 0, 1  # as audit.cli's EXIT_OK and EXIT_RISK
REPORT_LANGUAGES = ("en", "es")  # audit.report.i18n.LANGUAGES (not imported here: keeps --help light)


def add_diff_command(sub: argparse._SubParsersAction) -> None:
    """Adds ``diff`` to the CLI's subcommands."""
    diff = sub.add_parser(
        "diff",
        help="compare two saved audits (their --json): risk, flags, readings, behavioural gaps",
        description="Compare two saved audits of a prompt (e.g. two versions of an adapter): the risk "
        "before and after, the flags that appeared, disappeared or changed rank or severity, the readings "
        "that changed under each method, and the behavioural gaps that opened or closed. Reads the JSON "
        "alone: needs no model (and does not import torch).",
        epilog="A flag is the same in both audits when its position, method, token and term agree. exit "
        "codes: 0 compared (with --fail-on-new: no new flag at that level); 1 NEW adds a flag at or "
        "above --fail-on-new (one that appeared, or one whose severity rose to that level); 2 usage or "
        "input error (one line on stderr, nothing written); 3 internal error",
    )
    diff.add_argument("old", type=Path, metavar="OLD.json", help="the earlier audit (a scan's --json)")
    diff.add_argument("new", type=Path, metavar="NEW.json", help="the later audit (a scan's --json)")
    diff.add_argument("--html", type=Path, metavar="PATH", help="write the comparison as HTML here")
    diff.add_argument(
        "--markdown",
        type=Path,
        metavar="PATH",
        help="write the comparison as Markdown here (for PR comments)",
    )
    diff.add_argument(
        "--fail-on-new",
        choices=FAIL_ON_NEW_CHOICES,
        help="exit 1 when NEW adds a flag of this severity or above (report-only terms never count)",
    )
    diff.add_argument(
        "--report-lang",
        "--lang",
        dest="report_lang",
        choices=REPORT_LANGUAGES,
        default="en",
        help="language of the HTML and Markdown output (default en)",
    )
    diff.add_argument("--force", action="store_true", help="overwrite existing output files")


def run_diff(args: argparse.Namespace) -> int:
    """Compares, writes the requested files (all or none), prints a summary, returns the exit code."""
    from audit.errors import AuditInputError
    from audit.output import check_writable, write_outputs
    from audit.records import Level
    from audit.report.diff import category_labels, diff_audits, read_pair
    from audit.report.diff_render import render_diff_html, render_diff_markdown, render_diff_terminal

    outputs = [p for p in (args.html, args.markdown) if p is not None]
    if args.html is not None and args.markdown is not None and _same(args.html, args.markdown):
        raise AuditInputError("--html and --markdown name the same file", "pass two different paths")
    for path in outputs:
        if _same(path, args.old) or _same(path, args.new):
            raise AuditInputError(f"output {path} is one of the audits compared", "choose another path")
    check_writable(outputs, force=args.force)
    old, new = read_pair(args.old, args.new)
    d = diff_audits(old, new, old_label=str(args.old), new_label=str(args.new))
    labels = category_labels(old, new)
    contents = {}
    if args.html:
        contents[args.html] = render_diff_html(d, args.report_lang, categories=labels)
    if args.markdown:
        contents[args.markdown] = render_diff_markdown(d, args.report_lang, categories=labels)
    fail = d.new_flags_at_or_above(Level.parse(args.fail_on_new)) if args.fail_on_new else ()
    write_outputs(contents)
    print(render_diff_terminal(d), end="")
    if fail:
        print(f"{len(fail)} flag(s) new at --fail-on-new {args.fail_on_new} or above: exit 1")
    for path in contents:
        print(f"wrote {path}")
    return EXIT_NEW_FLAGS if fail else EXIT_OK


def _same(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()
