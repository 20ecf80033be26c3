"""``methods``, ``wordlists`` and ``demo``: the subcommands that look at what the tool ships."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audit.cli import options
from audit.errors import EXIT_INPUT, EXIT_OK, AuditInputError


def add_parsers(sub: argparse._SubParsersAction) -> None:
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
    demo.add_argument(
        "--report-lang", choices=options.REPORT_LANGUAGES, default="en", help="report language (default en)"
    )
    demo.add_argument(
        "--no-behaviour",
        action="store_true",
        help="skip the behavioural check (hiring-es): geometry only, seconds instead of minutes",
    )
    demo.add_argument(
        "--sequential",
        action="store_true",
        help="stop each behavioural check at the first look whose verdict is settled (scan --sequential); "
        "the reports then differ from reports/sample, which is the full design",
    )
    demo.add_argument(
        "--faithful-reading",
        action="store_true",
        help="also search each adapter's most faithful text (scan --faithful-reading, default budget); "
        "2 to 9 suite runs more per adapter (6 to 24 minutes on 2 cores); the reports then differ from "
        "reports/sample and match reports/sample-faithful",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars")

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
    options.wordlist_options(words)


def run_demo(args: argparse.Namespace) -> int:
    from audit.demo.run import run_demo

    if args.sequential and args.no_behaviour:
        raise AuditInputError(
            "--sequential applies to the behavioural check", "drop --no-behaviour or --sequential"
        )
    if args.faithful_reading and (args.no_behaviour or args.sequential):
        raise AuditInputError(
            "--faithful-reading searches with the behavioural check on the whole suite",
            "drop --no-behaviour and --sequential, or --faithful-reading",
        )
    return run_demo(
        args.out,
        progress=not args.quiet,
        lang=args.report_lang,
        behaviour=not args.no_behaviour,
        sequential=args.sequential,
        faithful_reading=args.faithful_reading,
    )


def run_methods(args: argparse.Namespace) -> int:
    from audit.geometry.methods import METHODS

    width = max(len(n) for n in METHODS)
    for name, method in METHODS.items():
        print(f"{name:<{width}}  {method.summary}")
    return EXIT_OK


def run_wordlists(args: argparse.Namespace) -> int:
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
