"""`prompt-audit models`: the packaged model aliases and where their files are on this machine (what to
pass to transformers when training an adapter of one's own on one of them)."""

from __future__ import annotations

import argparse

from audit.errors import AuditInputError

EXIT_OK = 0


def add_parser(sub) -> None:
    sub.add_parser(
        "models",
        help="list the packaged models and their local paths",
        description="List the packaged model aliases, the hub ids adapters record for them, and the local "
        "files to load them from (a packaged GGUF is assembled into the cache on first use).",
    )


def run(args: argparse.Namespace) -> int:
    from audit.inputs.models import ALIAS_HUB_IDS, ALIASES

    for alias, (kind, path_of, description) in ALIASES.items():
        print(f"{alias}: {description}")
        print(f"  hub id: {', '.join(ALIAS_HUB_IDS.get(alias, ())) or '-'}")
        try:
            path = path_of()
        except AuditInputError as exc:
            print(f"  not available here: {exc}")
            continue
        if kind == "gguf":
            print(f"  file: {path}")
            print(
                f"  load: AutoModelForCausalLM.from_pretrained({str(path.parent)!r}, "
                f"gguf_file={path.name!r}, local_files_only=True)"
            )
        else:
            print(f"  folder: {path}")
            print(f"  load: AutoModel.from_pretrained({str(path)!r}, local_files_only=True)")
    return EXIT_OK
