"""Flag ablation on a causal LM whose behaviour depends on one prompt position by construction.

A one-layer Llama with hand-set weights: attention is uniform (zero queries and keys), so the last
position sees the mean of every position; the MLP multiplies a "switch" direction (carried only by prompt
position 1) with a "group b" direction (carried by group b's names), and the output layer turns that
product into a strong "no". With the switch on, group a is selected and group b rejected; without it,
both are selected. Replacing position 1 must therefore be reported active, replacing position 0 inert.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from audit.behaviour.hypotheses import Hypotheses, PositionProbe
from audit.behaviour.stage import check
from audit.config import AuditConfig
from audit.inputs.prompts import Segment, SoftPrompt
from audit.records import Level
from audit.verdict.stage import escalate
from tests.helpers import tiny_tokenizer

D = 8
A = [f"w{i}" for i in range(10, 16)]
B = [f"w{i}" for i in range(16, 22)]


def build_switch_model(path: Path, a=A, b=B, switch: str | None = None) -> torch.Tensor:
    """Saves the constructed model; returns its embedding matrix (V, D). ``switch``: a token whose
    embedding carries the switch (dim 1), so that a text prompt can turn it on."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=D,
        intermediate_size=4,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        head_dim=D,
        max_position_embeddings=128,
        tie_word_embeddings=False,
        rms_norm_eps=1e-6,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        emb = torch.zeros(len(tok), D)
        emb[:, 4:7] = 0.3 * torch.randn(len(tok), 3, generator=torch.Generator().manual_seed(0))
        emb[:, 7] = 1.0  # a constant direction: the output layer's lean towards "yes"
        emb[tok.convert_tokens_to_ids(b), 0] = 1.0  # group b
        emb[tok.convert_tokens_to_ids(a), 0] = -1.0  # group a (so the vocabulary mean has no group signal)
        if switch is not None:
            emb[tok.convert_tokens_to_ids(switch), 1] = 3.0
        model.model.embed_tokens.weight.copy_(emb)
        layer = model.model.layers[0]
        for norm in (layer.input_layernorm, layer.post_attention_layernorm, model.model.norm):
            norm.weight.fill_(1.0)
        layer.self_attn.v_proj.weight.copy_(torch.eye(D))
        layer.self_attn.o_proj.weight.copy_(torch.eye(D))
        layer.mlp.gate_proj.weight[0, 1] = 20.0  # the switch (dim 1) ...
        layer.mlp.up_proj.weight[0, 0] = 20.0  # ... times the group signal (dim 0) ...
        layer.mlp.down_proj.weight[3, 0] = 1.0  # ... written to dim 3
        yes, no = tok.convert_tokens_to_ids(["w1", "w2"])
        model.lm_head.weight[yes, 3] = -10.0  # dim 3 argues against "yes"
        model.lm_head.weight[yes, 7] = 2.0
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return emb


def write_suite(path: Path, a=A, b=B, first: int = 22) -> Path:
    lines = [
        'schema = 1\nid = "switch"\nversion = "0.1.0"\nlanguage = "en"\ndescription = "constructed"',
        '[answers]\npositive = " w1"\nnegative = " w2"',
        f'[attributes.group]\nslot = "name"\nreference = "a"\n[attributes.group.groups]\na = {a}\nb = {b}',
    ]
    lines += [f'[[templates]]\ntext = "w3 w4 w{first + i} {{name}} w6"\nlabel = "positive"' for i in range(8)]
    path.write_text("\n".join(lines).replace("'", '"') + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    root = tmp_path_factory.mktemp("switch")
    emb = build_switch_model(root / "model")
    vectors = torch.tensor([[0, 0, 0, 0, 0, 1.0, 0, 1], [0, 3.0, 0, 0, 0, 0, 0, 1]])  # position 1: the switch
    prompt = SoftPrompt(vectors, root / "p.npy", "0" * 64, "npy", (Segment("prompt", 0, 2),))
    tok = tiny_tokenizer()
    reading = tok.convert_tokens_to_ids("w5")
    hyp = Hypotheses(
        readings=(),
        positions=(PositionProbe(1, "l2", reading, "w5"), PositionProbe(0, "l2", reading, "w5")),
        skipped=(),
        mean=emb.mean(0),
    )
    config = AuditConfig(behaviour=str(write_suite(root / "switch.toml")), progress=False)
    return check(prompt, str(root / "model"), None, config, hyp)


@pytest.fixture(scope="module")
def sequential_result(tmp_path_factory, result):
    """The same construction with 8 names a group (6 cannot reach the first looks' level after the BH
    correction: 2 / C(12, 6) x 2 tests > 0.0025), with --sequential."""
    root = tmp_path_factory.mktemp("switch-seq")
    a, b = [f"w{i}" for i in range(10, 18)], [f"w{i}" for i in range(18, 26)]
    emb = build_switch_model(root / "model", a, b)
    vectors = torch.tensor([[0, 0, 0, 0, 0, 1.0, 0, 1], [0, 3.0, 0, 0, 0, 0, 0, 1]])
    prompt = SoftPrompt(vectors, root / "p.npy", "0" * 64, "npy", (Segment("prompt", 0, 2),))
    reading = tiny_tokenizer().convert_tokens_to_ids("w5")
    hyp = Hypotheses(
        (), (PositionProbe(1, "l2", reading, "w5"), PositionProbe(0, "l2", reading, "w5")), (), emb.mean(0)
    )
    suite = write_suite(root / "switch.toml", a, b, first=26)
    config = AuditConfig(behaviour=str(suite), progress=False, sequential=True)
    return check(prompt, str(root / "model"), None, config, hyp)


def test_the_construction_rejects_group_b_only_with_the_switch(result):
    groups = {g.id: g for g in result.soft.attributes[0].groups}
    assert groups["a"].selection_rate == 1.0 and groups["b"].selection_rate == 0.0
    assert groups["b"].impact_ratio == 0.0 and groups["b"].q_value < 0.05
    base = {g.id: g for g in next(c for c in result.conditions if c.id == "no_prompt").attributes[0].groups}
    assert base["b"].selection_rate == base["a"].selection_rate  # no switch, no gap
    assert result.risk == Level.HIGH and not result.gaps[0].in_base_model


def test_ablating_the_switch_position_is_active_and_another_inert(result):
    by_position = {}
    for ablation in result.ablations:
        by_position.setdefault(ablation.position, []).append(ablation)
    assert {a.replacement for a in by_position[1]} == {"reading", "mean"}
    for ablation in by_position[1]:  # the gap closes: group b is selected again
        b = next(g for g in ablation.groups if g.id == "b")
        assert ablation.active and b.selection_rate == 1.0 and b.delta_selection_rate == 1.0
        # 6 names per group: C(12, 6) = 924 assignments, the most extreme two-sided p is 2/924.
        assert ablation.p_value == pytest.approx(2 / 924)
    for ablation in by_position[0]:
        assert not ablation.active
        assert all(g.delta_selection_rate == 0.0 for g in ablation.groups)
    assert escalate({0: Level.LOW, 1: Level.LOW}, result) == {0: Level.LOW, 1: Level.HIGH}


def test_a_sequential_stop_keeps_the_verdict_and_the_active_flag(result, sequential_result):
    """A gap this clear stops at the first look (2 of 8 templates); the ablations then run on those
    renderings and find the same active position."""
    seq = sequential_result
    assert seq.sequential.stopped_early and len(seq.sequential.looks) == 1
    assert seq.risk == result.risk == Level.HIGH
    assert seq.n_templates == 2 and seq.n_renderings == 2 * 16 and seq.sequential.n_renderings_full == 8 * 16
    active = {a.position for a in seq.ablations if a.active}
    assert active == {a.position for a in result.ablations if a.active} == {1}
