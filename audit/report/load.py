"""Reading a saved audit (the JSON contract) back into the records the renderers take.

Every renderer works from records rounded as the JSON stores them (:func:`canonical`), so a report
rendered later from the JSON (``prompt-audit render``) is byte-identical to the scan's own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from audit.errors import AuditInputError
from audit.records import (
    Ablation,
    AblationGroup,
    AttributeDisparity,
    AuditResult,
    BehaviourResult,
    Condition,
    CoverageRow,
    Evidence,
    Flag,
    Gap,
    GroupDisparity,
    Hit,
    Level,
    MapPoint,
    MethodInfo,
    Methodology,
    ModelInfo,
    Neighbor,
    PositionResult,
    Projection,
    PromptInfo,
    Reading,
    Summary,
    TermRef,
    WordlistInfo,
)
from audit.report.json_out import SCHEMA_VERSION, result_dict


def canonical(result: AuditResult) -> AuditResult:
    """The result as its JSON keeps it (floats rounded once)."""
    return result_from_dict(result_dict(result))


def read_result(path: Path) -> AuditResult:
    """Loads a ``--json`` file written by ``prompt-audit scan``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise AuditInputError(f"{path} does not exist", "pass the JSON a scan wrote with --json") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AuditInputError(
            f"{path} is not JSON ({exc})", "pass the JSON a scan wrote with --json"
        ) from exc
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise AuditInputError(
            f"{path} is not a prompt-audit result (schema_version {SCHEMA_VERSION})",
            "pass the JSON a scan wrote with --json",
        )
    if "methodology" not in data:
        raise AuditInputError(
            f"{path} was written by an older prompt-audit (no 'methodology')",
            "rerun the scan to re-render it",
        )
    try:
        return result_from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise AuditInputError(
            f"{path} is not a complete prompt-audit result ({type(exc).__name__}: {exc})",
            "pass the unmodified JSON a scan wrote with --json",
        ) from exc


def _flag(raw: dict[str, Any], position: int) -> Flag:
    hit = Hit(
        position=position,
        method=raw["method"],
        rank=raw["rank"],
        token_id=raw["token_id"],
        token=raw["token"],
        term_id=raw["term_id"],
        score=raw["score"],
        gap_to_top1=raw["gap_to_top1"],
        word_start=raw["word_start"],
        partial=raw["partial"],
        suppressed=raw["suppressed"],
    )
    term = TermRef(
        raw["term_id"],
        raw["term"],
        raw["category"],
        raw["language"],
        raw["policy"],
        Level.parse(raw["term_severity"]),
    )
    evidence = Evidence(raw["p_value"], raw["q_value"], raw["null_hits"])
    return Flag(hit, term, evidence, Level.parse(raw["severity"]))


def _position(raw: dict[str, Any]) -> PositionResult:
    index = raw["index"]
    return PositionResult(
        index=index,
        segment=raw["segment"],
        projections={m: Projection(**p) for m, p in raw["projections"].items()},
        neighbors={m: tuple(Neighbor(**n) for n in nbs) for m, nbs in raw["neighbors"].items()},
        agreement=raw["agreement"],
        jaccard=raw["topk_jaccard"],
        off_manifold=raw["off_manifold"],
        norm_ratio=raw["norm_ratio"],
        norm_percentile=raw["norm_percentile"],
        drift=raw["drift"],
        risk=Level.parse(raw["risk"]),
        flags=tuple(_flag(f, index) for f in raw["flags"]),
        suppressed=tuple(_flag(f, index) for f in raw["suppressed"]),
        map_points=tuple(MapPoint(**p) for p in raw["map"]),
    )


def _attributes(raw: list[dict[str, Any]]) -> tuple[AttributeDisparity, ...]:
    return tuple(
        AttributeDisparity(
            a["id"],
            a["slot"],
            a["reference_group"],
            a["reference_given"],
            a["n_templates"],
            tuple(GroupDisparity(**g) for g in a["groups"]),
        )
        for a in raw
    )


def behaviour_from_dict(raw: dict[str, Any]) -> BehaviourResult:
    suite = raw["suite"]
    return BehaviourResult(
        suite_id=suite["id"],
        suite_version=suite["version"],
        suite_sha256=suite["sha256"],
        suite_path=suite["path"],
        suite_language=suite["language"],
        n_templates=suite["n_templates"],
        answers=(suite["answers"]["positive"], suite["answers"]["negative"]),
        n_renderings=raw["n_renderings"],
        n_texts=raw["n_texts"],
        conditions=tuple(
            Condition(
                c["id"], c["prompt_text"], c["task_accuracy"], c["n_labelled"], _attributes(c["attributes"])
            )
            for c in raw["conditions"]
        ),
        test=raw["test"],
        ci_method=raw["ci_method"],
        family=raw["family"],
        seed=raw["seed"],
        n_boot=raw["n_boot"],
        risk=Level.parse(raw["risk"]),
        gaps=tuple(Gap(**g) for g in raw["gaps"]),
        verdict=dict(raw["verdict"]),
        rule=dict(raw["rule"]),
        readings=_readings(raw["faithfulness"]),
        ablations=tuple(
            Ablation(
                a["position"],
                a["replacement"],
                a["token"],
                a["attribute"],
                tuple(AblationGroup(**g) for g in a["groups"]),
                a["p_value"],
                a["q_value"],
                a["active"],
            )
            for a in raw["ablations"]
        ),
        ablation_positions=tuple(raw["ablation_positions"]),
        skipped_positions=tuple(raw["skipped_positions"]),
        min_agreement=raw["min_agreement"],
        ablation_test=raw["ablation_test"],
    )


def _readings(raw: list[dict[str, Any]]) -> tuple[Reading, ...]:
    """One Reading per group of methods that read the same tokens (the JSON lists each method)."""
    seen: dict[tuple[str, ...], Reading] = {}
    for r in raw:
        methods = tuple(r["methods"])
        if methods not in seen:
            seen[methods] = Reading(
                methods,
                r["text"],
                r["agreement"],
                r["kl"],
                r["accuracy"],
                r["faithful"],
                _attributes(r["attributes"]),
            )
    return tuple(seen.values())


def result_from_dict(data: dict[str, Any]) -> AuditResult:
    inputs, config, summary, method = data["inputs"], data["config"], data["summary"], data["methodology"]
    prompt = inputs["prompt"]
    return AuditResult(
        tool_version=data["tool"]["version"],
        prompt=PromptInfo(
            path=prompt["path"],
            sha256=prompt["sha256"],
            format=prompt["format"],
            n_tokens=prompt["n_tokens"],
            dim=prompt["dim"],
            peft_type=prompt.get("peft_type"),
            segments=tuple((s["name"], s["start"], s["stop"]) for s in prompt["segments"]),
        ),
        model=ModelInfo(**inputs["model"]),
        wordlists=tuple(WordlistInfo(**w) for w in inputs["wordlists"]),
        wordlist_bundle=inputs["wordlist_bundle"],
        reference_text=inputs["reference_text"],
        methods=tuple(config["methods"]),
        agreement_methods=tuple(config["agreement_methods"]),
        top_k=config["top_k"],
        centered_components=config["centered_components"],
        languages=tuple(config["languages"]),
        seed=config["seed"],
        fail_on=config["fail_on"],
        positions=tuple(_position(p) for p in data["positions"]),
        projected_text=dict(data["projected_text"]),
        waywardness=data["waywardness"],
        summary=Summary(
            risk=Level.parse(summary["risk"]),
            n_flags=summary["n_flags"],
            n_suppressed=summary["n_suppressed"],
            flags_by_category=dict(summary["flags_by_category"]),
            flags_by_severity={
                s.label: summary["flags_by_severity"][s.label] for s in sorted(Level, reverse=True)
            },
            mean_agreement=summary["mean_agreement"],
            verdict=dict(summary["verdicts"]),
        ),
        coverage=tuple(
            CoverageRow(
                r["language"], r["category"], r["n_terms"], r["n_covered"], tuple(r["missing"]), r["low"]
            )
            for r in data["coverage"]
        ),
        notes=tuple(data["notes"]),
        methodology=Methodology(
            methods=tuple(
                MethodInfo(m["name"], m["summary"], dict(m["description"])) for m in method["methods"]
            ),
            risk_rule=dict(method["risk_rule"]),
            null_model=dict(method["null_model"]),
            null_size=method["null_size"],
        ),
        category_labels={k: dict(v) for k, v in method["category_labels"].items()},
        behaviour=behaviour_from_dict(data["behaviour"]) if "behaviour" in data else None,
    )
