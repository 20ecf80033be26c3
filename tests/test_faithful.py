"""The faithful-reading search (--faithful-reading): what it finds on a model built to be read, that it
never reports less than the best projection, its sample, its ranking, its gradient, its budget and its
determinism, and the records, reports and errors around it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from audit.behaviour.faithful import (
    GRADIENT_TOP,
    SCREEN_TEMPLATES,
    Budget,
    key,
    ranked_swaps,
    screen_rows,
    search,
    stratified_sample,
)
from audit.behaviour.hypotheses import Hypotheses, ReadingProbe
from audit.behaviour.stage import check
from audit.config import AuditConfig
from audit.inputs.prompts import Segment, SoftPrompt
from tests.helpers import tiny_tokenizer
from tests.test_ablation import build_switch_model, write_suite

SWITCH = "w35"  # the token whose embedding carries the switch
DECOY = "w37"  # what the soft prompt's switch row projects to


def _switch_case(root: Path, **options):
    """The switch model of test_ablation with a switch token; a soft prompt whose row 1 is the decoy's
    embedding plus some of the switch direction: it projects to the decoy, yet behaves like the switch."""
    emb = build_switch_model(root / "model", switch=SWITCH)
    tok = tiny_tokenizer()
    row = emb[tok.convert_tokens_to_ids(DECOY)].clone()
    row[1] = 1.2
    vectors = torch.stack([torch.tensor([0, 0, 0, 0, 0, 1.0, 0, 1]), row])
    distance = ((emb[:, None, :] - vectors[None]) ** 2).sum(-1)  # (V, 2)
    nearest = tuple(int(i) for i in distance.argmin(0))
    rankable = np.ones(len(tok), dtype=bool)
    rankable[tok.all_special_ids] = False
    hyp = Hypotheses(
        readings=(ReadingProbe(("l2",), nearest, tok.decode(list(nearest))),),
        positions=(),
        skipped=(),
        mean=emb.mean(0),
        neighbours=tuple(tuple(int(i) for i in col) for col in distance.argsort(0)[:5].T),
        rankable=rankable,
    )
    prompt = SoftPrompt(vectors, root / "p.npy", "0" * 64, "npy", (Segment("prompt", 0, 2),))
    config = AuditConfig(
        behaviour=str(write_suite(root / "switch.toml")), progress=False, faithful_reading=True, **options
    )
    return prompt, str(root / "model"), config, hyp


@pytest.fixture(scope="module")
def switch(tmp_path_factory):
    prompt, model, config, hyp = _switch_case(tmp_path_factory.mktemp("faithful"))
    return check(prompt, model, None, config, hyp), (prompt, model, config, hyp)


def test_a_prompt_that_projects_elsewhere_is_read_back_as_the_token_it_behaves_like(switch):
    result, (_, _, _, hyp) = switch
    tok = tiny_tokenizer()
    assert tok.convert_ids_to_tokens(list(hyp.readings[0].token_ids))[1] == DECOY  # the projection lies
    (reading,) = result.readings
    assert reading.agreement == 0.5 and not reading.faithful  # group b is selected without the switch
    found = result.found
    assert SWITCH in found.tokens and found.agreement == 1.0 and found.faithful
    assert found.search.improved and found.search.start_methods == ("l2",)
    assert found.changes and all(c.token == SWITCH for c in found.changes)
    b = next(g for g in found.attributes[0].groups if g.id == "b")
    assert b.selection_rate == 0.0 and b.q_value is not None  # the found text's own disparity, in the family


def test_the_verdict_quotes_the_found_text(switch):
    result, _ = switch
    assert (
        "The text that behaves most like this prompt (100.0 % of decisions in agreement)"
        in result_verdict(result, "en")
    )
    assert "El texto que más se comporta como este prompt" in result_verdict(result, "es")


def result_verdict(result, lang):
    from audit.verdict.behaviour import combined

    return combined(result)[1][lang]


def test_reruns_are_identical_and_the_search_is_seeded(switch, tmp_path):
    from audit.report.codec import dumps, encode

    result, (prompt, model, config, hyp) = switch
    again = check(prompt, model, None, config, hyp)
    assert dumps(encode(again)) == dumps(encode(result))


def test_the_default_check_runs_no_search(switch, monkeypatch):
    import audit.behaviour.stage as stage

    _, (prompt, model, config, hyp) = switch
    monkeypatch.setattr(stage, "find_reading", lambda *a, **k: pytest.fail("searched with the option off"))
    off = check(prompt, model, None, replace(config, faithful_reading=False), hyp)
    assert off.found is None


def test_a_tiny_budget_is_respected_and_reported(tmp_path):
    prompt, model, config, hyp = _switch_case(tmp_path, faithful_budget=1.5)
    result = check(prompt, model, None, config, hyp)
    s = result.found.search
    n = result.n_texts
    assert s.texts_scored <= 1.5 * n and s.suite_runs == round(s.texts_scored / n, 4)
    # 0.5 suite runs (48 texts) buy no sample run of 64 texts: the best projection is reported
    assert s.stopped == "converged" and s.evaluated == 0 and not s.improved
    assert result.found.text == result.readings[0].text and result.found.agreement == 0.5


# ---------------------------------------------------------------------------------------------
# The search itself, on made-up scores


def test_the_search_never_returns_less_than_the_best_projection():
    """Every candidate looks better on the sample and is worse on the whole suite: the start is kept."""
    n = 400
    labels = np.where(np.arange(n) % 2 == 0, 1, -1).astype(np.int8)
    soft = np.where(np.arange(n) % 3 == 0, 2.0, -2.0)
    start_lo = soft.copy()
    start_lo[:100] *= -1  # 300 / 400 agree
    weak = soft * 0.5
    weak[100:250] *= -1  # the second projection agrees on 250

    def evaluate(ids, rows):
        if rows is None:
            lo = soft.copy()
            lo[:200] *= -1  # the candidate agrees on 200 / 400 over the whole suite
            return lo
        return start_lo[rows] if ids == (2, 3) else soft[rows]  # every swap is perfect on the sample

    def gradient(ids, rows):
        return torch.zeros(5, 2)

    out = search(
        [((0, 1), weak), ((2, 3), start_lo)],
        soft,
        labels,
        ((4,), (4,)),
        evaluate,
        gradient,
        torch.ones(5, dtype=torch.bool),
        budget=Budget(6.0),
        seed=0,
    )
    assert out.start == 1  # the best projection on the whole suite, not the first given
    assert not out.improved and out.token_ids == (2, 3) and np.array_equal(out.log_odds, start_lo)
    assert out.evaluated >= 1 and out.texts_scored <= 6 * n


def test_a_time_limit_stops_the_search_and_says_so():
    soft = np.linspace(-1, 1, 200)
    out = search(
        [((0,), soft.copy())],
        soft,
        np.ones(200, dtype=np.int8),
        ((1,),),
        lambda ids, rows: soft[rows] if rows is not None else soft,
        lambda ids, rows: torch.zeros(3, 1),
        torch.ones(3, dtype=torch.bool),
        budget=Budget(6.0, seconds=0.0),
        seed=0,
    )
    assert out.stopped == "time" and out.evaluated == 0


def test_the_key_counts_agreement_first_then_kl():
    soft = np.array([2.0, -1.0, 3.0])
    assert key(soft, np.array([1.0, -1.0, 3.0]))[0] == 3
    assert key(soft, np.array([1.0, -1.0, 3.0])) < key(soft, soft)  # same agreement, larger KL
    assert key(soft, np.array([-1.0, -1.0, 3.0])) < key(soft, np.array([9.0, -9.0, 9.0]))


def test_the_sample_is_stratified_by_label_and_decision_and_seeded():
    labels = np.array([1] * 60 + [-1] * 30 + [0] * 10, dtype=np.int8)
    soft = np.array([1.0] * 40 + [-1.0] * 20 + [1.0] * 10 + [-1.0] * 20 + [-1.0] * 10)
    rows = stratified_sample(labels, soft, 20, seed=3)
    # strata (label, decision): (+,+) 40, (+,-) 20, (-,+) 10, (-,-) 20, (0,-) 10 of 100 -> 8, 4, 2, 4, 2
    counts = {
        (lab, dec): int(np.sum((labels[rows] == lab) & ((soft[rows] > 0) == dec)))
        for lab, dec in ((1, True), (1, False), (-1, True), (-1, False), (0, False))
    }
    assert counts == {(1, True): 8, (1, False): 4, (-1, True): 2, (-1, False): 4, (0, False): 2}
    assert len(set(rows.tolist())) == 20 and np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, stratified_sample(labels, soft, 20, seed=3))
    assert not np.array_equal(rows, stratified_sample(labels, soft, 20, seed=4))
    assert len(stratified_sample(labels, soft, 500, seed=0)) == 100


def test_the_screen_texts_come_from_a_few_templates_of_each_label():
    """So that the runner shares each template's prefix: 16 templates (12 positive, 4 negative) of 10
    texts; the screen draws 48 of the sample's texts from 4 seeded templates of each label."""
    templates = np.repeat(np.arange(16), 10)
    labels = np.where(templates < 12, 1, -1).astype(np.int8)
    soft = np.where(np.arange(160) % 3 == 0, 1.0, -1.0)
    sample = np.arange(0, 160, 2)  # 5 texts of each template
    rows = screen_rows(sample, labels, soft, templates, 48, seed=7)
    assert set(rows.tolist()) <= set(sample.tolist()) and np.all(np.diff(rows) > 0)
    for label in (1, -1):
        assert len(np.unique(templates[rows][labels[rows] == label])) == SCREEN_TEMPLATES
    assert len(rows) == 2 * SCREEN_TEMPLATES * 5 == 40  # every text of the chosen templates: fewer than 48
    assert np.array_equal(rows, screen_rows(sample, labels, soft, templates, 48, seed=7))
    assert not np.array_equal(rows, screen_rows(sample, labels, soft, templates, 48, seed=8))
    fewer = screen_rows(sample, labels, soft, templates, 20, seed=7)
    assert len(fewer) == 20 and set(fewer.tolist()) <= set(rows.tolist())
    assert np.array_equal(  # without templates: the old stratified draw from the whole sample
        screen_rows(sample, labels, soft, None, 20, seed=7),
        sample[stratified_sample(labels[sample], soft[sample], 20, 7)],
    )


def test_swaps_are_ranked_by_the_first_order_estimate():
    scores = torch.zeros(GRADIENT_TOP + 4, 2)
    scores[:, 0] = torch.arange(GRADIENT_TOP + 4, dtype=torch.float32)  # token v at position 0: v
    scores[:, 1] = -torch.arange(GRADIENT_TOP + 4, dtype=torch.float32)
    rankable = torch.ones(GRADIENT_TOP + 4, dtype=torch.bool)
    rankable[GRADIENT_TOP + 3] = False  # the most negative at position 1: never suggested
    ranked = ranked_swaps((5, 0), ((GRADIENT_TOP + 3,), (1,)), scores, rankable)
    first = ranked[0]
    assert first == (-(GRADIENT_TOP + 2.0), 1, GRADIENT_TOP + 2)  # 0 -> the best rankable token
    assert (-5.0, 0, 0) in ranked  # position 0: token 0 lowers the loss by 5
    assert (float(GRADIENT_TOP + 3) - 5.0, 0, GRADIENT_TOP + 3) in ranked  # a neighbour, even unhelpful
    assert all(v != GRADIENT_TOP + 3 for _, i, v in ranked if i == 1)  # not rankable, not a neighbour
    assert [r[0] for r in ranked] == sorted(r[0] for r in ranked)


# ---------------------------------------------------------------------------------------------
# The gradient


def test_the_gradient_matches_finite_differences(tiny_lm_world):
    from audit.behaviour.gradient import agreement_loss_grad
    from audit.behaviour.lm import load_causal_lm
    from audit.behaviour.runner import answer_log_odds
    from audit.behaviour.stats.agreement import bernoulli_kl
    from audit.inputs.models import resolve_model

    model, _, _ = tiny_lm_world
    lm = load_causal_lm(resolve_model(str(model)), progress=False)
    tok = lm.tokenizer
    answers = ([tok.convert_tokens_to_ids("w1")], [tok.convert_tokens_to_ids("w2")])
    texts = ["w3 w4 w10 w6", "w3 w5 w11 w6 w7", "w8 w12"]
    g = torch.Generator().manual_seed(5)
    prompt = torch.randn(3, lm.d_model, generator=g)
    target = np.array([1.5, -0.5, 0.2])
    loss, grad = agreement_loss_grad(lm, prompt, texts, answers, target)
    lo = answer_log_odds(lm, prompt, texts, answers)
    assert loss == pytest.approx(float(bernoulli_kl(target, lo).mean()), rel=1e-4)
    direction = torch.randn(3, lm.d_model, generator=g)
    eps = 1e-3

    def loss_at(p):
        return float(bernoulli_kl(target, answer_log_odds(lm, p, texts, answers)).mean())

    numeric = (loss_at(prompt + eps * direction) - loss_at(prompt - eps * direction)) / (2 * eps)
    assert float((grad * direction).sum()) == pytest.approx(numeric, rel=2e-2, abs=1e-5)


# ---------------------------------------------------------------------------------------------
# Flags, reports and errors


@pytest.mark.slow
def test_the_found_texts_sensitive_terms_are_flagged_as_any_reading(gemma_vocab):
    from audit.engine.steps import reading_flags
    from audit.evidence.stage import SharedEvidence
    from audit.geometry.stage import statistics
    from audit.terms.load import load_wordlists

    lists = load_wordlists()
    config = AuditConfig()
    index = SharedEvidence(gemma_vocab, statistics(gemma_vocab, config), lists, config).index
    ids = tuple(gemma_vocab.encode(" Clasifica currículums españoles", special=False))
    flags = reading_flags(ids, gemma_vocab, index, lists)
    assert any(
        f.lemma == "español" and f.category == "nationality_origin" and f.whole_token for f in flags
    ), flags
    assert all(f.position == len(ids) - 1 for f in flags)  # only the last token spells a term


def test_reports_show_the_found_reading(switch):
    from audit.report.behaviour_view import behaviour_view

    result, _ = switch
    en, es = behaviour_view(result, "en")["found"], behaviour_view(result, "es")["found"]
    assert en["text"] == result.found.text and en["ok"] and "w37" in en["changes"][0] or en["changes"]
    assert "stopped" in en["cost"] and "se detuvo" in es["cost"]
    assert en["versus"].startswith("best projection (l2): agreement 0.500")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--faithful-reading"], "--faithful-reading applies to the behavioural check"),
        (["--faithful-budget", "3"], "--faithful-budget applies to --faithful-reading"),
        (
            ["--behaviour", "hiring-es", "--faithful-reading", "--sequential"],
            "which --sequential does not score",
        ),
        (["--behaviour", "hiring-es", "--faithful-reading", "--faithful-budget", "1"], "is not in (1, 100]"),
        (["--behaviour", "hiring-es", "--faithful-reading", "--faithful-seconds", "0"], "is not positive"),
    ],
)
def test_bad_search_options_exit_2_with_one_line(
    args, message, tmp_path, tiny_prompt, tiny_model_dir, capsys
):
    from audit.cli import main

    out = tmp_path / "a.json"
    code = main(["scan", str(tiny_prompt), "--model", str(tiny_model_dir), "--json", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
