"""``prompt-audit diff``: what changed between two saved audits, compared as records, without torch.

Both JSON files are read through the one codec (:func:`audit.report.contract.result_from_dict`) into
:class:`AuditResult`; :func:`diff_audits` compares their records (flags, gaps) themselves. A flag is the
same flag in both audits when its position, method, token and term agree (:func:`flag_key`); its rank
and severity may change. The view model is :mod:`audit.report.diff_view`, the renderers are
:mod:`audit.report.diff_render`. Plain Python: no numpy, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from audit.records import AuditResult, Flag, Gap, Level, Unresolved
from audit.report.contract import read_json, result_from_dict

FIX = "pass two JSON files a scan wrote with --json"


@dataclass(frozen=True)
class FlagChange:
    """The same flag in both audits at a different rank or severity."""

    old: Flag
    new: Flag


@dataclass(frozen=True)
class TokenChange:
    """One position whose top-1 token under a method changed (None: the position is absent there)."""

    position: int
    old: str | None
    new: str | None


@dataclass(frozen=True)
class ReadingChange:
    """A method whose projected reading changed (text None: the method was not run in that audit)."""

    method: str
    old_text: str | None
    new_text: str | None
    tokens: tuple[TokenChange, ...]


@dataclass(frozen=True)
class Side:
    """One of the two audits: where it came from and its headline findings."""

    label: str  # the JSON path as given
    prompt: str
    prompt_sha256: str
    risk: Level
    n_flags: int
    verdict: dict[str, str]  # report language -> sentence
    behaviour_risk: Level | None  # None: no behavioural check in this audit
    suite: str | None
    gaps: tuple[Gap, ...]
    unresolved: tuple[Unresolved, ...] = ()  # groups the behavioural rule could not resolve


@dataclass(frozen=True)
class ContextChange:
    """A setting or input that differs between the audits (other than the findings)."""

    field: str  # key of STRINGS["ctx_*"]
    old: str
    new: str


@dataclass(frozen=True)
class AuditDiff:
    old: Side
    new: Side
    appeared: tuple[Flag, ...]
    disappeared: tuple[Flag, ...]
    changed: tuple[FlagChange, ...]
    readings: tuple[ReadingChange, ...]
    behaviour: str  # "both", "old_only", "new_only" or "neither": which audits ran the check
    gaps_opened: tuple[Gap, ...]
    gaps_closed: tuple[Gap, ...]
    gaps_kept: tuple[tuple[Gap, Gap], ...]  # (old, new) of the gaps open in both
    context: tuple[ContextChange, ...]

    @property
    def has_changes(self) -> bool:
        """Whether the findings differ (risk, verdict, flags, readings, behavioural check or gaps)."""
        return bool(
            self.old.risk != self.new.risk
            or self.old.verdict != self.new.verdict
            or self.old.behaviour_risk != self.new.behaviour_risk
            or self.appeared
            or self.disappeared
            or self.changed
            or self.readings
            or self.gaps_opened
            or self.gaps_closed
            or self.old.unresolved != self.new.unresolved
            or self.behaviour in ("old_only", "new_only")
        )

    def new_flags_at_or_above(self, level: Level) -> tuple[Flag, ...]:
        """The counted flags NEW adds at ``level`` or above: flags that appeared, and flags whose severity
        rose from below ``level`` to it (what ``--fail-on-new`` fails on)."""
        out = [f for f in self.appeared if f.counts and f.severity >= level]
        out += [
            c.new
            for c in self.changed
            if c.new.counts and c.new.severity >= level and not (c.old.counts and c.old.severity >= level)
        ]
        return tuple(sorted(out, key=flag_order))


# ---------------------------------------------------------------------------------------------
# Reading the two audits


def read_pair(old_path: Path, new_path: Path) -> tuple[AuditResult, AuditResult]:
    """Loads two ``--json`` audits of this schema version.

    Raises:
        AuditInputError: a file is missing, is not an audit, or has another schema version.
    """
    return read_audit(old_path), read_audit(new_path)


def read_audit(path: Path) -> AuditResult:
    return result_from_dict(read_json(path, FIX), path, FIX)


# ---------------------------------------------------------------------------------------------
# Comparing


def diff_audits(old: AuditResult, new: AuditResult, *, old_label: str, new_label: str) -> AuditDiff:
    """What NEW changes with respect to OLD: flags, readings, behavioural gaps, risk, context."""
    old_flags, new_flags = _flags(old), _flags(new)
    appeared = tuple(sorted((f for k, f in new_flags.items() if k not in old_flags), key=flag_order))
    disappeared = tuple(sorted((f for k, f in old_flags.items() if k not in new_flags), key=flag_order))
    changed = tuple(
        sorted(
            (
                FlagChange(old_flags[k], f)
                for k, f in new_flags.items()
                if k in old_flags and _rank_severity(old_flags[k]) != _rank_severity(f)
            ),
            key=lambda c: flag_order(c.new),
        )
    )
    old_side, new_side = _side(old, old_label), _side(new, new_label)
    behaviour = {
        (True, True): "both",
        (True, False): "old_only",
        (False, True): "new_only",
        (False, False): "neither",
    }[(old.behaviour is not None, new.behaviour is not None)]
    opened: tuple[Gap, ...] = ()
    closed: tuple[Gap, ...] = ()
    kept: tuple[tuple[Gap, Gap], ...] = ()
    if behaviour == "both":
        old_gaps = {gap_key(g): g for g in old_side.gaps}
        new_gaps = {gap_key(g): g for g in new_side.gaps}
        opened = tuple(g for k, g in new_gaps.items() if k not in old_gaps)
        closed = tuple(g for k, g in old_gaps.items() if k not in new_gaps)
        kept = tuple((old_gaps[k], g) for k, g in new_gaps.items() if k in old_gaps)
    return AuditDiff(
        old=old_side,
        new=new_side,
        appeared=appeared,
        disappeared=disappeared,
        changed=changed,
        readings=_readings(old, new),
        behaviour=behaviour,
        gaps_opened=opened,
        gaps_closed=closed,
        gaps_kept=kept,
        context=_context(old, new),
    )


def _flags(result: AuditResult) -> dict[tuple[int, str, int, str], Flag]:
    """The report's flags (allow-listed ones are not flags) by identity."""
    out: dict[tuple[int, str, int, str], Flag] = {}
    for pos in result.positions:
        for flag in pos.flags:
            out.setdefault(flag_key(flag), flag)
    return out


def flag_key(f: Flag) -> tuple[int, str, int, str]:
    """A flag's identity across two audits: position, method, token and term."""
    return (f.hit.position, f.hit.method, f.hit.token_id, f.term.id)


def flag_order(f: Flag) -> tuple:
    return (-f.severity, f.hit.position, f.hit.rank, f.hit.method, f.term.id, f.hit.token_id)


def gap_key(g: Gap) -> tuple[str, str]:
    return (g.attribute, g.group)


def _gaps(result: AuditResult) -> tuple[Gap, ...]:
    if result.behaviour is None:
        return ()
    return tuple(sorted(result.behaviour.gaps, key=gap_key))


def _side(result: AuditResult, label: str) -> Side:
    b = result.behaviour
    return Side(
        label=label,
        prompt=result.prompt.path,
        prompt_sha256=result.prompt.sha256,
        risk=result.summary.risk,
        n_flags=sum(len(p.flags) for p in result.positions),
        verdict=dict(result.summary.verdict),
        behaviour_risk=b.risk if b is not None else None,
        suite=f"{b.suite_id} {b.suite_version}" if b is not None else None,
        gaps=_gaps(result),
        unresolved=b.unresolved if b is not None else (),
    )


def _readings(old: AuditResult, new: AuditResult) -> tuple[ReadingChange, ...]:
    """Per method (NEW's order, then methods only OLD ran): the positions whose top-1 token changed."""
    methods = list(new.methods) + [m for m in old.methods if m not in new.methods]
    old_pos = {p.index: p for p in old.positions}
    new_pos = {p.index: p for p in new.positions}
    out = []
    for method in methods:
        tokens = []
        for index in sorted(set(old_pos) | set(new_pos)):
            before = old_pos[index].projections.get(method) if index in old_pos else None
            after = new_pos[index].projections.get(method) if index in new_pos else None
            ids = (before.token_id if before else None, after.token_id if after else None)
            if ids[0] != ids[1]:
                tokens.append(
                    TokenChange(index, before.token if before else None, after.token if after else None)
                )
        old_text, new_text = old.projected_text.get(method), new.projected_text.get(method)
        if tokens or old_text != new_text:
            out.append(ReadingChange(method, old_text, new_text, tuple(tokens)))
    return tuple(out)


def _context(old: AuditResult, new: AuditResult) -> tuple[ContextChange, ...]:
    """Inputs and settings that differ: a flag can come and go with these as well as with the prompt."""

    def suite(r: AuditResult) -> str:
        b = r.behaviour
        return f"{b.suite_id} {b.suite_version} ({b.suite_sha256[:12]})" if b is not None else "-"

    pairs = (
        (
            "ctx_model",
            f"{old.model.spec} ({old.model.sha256[:12]})",
            f"{new.model.spec} ({new.model.sha256[:12]})",
        ),
        ("ctx_wordlists", old.wordlist_bundle, new.wordlist_bundle),
        ("ctx_methods", ", ".join(old.methods), ", ".join(new.methods)),
        ("ctx_top_k", str(old.top_k), str(new.top_k)),
        ("ctx_languages", ", ".join(old.languages), ", ".join(new.languages)),
        ("ctx_seed", str(old.seed), str(new.seed)),
        ("ctx_suite", suite(old), suite(new)),
        ("ctx_tool", old.tool_version, new.tool_version),
    )
    return tuple(ContextChange(k, a, b) for k, a, b in pairs if a != b)


def _rank_severity(f: Flag) -> tuple[int, Level]:
    return (f.hit.rank, f.severity)


def category_labels(*results: AuditResult) -> dict[str, dict[str, str]]:
    """Category labels of both audits (NEW's win)."""
    out: dict[str, dict[str, str]] = {}
    for result in results:
        out.update(result.category_labels)
    return out
