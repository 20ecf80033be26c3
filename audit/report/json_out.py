"""The JSON contract (schema_version "1"): keys sorted, floats rounded once, byte-identical output.

:mod:`audit.report.load` reads it back into the same records (``prompt-audit render``)."""

from __future__ import annotations

import json
import math
from typing import Any

from audit.records import AuditResult, BehaviourResult, Condition, Flag, PositionResult
from audit.report.overview import Reason, checked, reasons

SCHEMA_VERSION = "1"
DECIMALS = 6


def _num(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if math.isinf(value):
        return None
    rounded = round(float(value), DECIMALS)
    return 0.0 if rounded == 0 else rounded  # no "-0.0"


def flag_dict(flag: Flag) -> dict[str, Any]:
    hit, term, evidence = flag.hit, flag.term, flag.evidence
    return {
        "method": hit.method,
        "rank": hit.rank,
        "token_id": hit.token_id,
        "token": hit.token,
        "term_id": term.id,
        "term": term.lemma,
        "category": term.category,
        "language": term.language,
        "score": _num(hit.score),
        "gap_to_top1": _num(hit.gap_to_top1),
        "is_top1": hit.is_top1,
        "word_start": hit.word_start,
        "partial": hit.partial,
        "policy": term.policy,
        "term_severity": term.severity.label,
        "p_value": _num(evidence.p_value),
        "q_value": _num(evidence.q_value),
        "null_hits": evidence.null_hits,
        "severity": flag.severity.label,
        "suppressed": hit.suppressed,
    }


def position_dict(pos: PositionResult) -> dict[str, Any]:
    return {
        "index": pos.index,
        "segment": pos.segment,
        "projections": {
            m: {"token_id": p.token_id, "token": p.token, "score": _num(p.score), "margin": _num(p.margin)}
            for m, p in pos.projections.items()
        },
        "neighbors": {
            m: [
                {"rank": n.rank, "token_id": n.token_id, "token": n.token, "score": _num(n.score)}
                for n in nbs
            ]
            for m, nbs in pos.neighbors.items()
        },
        "agreement": _num(pos.agreement),
        "topk_jaccard": _num(pos.jaccard),
        "off_manifold": _num(pos.off_manifold),
        "norm_ratio": _num(pos.norm_ratio),
        "norm_percentile": _num(pos.norm_percentile),
        "drift": _num(pos.drift),
        "risk": pos.risk.label,
        "flags": [flag_dict(f) for f in pos.flags],
        "suppressed": [flag_dict(f) for f in pos.suppressed],
        "map": [
            {
                "token_id": p.token_id,
                "token": p.token,
                "x": _num(p.x),
                "y": _num(p.y),
                "sensitive": p.sensitive,
            }
            for p in pos.map_points
        ],
    }


def _group(g) -> dict[str, Any]:
    return {
        "id": g.id,
        "n": g.n,
        "n_names": g.n_names,
        "selection_rate": _num(g.selection_rate),
        "mean_p_positive": _num(g.mean_p_positive),
        "impact_ratio": _num(g.impact_ratio),
        "ci_low": _num(g.ci_low),
        "ci_high": _num(g.ci_high),
        "effect_size": _num(g.effect_size),
        "effect_ci_low": _num(g.effect_ci_low),
        "effect_ci_high": _num(g.effect_ci_high),
        "p_value": _num(g.p_value),
        "q_value": _num(g.q_value),
        "min_p": _num(g.min_p),
        "is_reference": g.is_reference,
        "small_sample": g.small_sample,
        "low_share": g.low_share,
        "cannot_reach_significance": g.cannot_reach_significance,
    }


def _attribute(a) -> dict[str, Any]:
    return {
        "id": a.id,
        "slot": a.slot,
        "reference_group": a.reference_group,
        "reference_given": a.reference_given,
        "n_templates": a.n_templates,
        "groups": [_group(g) for g in a.groups],
    }


def _attributes(condition: Condition) -> list[dict[str, Any]]:
    return [_attribute(a) for a in condition.attributes]


def behaviour_dict(b: BehaviourResult) -> dict[str, Any]:
    """The ``behaviour`` object: suite, conditions, the soft prompt's attributes and accuracy, the rule."""
    return {
        "suite": {
            "id": b.suite_id,
            "version": b.suite_version,
            "sha256": b.suite_sha256,
            "n_templates": b.n_templates,
            "path": b.suite_path,
            "language": b.suite_language,
            "answers": {"positive": b.answers[0], "negative": b.answers[1]},
        },
        "n_renderings": b.n_renderings,
        "n_texts": b.n_texts,
        "conditions": [
            {
                "id": c.id,
                "prompt_text": c.prompt_text,
                "task_accuracy": _num(c.task_accuracy),
                "n_labelled": c.n_labelled,
                "attributes": _attributes(c),
            }
            for c in b.conditions
        ],
        "attributes": _attributes(b.soft),
        "task_accuracy": _num(b.soft.task_accuracy),
        "test": b.test,
        "ci_method": b.ci_method,
        "family": b.family,
        "seed": b.seed,
        "n_boot": b.n_boot,
        "risk": b.risk.label,
        "gaps": [
            {
                "attribute": g.attribute,
                "group": g.group,
                "reference_group": g.reference_group,
                "impact_ratio": _num(g.impact_ratio),
                "q_value": _num(g.q_value),
                "in_base_model": g.in_base_model,
            }
            for g in b.gaps
        ],
        "verdict": dict(b.verdict),
        "rule": dict(b.rule),
        "faithfulness": [
            {
                "method": method,
                "methods": list(r.methods),
                "text": r.text,
                "agreement": _num(r.agreement),
                "kl": _num(r.kl),
                "accuracy": _num(r.accuracy),
                "faithful": r.faithful,
                "attributes": [_attribute(a) for a in r.attributes],
            }
            for r in b.readings
            for method in r.methods
        ],
        "min_agreement": _num(b.min_agreement),
        "ablations": [
            {
                "position": a.position,
                "replacement": a.replacement,
                "token": a.token,
                "attribute": a.attribute,
                "groups": [
                    {
                        "id": g.id,
                        "is_reference": g.is_reference,
                        "selection_rate": _num(g.selection_rate),
                        "delta_selection_rate": _num(g.delta_selection_rate),
                        "impact_ratio": _num(g.impact_ratio),
                        "delta_impact_ratio": _num(g.delta_impact_ratio),
                        "delta_effect": _num(g.delta_effect),
                        "p_value": _num(g.p_value),
                    }
                    for g in a.groups
                ],
                "p_value": _num(a.p_value),
                "q_value": _num(a.q_value),
                "active": a.active,
            }
            for a in b.ablations
        ],
        "ablation_positions": list(b.ablation_positions),
        "skipped_positions": list(b.skipped_positions),
        "ablation_test": b.ablation_test,
    }


def checked_dict(result: AuditResult) -> dict[str, Any]:
    """``checked``: what the audit looked for (a LOW risk holds for these checks only)."""
    c = checked(result)
    return {
        "languages": list(c.languages),
        "methods": list(c.methods),
        "top_k": c.top_k,
        "n_wordlists": c.n_wordlists,
        "n_terms": c.n_terms,
        "categories": c.categories,
        "low_coverage": [
            {"language": lang, "category": cat, "share": _num(share)} for lang, cat, share in c.low_coverage
        ],
        "suite": {"id": c.suite[0], "version": c.suite[1], "n_templates": c.suite[2]} if c.suite else None,
    }


def reason_dict(reason: Reason) -> dict[str, Any]:
    """One entry of ``summary.reasons``: the clause of the rule that fired, and where."""
    out: dict[str, Any] = {"risk": reason.risk.label, "clause": reason.clause}
    if reason.position is not None:
        out["position"] = reason.position
    if reason.flag is not None:
        flag = reason.flag
        out.update(
            token_id=flag.hit.token_id,
            token=flag.hit.token,
            term_id=flag.term.id,
            term=flag.term.lemma,
            category=flag.term.category,
            language=flag.term.language,
            severity=flag.severity.label,
            ranks=[{"method": m, "rank": r} for m, r in reason.ranks],
        )
    if reason.gap is not None:
        attribute, group, reference, ratio, q = reason.gap
        out.update(
            attribute=attribute,
            group=group,
            reference_group=reference,
            impact_ratio=_num(ratio),
            q_value=_num(q),
        )
    return out


def result_dict(result: AuditResult) -> dict[str, Any]:
    prompt, model, summary = result.prompt, result.model, result.summary
    prompt_info: dict[str, Any] = {
        "path": prompt.path,
        "sha256": prompt.sha256,
        "format": prompt.format,
        "n_tokens": prompt.n_tokens,
        "dim": prompt.dim,
        "segments": [{"name": n, "start": a, "stop": b} for n, a, b in prompt.segments],
    }
    if prompt.peft_type:
        prompt_info["peft_type"] = prompt.peft_type
    return {
        "schema_version": SCHEMA_VERSION,
        "checked": checked_dict(result),
        "tool": {"name": "prompt-audit", "version": result.tool_version},
        "inputs": {
            "prompt": prompt_info,
            "model": {
                "spec": model.spec,
                "model_type": model.model_type,
                "vocab_size": model.vocab_size,
                "dim": model.dim,
                "embed_scale": _num(model.embed_scale),
                "tied": model.tied,
                "sha256": model.sha256,
                "n_rankable": model.n_rankable,
            },
            "wordlists": [
                {
                    "id": w.id,
                    "version": w.version,
                    "language": w.language,
                    "category": w.category,
                    "sha256": w.sha256,
                    "n_terms": w.n_terms,
                    "coverage": _num(w.coverage),
                    "origin": w.origin,
                }
                for w in result.wordlists
            ],
            "wordlist_bundle": result.wordlist_bundle,
            "reference_text": result.reference_text,
        },
        "config": {
            "methods": list(result.methods),
            "agreement_methods": list(result.agreement_methods),
            "top_k": result.top_k,
            "centered_components": result.centered_components,
            "languages": list(result.languages),
            "seed": result.seed,
            "fail_on": result.fail_on,
        },
        "positions": [position_dict(p) for p in result.positions],
        "projected_text": dict(result.projected_text),
        "waywardness": (
            {m: {k: _num(v) for k, v in d.items()} for m, d in result.waywardness.items()}
            if result.waywardness is not None
            else None
        ),
        "coverage": [
            {
                "language": r.language,
                "category": r.category,
                "n_terms": r.n_terms,
                "n_covered": r.n_covered,
                "share": _num(r.share),
                "low": r.low,
                "missing": list(r.missing),
            }
            for r in result.coverage
        ],
        "notes": list(result.notes),
        **({"behaviour": behaviour_dict(result.behaviour)} if result.behaviour else {}),
        "methodology": {
            "methods": [
                {"name": m.name, "summary": m.summary, "description": dict(m.description)}
                for m in result.methodology.methods
            ],
            "risk_rule": dict(result.methodology.risk_rule),
            "null_model": dict(result.methodology.null_model),
            "null_size": result.methodology.null_size,
            "category_labels": {k: dict(v) for k, v in result.category_labels.items()},
        },
        "summary": {
            "risk": summary.risk.label,
            "verdict": summary.verdict["en"],
            "verdicts": dict(summary.verdict),
            "n_flags": summary.n_flags,
            "n_suppressed": summary.n_suppressed,
            "flags_by_category": dict(summary.flags_by_category),
            "flags_by_severity": dict(summary.flags_by_severity),
            "mean_agreement": _num(summary.mean_agreement),
            "reasons": [reason_dict(r) for r in reasons(result)],
        },
    }


def render_json(result: AuditResult) -> str:
    return json.dumps(result_dict(result), sort_keys=True, ensure_ascii=False, indent=2) + "\n"
