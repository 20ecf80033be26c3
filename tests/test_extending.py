"""Extension cost, shown: a 7th projection method registered through the registry alone appears in the
JSON, the HTML report and `prompt-audit methods` (docs/extending.md)."""

from __future__ import annotations

import json

import pytest

from audit.cli import main
from audit.geometry import methods as registry
from audit.geometry.methods import METHODS, Method
from audit.report.html import render_html
from audit.report.json_out import render_json
from tests.helpers import MIX
from tests.helpers import REPORT_WORDS as WORDS
from tests.helpers import result as _result


def _neg_l1_query(prompt, stats):
    return prompt


def _manhattan_like(raw, prompt, stats, start, stop):
    # A toy score: the inner product damped by the token norm (not a real method, just a new ranking).
    return raw / (1.0 + stats.token_norms[start:stop].to(raw.device))


TOY = Method(
    "toy",
    "a toy method registered by a test",
    {"en": "toy method (test only)", "es": "método de prueba (solo tests)"},
    "input",
    _neg_l1_query,
    _manhattan_like,
)


@pytest.fixture()
def toy_method():
    registry.register(TOY)
    yield TOY
    del METHODS[TOY.name]


def test_a_registered_method_reaches_json_html_and_the_methods_command(toy_method, capsys):
    result = _result(WORDS, MIX)
    assert "toy" in result.methods
    data = json.loads(render_json(result))
    assert "toy" in data["methods"] and "toy" in data["projected_text"]
    assert all("toy" in p["projections"] for p in data["positions"])
    assert any(m["name"] == "toy" for m in data["methodology"]["methods"])
    html = render_html(result)
    assert "toy method (test only)" in html and "<th>toy</th>" in html
    assert "método de prueba (solo tests)" in render_html(result, "es")
    assert main(["methods"]) == 0
    assert "a toy method registered by a test" in capsys.readouterr().out


def test_registering_a_name_twice_is_refused(toy_method):
    with pytest.raises(ValueError):
        registry.register(TOY)
