"""`prompt-audit render`: a saved audit re-renders byte for byte, without torch; the CLI's cheap commands
import no torch either."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from audit.cli import main
from audit.report.html import render_html
from audit.report.json_out import render_json
from audit.report.markdown import render_markdown
from tests.helpers import MIX
from tests.helpers import REPORT_WORDS as WORDS
from tests.helpers import hostile_result as _hostile_result
from tests.helpers import result as _result

# Runs a snippet in a fresh interpreter where importing torch (or numpy) fails.
NO_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "numpy", "transformers", "safetensors"):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, _Block())
"""


def _run_without_torch(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("lang", ["en", "es"])
@pytest.mark.parametrize("make", [lambda: _result(WORDS, MIX), _hostile_result], ids=["golden", "hostile"])
def test_render_reproduces_the_scan_html_and_markdown_without_torch(tmp_path, lang, make):
    result = make()
    audit_json = tmp_path / "audit.json"
    audit_json.write_text(render_json(result), encoding="utf-8")
    out_html, out_md = tmp_path / "again.html", tmp_path / "again.md"
    proc = _run_without_torch(
        """
        from audit.cli import main
        code = main(sys.argv[1:])
        assert "torch" not in sys.modules and "numpy" not in sys.modules
        raise SystemExit(code)
        """,
        "render",
        str(audit_json),
        "--html",
        str(out_html),
        "--markdown",
        str(out_md),
        "--report-lang",
        lang,
    )
    assert proc.returncode == 0, proc.stderr
    assert out_html.read_text(encoding="utf-8") == render_html(result, lang)
    assert out_md.read_text(encoding="utf-8") == render_markdown(result, lang)


def test_help_methods_and_usage_errors_import_no_torch():
    proc = _run_without_torch(
        """
        import contextlib, io
        from audit.cli import main
        for argv in (["methods"], ["scan", "--bogus"], ["render"]):
            assert main(argv) in (0, 2), argv
        with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
            main(["--help"])
        assert "torch" not in sys.modules, "torch was imported"
        """
    )
    assert proc.returncode == 0, proc.stderr


def test_render_refuses_what_is_not_an_audit(tmp_path, capsys):
    bad = tmp_path / "x.json"
    bad.write_text('{"schema_version": "1"}', encoding="utf-8")
    out = tmp_path / "out.html"
    assert main(["render", str(bad), "--html", str(out)]) == 2
    assert main(["render", str(tmp_path / "missing.json"), "--html", str(out)]) == 2
    (tmp_path / "junk.json").write_text("not json", encoding="utf-8")
    assert main(["render", str(tmp_path / "junk.json"), "--html", str(out)]) == 2
    assert main(["render", str(bad)]) == 2  # nothing to write
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if line.strip()]) == 4
    assert not out.exists()
