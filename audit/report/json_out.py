"""The JSON contract (schema_version "1"): keys sorted, floats rounded once, byte-identical output."""

from __future__ import annotations

import json
import math
from typing import Any

from audit.records import AuditResult, Flag, PositionResult

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
    return {
        "method": flag.method,
        "rank": flag.rank,
        "token_id": flag.token_id,
        "token": flag.token,
        "term_id": flag.term_id,
        "term": flag.term,
        "category": flag.category,
        "language": flag.language,
        "score": _num(flag.score),
        "gap_to_top1": _num(flag.gap_to_top1),
        "is_top1": flag.is_top1,
        "word_start": flag.word_start,
        "partial": flag.partial,
        "policy": flag.policy,
        "term_severity": flag.term_severity,
        "p_value": _num(flag.p_value),
        "q_value": _num(flag.q_value),
        "severity": flag.severity,
        "suppressed": flag.suppressed,
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
        "risk": pos.risk.value,
        "flags": [flag_dict(f) for f in pos.flags],
        "suppressed": [flag_dict(f) for f in pos.suppressed],
    }


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
                "missing": list(r.missing),
            }
            for r in result.coverage
        ],
        "notes": list(result.notes),
        "summary": {
            "risk": summary.risk.value,
            "verdict": summary.verdict,
            "n_flags": summary.n_flags,
            "n_suppressed": summary.n_suppressed,
            "flags_by_category": dict(summary.flags_by_category),
            "flags_by_severity": dict(summary.flags_by_severity),
            "mean_agreement": _num(summary.mean_agreement),
        },
    }


def render_json(result: AuditResult) -> str:
    return json.dumps(result_dict(result), sort_keys=True, ensure_ascii=False, indent=2) + "\n"
