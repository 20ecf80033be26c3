"""The HTML report: golden file, escaping of hostile tokens (parser and real browser), HTML validity,
Spanish without English UI strings, Markdown summary."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import html5lib
import pytest
import torch

from audit.config import AuditConfig
from audit.inputs.prompts import Segment, SoftPrompt
from audit.inputs.vocab import vocabulary_from_tensors
from audit.pipeline import audit_prompt
from audit.report.html import render_html
from audit.report.i18n import STRINGS
from audit.report.markdown import render_markdown
from audit.terms.load import load_wordlists
from tests.conftest import word_level_tokenizer

GOLDEN = Path(__file__).resolve().parent / "golden" / "report_en.html"
HOSTILE = [
    "<script>document.title='pwned'</script>",
    '"quoted"',
    "a&b",
    "{{ 7*7 }}",
    "<img src=x onerror=alert(1)>",
]


def _result(words, mix, reference="casa gitanos"):
    """A synthetic world: orthonormal word vectors; ``mix`` = list of (word, weight) per position.

    The rows are basis vectors, exact on every machine (a QR of random numbers differs in the last bits
    between BLAS builds, and so did the golden report)."""
    n, d = len(words), 64
    rows = torch.eye(d)[: n + 1].contiguous()
    rows[words.index("gitanos")] *= 2.0
    vocab = vocabulary_from_tensors(rows, word_level_tokenizer(words), spec="synthetic")
    vectors = torch.stack([sum(w * rows[words.index(tok)] for tok, w in pos) for pos in mix])
    prompt = SoftPrompt(vectors, Path("synthetic.npy"), "0" * 64, "npy", (Segment("prompt", 0, len(mix)),))
    config = AuditConfig(prompt=Path("synthetic.npy"), progress=False, top_k=3, reference_text=reference)
    return audit_prompt(prompt, vocab, load_wordlists(), config)


WORDS = [
    "casa",
    "mesa",
    "gitanos",
    "perro",
    "gato",
    "sol",
    "agua",
    "libro",
    "musulmanes",
    "blancos",
] + HOSTILE
MIX = [[("casa", 1.0)], [("casa", 0.55), ("gitanos", 0.225)], [("perro", 0.7), ("blancos", 0.3)]]


def test_golden_report():
    """Regenerate on purpose with UPDATE_GOLDEN=1 after an intended change, and review the diff."""
    html = render_html(_result(WORDS, MIX))
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(html, encoding="utf-8")
    assert html == GOLDEN.read_text(encoding="utf-8")


def test_report_is_valid_html5_in_both_languages():
    result = _result(WORDS, MIX)
    for lang in ("en", "es"):
        parser = html5lib.HTMLParser(strict=True)
        parser.parse(render_html(result, lang))
        assert parser.errors == [], lang


def _hostile_result():
    mix = [[(HOSTILE[0], 1.0)], [(HOSTILE[1], 0.6), (HOSTILE[3], 0.4)], [(HOSTILE[4], 0.7), ("gitanos", 0.3)]]
    return _result(WORDS, mix, reference="<b>bold</b> & {{ x }}")


def test_hostile_tokens_are_escaped_text():
    html = render_html(_hostile_result())
    assert "<script>document" not in html and "<img src=x" not in html
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "{{ 7*7 }}" in html and "49" not in html.split("{{ 7*7 }}")[0][-20:]
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; {{ x }}" in html
    markdown = render_markdown(_hostile_result())
    assert "<script>" not in markdown and "<img" not in markdown


def test_spanish_report_has_no_english_ui_strings():
    html = render_html(_result(WORDS, MIX), "es")
    english_only = {
        v for k, v in STRINGS["en"].items() if v != STRINGS["es"][k] and len(v.split()) >= 2 and "{" not in v
    }
    left = sorted(s for s in english_only if s in html)
    assert left == []
    for fragment in ("Position", "reads", "neighbour", "under cosine", "null vectors", "Methodology"):
        assert fragment not in html, fragment
    assert '<html lang="es">' in html


def test_markdown_summary_lists_verdict_readings_and_flags():
    md = render_markdown(_result(WORDS, MIX))
    assert md.startswith("## prompt-audit: ")
    assert "| l2 |" in md and "gitanos" in md


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium not installed (apt-get install chromium; .ci/run does)"
)
def test_headless_chromium_runs_no_script_and_shows_tokens_as_text(tmp_path):
    report = tmp_path / "hostile.html"
    report.write_text(render_html(_hostile_result()), encoding="utf-8")
    profile = tmp_path / "profile"
    base = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}"]
    dom = subprocess.run(
        [*base, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "<title>Soft-prompt audit" in dom  # the injected script never set document.title
    assert "pwned</title>" not in dom
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom  # shown as text
    assert "<script" not in dom.lower()
    shot = tmp_path / "report.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1280,2400", report.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("PROMPT_AUDIT_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
