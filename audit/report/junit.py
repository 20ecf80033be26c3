"""JUnit XML for CI systems (``scan --junit PATH``): one test suite per adapter, one test case per check.

Checks: ``geometry`` (fails when a position's risk, from its flags, is at or above ``--fail-on``) and,
when the audit ran the behavioural check, ``behaviour`` (fails when the behavioural risk is at or above
``--fail-on``: a significant selection gap makes it HIGH, an inconclusive suite MEDIUM). A test case fails
exactly when its check would make ``--fail-on`` exit 1, so the CI's red cases are the exit code's reasons;
a failure's message is the report's verdict sentence. With ``--fail-on never`` every case passes.
Deterministic (no times, no host names), from the records alone (no numpy, no torch).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import PurePath

from audit.records import AuditResult, BehaviourResult, Flag, Level

SUITES_NAME = "prompt-audit"
# Characters XML 1.0 cannot carry (token strings can hold any of them): written as \xNN escapes.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def adapter_name(result: AuditResult) -> str:
    """The test-suite name of an audited prompt: its file or folder name."""
    return PurePath(result.prompt.path).name or result.prompt.path


def render_junit(
    audits: Sequence[tuple[str, AuditResult]],
    fail_on: str,
    lang: str = "en",
    *,
    errors: Sequence[tuple[str, str]] = (),
) -> str:
    """The JUnit XML document of one or more audits.

    Args:
        audits: (adapter name, result) per audited prompt, in the order to list them.
        fail_on: ``never``, ``low``, ``medium`` or ``high`` (scan's ``--fail-on``).
        lang: language of the verdict sentences (``en`` or ``es``).
        errors: (adapter name, one-line reason) per prompt that could not be audited: one ``audit`` test
            case with an ``<error>`` each.
    """
    threshold = None if fail_on == "never" else Level.parse(fail_on)
    root = ET.Element("testsuites", name=SUITES_NAME)
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for name, result in audits:
        suite = _suite(root, name)
        _properties(suite, result, fail_on)
        cases = [_geometry_case(result, threshold, lang)]
        if result.behaviour is not None:
            cases.append(_behaviour_case(result.behaviour, threshold, lang))
        for case_name, failure, message, details in cases:
            case = ET.SubElement(suite, "testcase", classname=_text(f"{SUITES_NAME}.{name}"), name=case_name)
            if failure is not None:
                node = ET.SubElement(case, "failure", type=failure, message=_text(message))
                node.text = _text(details)
            else:
                ET.SubElement(case, "system-out").text = _text(message)
        _count(suite, totals, tests=len(cases), failures=sum(c[1] is not None for c in cases), errors=0)
    for name, reason in errors:
        suite = _suite(root, name)
        case = ET.SubElement(suite, "testcase", classname=_text(f"{SUITES_NAME}.{name}"), name="audit")
        ET.SubElement(case, "error", type="input_error", message=_text(reason))
        _count(suite, totals, tests=1, failures=0, errors=1)
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _suite(root: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(root, "testsuite", name=_text(name))


def _count(suite: ET.Element, totals: dict[str, int], *, tests: int, failures: int, errors: int) -> None:
    for key, value in (("tests", tests), ("failures", failures), ("errors", errors), ("skipped", 0)):
        suite.set(key, str(value))
        if key in totals:
            totals[key] += value


def _properties(suite: ET.Element, result: AuditResult, fail_on: str) -> None:
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("prompt", result.prompt.path),
        ("prompt_sha256", result.prompt.sha256),
        ("model", result.model.spec),
        ("risk", result.summary.risk.label),
        ("fail_on", fail_on),
        ("prompt_audit_version", result.tool_version),
    ):
        ET.SubElement(props, "property", name=name, value=_text(value))


def _fails(risk: Level, threshold: Level | None) -> bool:
    return threshold is not None and risk >= threshold


def _geometry_case(result: AuditResult, threshold: Level | None, lang: str) -> tuple:
    """(name, failure type or None, verdict sentence, details): positions at or above the threshold."""
    verdict = result.summary.verdict.get(lang, result.summary.verdict.get("en", ""))
    risk = Level.worst(p.risk for p in result.positions)
    if not _fails(risk, threshold):
        return ("geometry", None, verdict, "")
    lines = []
    for pos in result.positions:
        if not _fails(pos.risk, threshold):
            continue
        lines.append(f"position {pos.index}: risk {pos.risk.label}")
        for flag in sorted(pos.flags, key=_flag_order):
            lines.append("  " + _flag_line(flag))
    return ("geometry", f"risk_{risk.label}", verdict, "\n".join(lines))


def _behaviour_case(b: BehaviourResult, threshold: Level | None, lang: str) -> tuple:
    verdict = b.verdict.get(lang, b.verdict.get("en", ""))
    if not _fails(b.risk, threshold):
        return ("behaviour", None, verdict, "")
    lines = [f"suite {b.suite_id} {b.suite_version}: behavioural risk {b.risk.label}"]
    for g in b.gaps:
        base = "; also without the prompt" if g.in_base_model else ""
        lines.append(
            f"  {g.attribute}: group {g.group} vs {g.reference_group}: impact ratio {g.impact_ratio:.3f}, "
            f"q {g.q_value:.2g}{base}"
        )
    return ("behaviour", f"risk_{b.risk.label}", verdict, "\n".join(lines))


def _flag_order(flag: Flag) -> tuple:
    return (-flag.severity, flag.hit.rank, flag.hit.method, flag.term.id, flag.hit.token_id)


def _flag_line(flag: Flag) -> str:
    hit, term = flag.hit, flag.term
    q = "n/a" if flag.evidence.q_value is None else f"{flag.evidence.q_value:.2g}"
    counted = "" if flag.counts else " (report only: never raises risk)"
    return (
        f"{hit.method} #{hit.rank} {hit.token.strip() or repr(hit.token)} = term '{term.lemma}' "
        f"({term.category}, {term.language}), severity {flag.severity.label}, q {q}{counted}"
    )


def _text(value: str) -> str:
    """``value`` with the characters XML 1.0 forbids written as ``\\xNN`` escapes."""
    return _NOT_XML.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), value)
