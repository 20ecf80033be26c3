"""Memory before loading: the estimate against hand-computed figures, the free-memory readers, and a
model too large for any machine refused (exit 2, no output) from its config.json alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audit.behaviour.memory import (
    GIB,
    WORKING_FLOOR,
    cgroup_free,
    check_fits,
    config_parameters,
    estimate,
    meminfo_available,
)
from audit.errors import AuditInputError
from tests.helpers import assert_one_line_error, run

# Llama 3 8B and 3.1 70B as their config.json files give them (hidden sizes, layers, heads, vocabulary).
LLAMA_8B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
    "tie_word_embeddings": False,
}
LLAMA_70B = {**LLAMA_8B, "hidden_size": 8192, "intermediate_size": 28672, "num_attention_heads": 64}
LLAMA_70B["num_hidden_layers"] = 80


def llama_parameters(c: dict) -> int:
    """Hand count: embeddings and untied output, per layer q/o (d x d), k/v (d x kv), 3 MLP matrices and
    2 norms, the final norm."""
    d, f, v, n = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_hidden_layers"]
    kv = d // c["num_attention_heads"] * c["num_key_value_heads"]
    per_layer = 2 * d * d + 2 * d * kv + 3 * d * f + 2 * d
    return 2 * v * d + n * per_layer + d


def test_the_estimate_is_the_weights_plus_the_working_share_and_floor():
    need = estimate(10**9)
    assert need.weight_bytes == 4 * 10**9
    assert need.total_bytes == int(4.4e9) + WORKING_FLOOR
    assert estimate(10**9, "bfloat16").weight_bytes == 2 * 10**9
    with pytest.raises(ValueError):
        estimate(-1)


def test_config_parameters_counts_llama_8b_as_published_and_as_counted_by_hand():
    assert config_parameters(LLAMA_8B) == llama_parameters(LLAMA_8B) == 8_030_261_248
    assert config_parameters(LLAMA_70B) == llama_parameters(LLAMA_70B)  # 70.55 B


def test_config_parameters_counts_tied_weights_once(tmp_path):
    from transformers import AutoModelForCausalLM

    from tests.helpers import save_tiny_causal_lm

    for arch in ("gemma3", "llama", "gpt2"):
        path = save_tiny_causal_lm(tmp_path / arch, arch)
        config = json.loads((path / "config.json").read_text())
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
        assert config_parameters(config) == model.num_parameters(), arch


def test_an_unknown_model_type_is_an_input_error():
    with pytest.raises(AuditInputError, match="does not know the model type 'no-such-type'"):
        config_parameters({"model_type": "no-such-type"})


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"hidden_size": "abc"}, "expected int, got str"),
        ({"hidden_size": 65, "num_attention_heads": 4}, "not a multiple of the number of attention heads"),
    ],
)
def test_a_config_that_describes_no_model_is_an_input_error(fields, problem):
    with pytest.raises(AuditInputError, match="config.json does not describe a model") as err:
        config_parameters({**LLAMA_8B, **fields})
    assert problem in str(err.value) and "\n" not in str(err.value)


def test_free_memory_is_read_from_meminfo_and_a_cgroup_limit(tmp_path):
    info = tmp_path / "meminfo"
    info.write_text("MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   22970584 kB\n")
    assert meminfo_available(info) == 22970584 * 1024
    info.write_text("MemTotal: 1 kB\n")
    assert meminfo_available(info) is None
    assert meminfo_available(tmp_path / "missing") is None
    (tmp_path / "memory.max").write_text("8589934592\n")
    (tmp_path / "memory.current").write_text("1073741824\n")
    assert cgroup_free(tmp_path) == 7 * GIB
    (tmp_path / "memory.max").write_text("max\n")
    assert cgroup_free(tmp_path) is None


def test_check_fits_refuses_with_both_figures_and_the_ways_out():
    need = estimate(8_030_261_248)  # 33.4 GiB
    check_fits("llama", need, torch.device("cpu"), None)  # unknown free memory: let it load
    check_fits("llama", need, torch.device("cpu"), need.total_bytes)  # exactly enough
    with pytest.raises(AuditInputError) as err:
        check_fits("llama", need, torch.device("cpu"), 24 * GIB)
    text = str(err.value)
    assert "8.03 B parameters" in text and "33.4 GiB in float32" in text and "24.0 GiB free" in text
    assert "--device cuda" in text and "a smaller model" in text
    with pytest.raises(AuditInputError, match="this GPU has 16.0 GiB free") as err:
        check_fits("llama", need, torch.device("cuda"), 16 * GIB)
    assert "--device cuda" not in str(err.value)


def test_a_config_only_70b_model_exits_2_before_any_work(tmp_path, capsys):
    """No weights, no tokenizer: the memory check comes first (70.55 B parameters x 4 bytes x 1.1
    + 0.5 GiB = 289.6 GiB)."""
    model = tmp_path / "llama-70b"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(LLAMA_70B))
    prompt = tmp_path / "prompt.npy"
    np.save(prompt, np.zeros((4, 8192), dtype=np.float32))
    out = tmp_path / "r.json"
    code, _, err = run(["scan", prompt, "--model", model, "--behaviour", "hiring-es", "--json", out], capsys)
    assert_one_line_error(code, err, "70.55 B parameters) needs about 289.6 GiB in float32")
    assert not out.exists()
