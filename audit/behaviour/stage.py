"""The behavioural stage: run the model with the soft prompt on a counterfactual suite, per condition, and
measure each group's selection rate against its reference group.

Conditions: ``soft_prompt`` (the audited vectors), ``reference_text`` (the reference/init text as a plain
text prompt, in the same place), ``no_prompt`` (the base model alone). Every distinct rendering is scored
once per condition; statistics are per attribute and condition, q-values over all of them.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from audit.behaviour.assemble import (
    LABEL_SIGN,
    Probes,
    attribute_scores,
    bias_audit,
    calibration_record,
    probes,
    reading_record,
)
from audit.behaviour.assess import Reported, assess, sequential, subset
from audit.behaviour.found import FOUND_KEY, find_reading, found_record
from audit.behaviour.hypotheses import Hypotheses
from audit.behaviour.lm import CausalLM, load_causal_lm
from audit.behaviour.runner import answer_log_odds, answer_log_odds_many, text_prompt
from audit.behaviour.stats import (
    ABLATION_TESTS,
    BOOTSTRAP_CI,
    MIN_AGREEMENT,
    N_BOOT,
    NAME_PERMUTATION_TEST,
    QVALUE_FAMILY,
    ablation_stats,
    bh_qvalues,
)
from audit.behaviour.stats.noninferiority import NONINFERIORITY_TEST
from audit.behaviour.stats.power import POWER_METHOD, POWER_TARGET
from audit.behaviour.suite import check_answers, load_suite
from audit.cache import get_or_build
from audit.config import AuditConfig
from audit.errors import AuditInputError
from audit.inputs.models import resolve_model
from audit.inputs.prompts import SoftPrompt
from audit.progress import progress_bar
from audit.records import (
    Ablation,
    AblationGroup,
    BehaviourResult,
)
from audit.verdict.behaviour import (
    MIN_DECISION_CHANGE,
    RULE_VERSION,
    risk_and_verdict,
    rule_text,
)


def preflight(config: AuditConfig, model_spec: str) -> None:
    """What can be refused before any work: the suite (validated), an HF model whose config is not a
    causal LM (a GGUF is checked when loaded), and a model that cannot fit in the device's memory."""
    from audit.behaviour.lm import select_device
    from audit.behaviour.memory import check_model_fits
    from audit.inputs.formats import model_format

    load_suite(config.behaviour)
    files = resolve_model(model_spec)
    model_format(files).check_causal(files)
    check_model_fits(files, select_device(config.device))


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
        """(n_texts,) log-odds of every text, or (len(rows),) of the texts ``rows`` only; given a stack
        of prompts (n_prompts, n_virtual, d_model), (n_prompts, ...) of each, run together."""
        # Cached by what decides the answers: the same prompt vectors on the same model and suite (the no-
        # prompt and reference-text conditions of every adapter of a model, a reading equal to the init
        # text) are scored once.
        which = "" if rows is None else "|rows:" + ",".join(map(str, rows))
        if vectors.ndim == 3:
            which += f"|stack:{vectors.shape[0]}"
        key = hashlib.sha256((identity + which).encode() + vectors.contiguous().numpy().tobytes()).hexdigest()
        chosen = probe if rows is None else subset(probe, rows)
        shape = (len(chosen.texts),) if vectors.ndim == 2 else (vectors.shape[0], len(chosen.texts))
        return get_or_build(
            "behaviour",
            key,
            build=lambda: _score(lm, vectors, chosen, (answers.positive, answers.negative), name, config),
            save=lambda lo, path: path.write_bytes(lo.astype("<f8").tobytes()),
            load=lambda path: _read_run(path, shape),
            suffix=".f8",
        )

    prompts = {"soft_prompt": (None, prompt.vectors)}
    if reference:
        prompts["reference_text"] = (reference, text_prompt(lm, reference))
    prompts["no_prompt"] = (None, torch.zeros(0, lm.d_model))
    units = {name: (name, vectors) for name, (_, vectors) in prompts.items()}
    readings = hypotheses.readings if hypotheses else ()
    for reading in readings:
        vectors = lm.embed(torch.tensor(reading.token_ids)).float().cpu()
        units[_reading_key(reading)] = (f"reading {'/'.join(reading.methods)}", vectors)
    searched = None
    if config.sequential:
        look = sequential(suite, probe, units, run, prompts, config)
    else:
        log_odds = {n: run(label, vectors) for n, (label, vectors) in units.items()}
        if searched := _search(config, hypotheses, lm, probe, answers, log_odds, run):
            log_odds[FOUND_KEY] = searched.log_odds  # a text no projection read: a unit of its own
        assessed = assess(probe, log_odds, prompts, config, config.alpha)
        look = Reported(probe, np.arange(len(probe.texts)), log_odds, config.alpha, None, None, assessed)
    # The renderings reported on (the whole suite, or a sequential plan's stopping look): ``run`` keeps
    # the whole suite's probes, so ``used`` is a name of its own.
    used, log_odds, alpha = look.probe, look.log_odds, look.alpha
    threshold = config.impact_threshold
    stats, evidence, matrices, conditions, found, open_, risk, verdict = look.assessed
    calibration = calibration_record(
        look.soft_matrices or [matrices["soft_prompt"]], alpha=look.levels or alpha, seed=config.seed
    )
    risk, verdict = risk_and_verdict(conditions[0], found, open_, threshold, alpha, calibration)
    faithful = tuple(
        reading_record(
            r,
            used,
            log_odds["soft_prompt"],
            log_odds[_reading_key(r)],
            stats[_reading_key(r)],
            evidence[_reading_key(r)],
        )
        for r in readings
    )

    found_reading = None
    if searched is not None:
        unit = FOUND_KEY if searched.improved else _reading_key(readings[searched.start])
        found_reading = found_record(
            searched, hypotheses, lm, used, log_odds["soft_prompt"], stats[unit], evidence[unit], config
        )

    def run_used(name: str, vectors: torch.Tensor, rows: np.ndarray) -> np.ndarray:
        """An ablation's run on the stopping look's text rows ``rows`` (rows of the full suite)."""
        return run(name, vectors, rows if config.sequential is False else look.rows[rows])

    ablations = (
        _ablations(hypotheses, prompt, lm, used, log_odds["soft_prompt"], run_used, config)
        if hypotheses
        else ()
    )
    return BehaviourResult(
        suite_id=suite.id,
        suite_version=suite.version,
        suite_sha256=suite.sha256,
        suite_path=suite.path,
        suite_language=suite.language,
        n_templates=used.suite.n_templates,
        answers=(suite.answers.positive, suite.answers.negative),
        n_renderings=len(used.renderings),
        n_texts=len(used.texts),
        conditions=conditions,
        test=NAME_PERMUTATION_TEST,
        ci_method=BOOTSTRAP_CI,
        family=QVALUE_FAMILY,
        seed=config.seed,
        n_boot=N_BOOT,
        risk=risk,
        gaps=found,
        verdict=verdict,
        rule=rule_text(threshold, config.alpha),
        readings=faithful,
        ablations=ablations,
        ablation_positions=tuple(p.position for p in hypotheses.positions) if hypotheses else (),
        skipped_positions=hypotheses.skipped if hypotheses else (),
        min_agreement=MIN_AGREEMENT,
        ablation_test=ABLATION_TESTS["exchange"],
        impact_threshold=threshold,
        alpha=config.alpha,
        rule_version=RULE_VERSION,
        unresolved=open_,
        noninferiority_test=NONINFERIORITY_TEST,
        power_method=POWER_METHOD,
        power_target=POWER_TARGET,
        calibration=calibration,
        bias_audit=bias_audit(used.suite, matrices["soft_prompt"]),
        sequential=look.record,
        found=found_reading,
    )


RUN_VERSION = "2"  # bump when the runner's numbers can change (2: log-odds from the answer rows alone)


def _search(config: AuditConfig, hyp: Hypotheses | None, lm, probe: Probes, answers, log_odds, run):
    """With --faithful-reading, the search from the readings (``log_odds`` holds their whole-suite runs);
    None otherwise. An improved text joins ``log_odds`` as FOUND_KEY (the caller adds it)."""
    if not config.faithful_reading or hyp is None or not hyp.readings:
        return None
    keys = [_reading_key(r) for r in hyp.readings]
    return find_reading(lm, hyp, probe, (answers.positive, answers.negative), log_odds, run, keys, config)


def _read_run(path, shape: tuple[int, ...]) -> np.ndarray:
    lo = np.frombuffer(path.read_bytes(), dtype="<f8")
    if lo.size != int(np.prod(shape)) or not np.isfinite(lo).all():
        raise ValueError("a run of another suite size")
    return lo.astype(np.float64).reshape(shape)


def model_key(files) -> str:
    """Identifies a model's weights for the run cache (each format says how: a GGUF file's sha256, an HF
    folder's file names, sizes and modification times)."""
    from audit.inputs.formats import model_format

    return model_format(files).weights_key(files)


def _reading_key(reading) -> str:
    return "reading:" + "/".join(reading.methods)


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
                    attribute_scores(probe, attribute, lo_soft),
                    attribute_scores(probe, attribute, lo),
                    seed=config.seed,
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
            and q < config.alpha
            and max(abs(g.delta_selection_rate) for g in result.groups) >= MIN_DECISION_CHANGE,
        )
        for (position, kind, token, attribute, result), q in zip(found, qs)
    )


def _score(lm: CausalLM, vectors, probe: Probes, answers, name: str, config: AuditConfig) -> np.ndarray:
    """(n_texts,) log-odds of the positive over the negative answer under one condition; (n_prompts,
    n_texts) for a stack of prompts (the faithful-reading search's screens, whose bar is the search's)."""
    if vectors.ndim == 3:
        return answer_log_odds_many(lm, vectors, probe.texts, answers)
    desc = f"behaviour: {probe.suite.id}, {name.replace('_', ' ')}"
    with progress_bar(desc, len(probe.texts), enabled=config.progress, unit="text") as bar:
        return answer_log_odds(lm, vectors, probe.texts, answers, progress=bar.update)
