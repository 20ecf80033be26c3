"""The HTML report: one self-contained, autoescaped page printed from :func:`audit.report.view.view_model`.

Python computes every string, number and coordinate (:mod:`audit.report.view`, :mod:`.figures`); the
templates only loop and print. Autoescape is on for every template and nothing derived from tokens or
files is marked safe (token strings can contain HTML).
"""

from __future__ import annotations

from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from audit.records import AuditResult
from audit.report.load import canonical
from audit.report.view import view_model


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The one jinja2 environment of every HTML page (report, diff, batch index, demo index), made once
    per process so each template is compiled once (a batch of 24 compiled the report 24 times: 2.2 s)."""
    return Environment(
        loader=PackageLoader("audit.report", "templates"),
        autoescape=select_autoescape(
            enabled_extensions=("html", "j2"), default=True, default_for_string=True
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_html(result: AuditResult, lang: str = "en") -> str:
    """The HTML report, from the result as its JSON keeps it (so ``render`` reproduces it)."""
    return environment().get_template("report.html.j2").render(**view_model(canonical(result), lang))
