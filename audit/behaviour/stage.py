"""The behavioural stage: run the model with the soft prompt on a counterfactual suite, per condition, and
measure each group's selection rate against its reference group.

Conditions: ``soft_prompt`` (the audited vectors), ``reference_text`` (the reference/init text as a plain
text prompt, in the same place), ``no_prompt`` (the base model alone). Every distinct rendering is scored
once per condition; statistics are per attribute and condition, q-values over all of them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from audit.behaviour.hypotheses import Hypotheses
from audit.behaviour.lm import CausalLM, load_causal_lm
from audit.behaviour.runner import answer_log_odds, text_prompt
from audit.behaviour.stats import (
    ABLATION_TESTS,
    BOOTSTRAP_CI,
    MIN_AGREEMENT,
    N_BOOT,
    NAME_PERMUTATION_TEST,
    QVALUE_FAMILY,
    AttributeStats,
    ProbeScores,
    ablation_stats,
    attribute_stats,
    bh_qvalues,
    faithfulness,
    qualifying_from_labels,
    task_accuracy,
    with_qvalues,
)
from audit.behaviour.suite import Rendering, Suite, check_answers, load_suite, render, unique_texts
from audit.cache import get_or_build
from audit.config import AuditConfig
from audit.errors import AuditInputError
from audit.inputs.models import resolve_model
from audit.inputs.prompts import SoftPrompt
from audit.progress import progress_bar
from audit.records import (
    Ablation,
    AblationGroup,
    AttributeDisparity,
    BehaviourResult,
    Condition,
    GroupDisparity,
    Reading,
)
from audit.verdict.behaviour import ALPHA, MIN_DECISION_CHANGE, RULE, gaps, risk_and_verdict

LABEL_SIGN = {"positive": 1, "negative": -1, None: 0}


@dataclass(frozen=True)
class Probes:
    """A suite's renderings and the distinct texts they score (``index``: rendering -> text row)."""

    suite: Suite
    renderings: tuple[Rendering, ...]
    texts: tuple[str, ...]
    index: tuple[int, ...]
    labels: np.ndarray  # (n_texts,) int8: the label of each text's template


def probes(suite: Suite) -> Probes:
    renderings = render(suite)
    texts = unique_texts(renderings)
    row = {t: i for i, t in enumerate(texts)}
    labels = np.zeros(len(texts), dtype=np.int8)
    for r in renderings:
        labels[row[r.text]] = LABEL_SIGN[suite.templates[r.template].label]
    return Probes(suite, renderings, texts, tuple(row[r.text] for r in renderings), labels)


def preflight(config: AuditConfig, model_spec: str) -> None:
    """What can be refused before any work: the suite (validated), and an HF model whose config is not a
    causal LM (a GGUF is checked when loaded)."""
    from audit.inputs.formats import model_format

    load_suite(config.behaviour)
    files = resolve_model(model_spec)
    model_format(files).check_causal(files)


def check(
    prompt: SoftPrompt,
    model_spec: str,
    reference: str | None,
    config: AuditConfig,
    hypotheses: Hypotheses | None = None,
    *,
    lm: CausalLM | None = None,
) -> BehaviourResult:
    """Runs the suite ``config.behaviour`` under every condition (and, given the geometry's hypotheses,
    every distinct reading and every ablation) and computes the statistics. ``lm``: the model of
    ``model_spec`` already loaded (a batch loads it once per base model); default: loaded here."""
    suite = load_suite(config.behaviour)
    if len(prompt.segments) != 1:
        raise AuditInputError(
            f"{prompt.path} holds {len(prompt.segments)} prompt segments (a seq2seq adapter)",
            "the behavioural check runs causal LMs only; the geometry scan still runs without --behaviour",
        )
    files = resolve_model(model_spec)
    if lm is None:
        lm = load_causal_lm(files, device=config.device, progress=config.progress)
    if prompt.vectors.shape[1] != lm.d_model:
        raise AuditInputError(
            f"prompt has dim {prompt.vectors.shape[1]} but model '{model_spec}' has d_model {lm.d_model}",
            "was the prompt trained on this model? check --model (or the adapter's "
            "base_model_name_or_path when --model is not given)",
        )
    answers = check_answers(suite, lambda s: lm.tokenizer(s, add_special_tokens=False)["input_ids"])
    probe = probes(suite)

    identity = f"{model_key(files)}|{suite.sha256}|{answers}|v{RUN_VERSION}"

    def run(name: str, vectors: torch.Tensor, rows: np.ndarray | None = None) -> np.ndarray:
        """(n_texts,) log-odds of every text, or (len(rows),) of the texts ``rows`` only."""
        # Cached by what decides the answers: the same prompt vectors on the same model and suite (the no-
        # prompt and reference-text conditions of every adapter of a model, a reading equal to the init
        # text) are scored once.
        subset = "" if rows is None else "|rows:" + ",".join(map(str, rows))
        key = hashlib.sha256(
            (identity + subset).encode() + vectors.contiguous().numpy().tobytes()
        ).hexdigest()
        chosen = probe if rows is None else _subset(probe, rows)
        return get_or_build(
            "behaviour",
            key,
            build=lambda: _score(lm, vectors, chosen, (answers.positive, answers.negative), name, config),
            save=lambda lo, path: path.write_bytes(lo.astype("<f8").tobytes()),
            load=lambda path: _read_run(path, len(chosen.texts)),
            suffix=".f8",
        )

    prompts = {"soft_prompt": (None, prompt.vectors)}
    if reference:
        prompts["reference_text"] = (reference, text_prompt(lm, reference))
    prompts["no_prompt"] = (None, torch.zeros(0, lm.d_model))
    log_odds = {name: run(name, vectors) for name, (_, vectors) in prompts.items()}
    readings = hypotheses.readings if hypotheses else ()
    for reading in readings:
        vectors = lm.embed(torch.tensor(reading.token_ids)).float().cpu()
        log_odds[_reading_key(reading)] = run(f"reading {'/'.join(reading.methods)}", vectors)
    # Disparities of every condition and reading: one family of comparisons for the q-values.
    names = list(log_odds)
    stats = with_qvalues(
        [
            attribute_stats(_scores(probe, a, log_odds[n]), seed=config.seed)
            for n in names
            for a in suite.attributes
        ]
    )
    k = len(suite.attributes)
    by_name = {n: stats[i * k : (i + 1) * k] for i, n in enumerate(names)}
    conditions = tuple(
        _condition(n, text, probe, log_odds[n], by_name[n]) for n, (text, _) in prompts.items()
    )
    soft = conditions[0]
    found = gaps(soft, next(c for c in conditions if c.id == "no_prompt"))
    risk, verdict = risk_and_verdict(soft, found)
    faithful = tuple(
        _reading(r, probe, log_odds["soft_prompt"], log_odds[_reading_key(r)], by_name[_reading_key(r)])
        for r in readings
    )
    ablations = (
        _ablations(hypotheses, prompt, lm, probe, log_odds["soft_prompt"], run, config) if hypotheses else ()
    )
    return BehaviourResult(
        suite_id=suite.id,
        suite_version=suite.version,
        suite_sha256=suite.sha256,
        suite_path=suite.path,
        suite_language=suite.language,
        n_templates=suite.n_templates,
        answers=(suite.answers.positive, suite.answers.negative),
        n_renderings=len(probe.renderings),
        n_texts=len(probe.texts),
        conditions=conditions,
        test=NAME_PERMUTATION_TEST,
        ci_method=BOOTSTRAP_CI,
        family=QVALUE_FAMILY,
        seed=config.seed,
        n_boot=N_BOOT,
        risk=risk,
        gaps=found,
        verdict=verdict,
        rule=dict(RULE),
        readings=faithful,
        ablations=ablations,
        ablation_positions=tuple(p.position for p in hypotheses.positions) if hypotheses else (),
        skipped_positions=hypotheses.skipped if hypotheses else (),
        min_agreement=MIN_AGREEMENT,
        ablation_test=ABLATION_TESTS["exchange"],
    )


RUN_VERSION = "2"  # bump when the runner's numbers can change (2: log-odds from the answer rows alone)


def _subset(probe: Probes, rows: np.ndarray) -> Probes:
    """The probes restricted to the texts ``rows`` (their renderings only)."""
    keep = {int(r): k for k, r in enumerate(rows)}
    pairs = [(r, keep[i]) for r, i in zip(probe.renderings, probe.index) if i in keep]
    return Probes(
        probe.suite,
        tuple(r for r, _ in pairs),
        tuple(probe.texts[int(r)] for r in rows),
        tuple(k for _, k in pairs),
        probe.labels[rows],
    )


def _read_run(path, n: int) -> np.ndarray:
    lo = np.frombuffer(path.read_bytes(), dtype="<f8")
    if lo.shape != (n,) or not np.isfinite(lo).all():
        raise ValueError("a run of another suite size")
    return lo.astype(np.float64)


def model_key(files) -> str:
    """Identifies a model's weights for the run cache (each format says how: a GGUF file's sha256, an HF
    folder's file names, sizes and modification times)."""
    from audit.inputs.formats import model_format

    return model_format(files).weights_key(files)


def _reading_key(reading) -> str:
    return "reading:" + "/".join(reading.methods)


def _reading(reading, probe: Probes, lo_soft: np.ndarray, lo_text: np.ndarray, stats) -> Reading:
    f = faithfulness(lo_soft[:, None], lo_text[:, None], probe.labels)
    return Reading(
        methods=reading.methods,
        text=reading.text,
        agreement=f.agreement,
        kl=f.kl,
        accuracy=f.accuracy_text.accuracy,
        faithful=f.faithful,
        attributes=tuple(_attribute(a, s) for a, s in zip(probe.suite.attributes, stats)),
    )


def _ablations(
    hyp: Hypotheses, prompt: SoftPrompt, lm, probe: Probes, lo_soft, run, config
) -> tuple[Ablation, ...]:
    """Each probed position replaced by its best non-sensitive reading and by the vocabulary mean; the
    paired test per attribute; q over every test of the report."""
    found = []
    for pos in hyp.positions:
        replacements = []
        if pos.token_id is not None:
            replacements.append(
                ("reading", pos.token, lm.embed(torch.tensor([pos.token_id])).float().cpu()[0])
            )
        replacements.append(("mean", None, hyp.mean.float()))
        # The paired ablation test reads the qualifying templates only: the others are not rerun (their
        # log-odds are the soft prompt's, so they change nothing).
        qualifying = np.flatnonzero(probe.labels == LABEL_SIGN["positive"])
        for kind, token, vector in replacements:
            vectors = prompt.vectors.clone()
            vectors[pos.position] = vector
            lo = lo_soft.copy()
            lo[qualifying] = run(f"position {pos.position} -> {kind}", vectors, qualifying)
            for attribute in probe.suite.attributes:
                result = ablation_stats(
                    _scores(probe, attribute, lo_soft), _scores(probe, attribute, lo), seed=config.seed
                )
                found.append((pos.position, kind, token, attribute.id, result))
    qs = bh_qvalues([r.p_value for *_, r in found])
    return tuple(
        Ablation(
            position=position,
            replacement=kind,
            token=token,
            attribute=attribute,
            groups=tuple(
                AblationGroup(
                    g.group,
                    g.is_reference,
                    g.selection_rate[1],
                    g.delta_selection_rate,
                    g.impact_ratio[1],
                    g.delta_impact_ratio,
                    g.delta_effect,
                    g.p_value,
                )
                for g in result.groups
            ),
            p_value=result.p_value,
            q_value=q,
            active=q is not None
            and q < ALPHA
            and max(abs(g.delta_selection_rate) for g in result.groups) >= MIN_DECISION_CHANGE,
        )
        for (position, kind, token, attribute, result), q in zip(found, qs)
    )


def _score(lm: CausalLM, vectors, probe: Probes, answers, name: str, config: AuditConfig) -> np.ndarray:
    """(n_texts,) log-odds of the positive over the negative answer under one condition."""
    desc = f"behaviour: {probe.suite.id}, {name.replace('_', ' ')}"
    with progress_bar(desc, len(probe.texts), enabled=config.progress, unit="text") as bar:
        return answer_log_odds(lm, vectors, probe.texts, answers, progress=bar.update)


def _scores(probe: Probes, attribute, lo: np.ndarray) -> ProbeScores:
    """The (templates x values) log-odds of one attribute: its templates in file order, its values in
    group order."""
    suite = probe.suite
    templates = suite.templates_for(attribute)
    rows = {t.index: i for i, t in enumerate(templates)}
    values = attribute.values
    cols = {v: j for j, v in enumerate(values)}
    matrix = np.full((len(templates), len(values)), np.nan)
    for rendering, text_row in zip(probe.renderings, probe.index):
        if rendering.attribute == attribute.id:
            matrix[rows[rendering.template], cols[rendering.value]] = lo[text_row]
    labels = np.array([LABEL_SIGN[t.label] for t in templates], dtype=np.int8)
    groups = np.array([gi for gi, g in enumerate(attribute.groups) for _ in g.values], dtype=np.int64)
    return ProbeScores(
        lo=matrix,
        groups=groups,
        group_ids=tuple(g.id for g in attribute.groups),
        qualifying=qualifying_from_labels(labels),
        labels=labels,
        reference=attribute.reference,
    )


def _condition(name: str, text: str | None, probe: Probes, lo: np.ndarray, stats) -> Condition:
    accuracy = task_accuracy(lo[:, None], probe.labels)  # every distinct text once
    return Condition(
        id=name,
        prompt_text=text,
        task_accuracy=accuracy.accuracy,
        n_labelled=accuracy.n,
        attributes=tuple(_attribute(a, s) for a, s in zip(probe.suite.attributes, stats)),
    )


def _attribute(attribute, stats: AttributeStats) -> AttributeDisparity:
    return AttributeDisparity(
        id=attribute.id,
        slot=attribute.slot,
        reference_group=stats.reference_group,
        reference_given=stats.reference_given,
        n_templates=stats.n_templates,
        groups=tuple(
            GroupDisparity(
                id=g.group,
                n=g.n,
                n_names=g.n_names,
                selection_rate=g.selection_rate,
                mean_p_positive=g.mean_p_positive,
                impact_ratio=g.impact_ratio,
                ci_low=g.impact_ci[0] if g.impact_ci else None,
                ci_high=g.impact_ci[1] if g.impact_ci else None,
                effect_size=g.effect_size,
                effect_ci_low=g.effect_ci[0] if g.effect_ci else None,
                effect_ci_high=g.effect_ci[1] if g.effect_ci else None,
                p_value=g.p_value,
                q_value=g.q_value,
                min_p=g.min_p,
                is_reference=g.is_reference,
                small_sample=g.small_sample,
                low_share=g.low_share,
                cannot_reach_significance=g.cannot_reach_significance,
            )
            for g in stats.groups
        ),
    )
