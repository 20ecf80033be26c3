"""Soft-prompt loading: every supported format, real PEFT adapters, and every refusal."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from audit.errors import AuditInputError
from audit.inputs.prompts import load_prompt
from tests.helpers import Exploit


def test_npy_safetensors_and_pt_load_the_same_matrix(tmp_path):
    matrix = torch.randn(5, 16)
    np.save(tmp_path / "p.npy", matrix.numpy())
    save_file({"prompt": matrix}, str(tmp_path / "p.safetensors"))
    torch.save(matrix, tmp_path / "p.pt")
    torch.save({"prompt_embeddings": matrix}, tmp_path / "state.bin")
    for name, fmt in (
        ("p.npy", "npy"),
        ("p.safetensors", "safetensors"),
        ("p.pt", "torch"),
        ("state.bin", "torch"),
    ):
        prompt = load_prompt(tmp_path / name)
        assert prompt.format == fmt
        assert torch.equal(prompt.vectors, matrix)
        assert prompt.vectors.dtype == torch.float32
        assert len(prompt.sha256) == 64


def test_multi_tensor_safetensors_needs_key(tmp_path):
    save_file({"a": torch.zeros(2, 4), "b": torch.ones(3, 4)}, str(tmp_path / "m.safetensors"))
    with pytest.raises(AuditInputError, match="--key"):
        load_prompt(tmp_path / "m.safetensors")
    assert load_prompt(tmp_path / "m.safetensors", key="b").vectors.shape == (3, 4)
    with pytest.raises(AuditInputError, match="no tensor 'c'"):
        load_prompt(tmp_path / "m.safetensors", key="c")


@pytest.mark.parametrize("shape", [(16,), (2, 3, 16)])
def test_wrong_rank_is_refused(tmp_path, shape):
    np.save(tmp_path / "bad.npy", np.zeros(shape, dtype=np.float32))
    with pytest.raises(AuditInputError, match=r"must be 2-D"):
        load_prompt(tmp_path / "bad.npy")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_values_are_refused(tmp_path, value):
    array = np.zeros((3, 8), dtype=np.float32)
    array[1, 2] = value
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(AuditInputError, match=r"NaN/Inf.*rows \[1\]"):
        load_prompt(tmp_path / "bad.npy")


def test_pickled_object_is_refused_and_never_executed(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("EXPLOIT_MARKER", str(marker))
    torch.save({"prompt_embeddings": torch.zeros(2, 4), "x": Exploit()}, tmp_path / "evil.pt")
    with pytest.raises(AuditInputError, match="pickled objects are refused"):
        load_prompt(tmp_path / "evil.pt")
    assert not marker.exists()


def test_missing_path_and_unknown_suffix(tmp_path):
    with pytest.raises(AuditInputError, match="does not exist"):
        load_prompt(tmp_path / "nope.npy")
    (tmp_path / "p.txt").write_text("1 2 3")
    with pytest.raises(AuditInputError, match="unsupported prompt file type"):
        load_prompt(tmp_path / "p.txt")


def test_directory_without_adapter_is_refused(tmp_path):
    (tmp_path / "README.md").write_text("not an adapter")
    with pytest.raises(AuditInputError, match="without a PEFT adapter"):
        load_prompt(tmp_path)


def _peft_adapter(tmp_path, model_dir, config):
    from peft import get_peft_model
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
    out = tmp_path / "adapter"
    get_peft_model(model, config).save_pretrained(str(out))
    return out


def test_peft_prompt_tuning_adapter_round_trips(tmp_path, tiny_model_dir):
    from peft import PromptTuningConfig

    config = PromptTuningConfig(
        task_type="FEATURE_EXTRACTION",
        prompt_tuning_init="TEXT",
        prompt_tuning_init_text="buenos blancos casa",
        num_virtual_tokens=3,
        tokenizer_name_or_path=str(tiny_model_dir),
    )
    adapter = _peft_adapter(tmp_path, tiny_model_dir, config)
    prompt = load_prompt(adapter)
    assert prompt.format == "peft"
    assert prompt.peft.peft_type == "PROMPT_TUNING"
    assert prompt.peft.init_text == "buenos blancos casa"
    assert prompt.peft.base_model == str(tiny_model_dir)
    assert prompt.vectors.shape == (3, 16)
    assert [s.name for s in prompt.segments] == ["prompt"]


def test_peft_p_tuning_adapter_loads(tmp_path, tiny_model_dir):
    from peft import PromptEncoderConfig

    config = PromptEncoderConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=4, encoder_hidden_size=8)
    prompt = load_prompt(_peft_adapter(tmp_path, tiny_model_dir, config))
    assert prompt.peft.peft_type == "P_TUNING"
    assert prompt.vectors.shape == (4, 16)


def test_peft_prefix_tuning_is_refused_with_the_reason(tmp_path, tiny_model_dir):
    from peft import PrefixTuningConfig

    config = PrefixTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=4)
    adapter = _peft_adapter(tmp_path, tiny_model_dir, config)
    with pytest.raises(AuditInputError, match="PREFIX_TUNING.*per-layer key/value"):
        load_prompt(adapter)


def test_seq2seq_adapter_is_split_into_encoder_and_decoder_halves(tmp_path):
    from peft import PromptTuningConfig, get_peft_model
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    model = T5ForConditionalGeneration(
        T5Config(
            vocab_size=32, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, decoder_start_token_id=0
        )
    )
    config = PromptTuningConfig(task_type="SEQ_2_SEQ_LM", num_virtual_tokens=5)
    get_peft_model(model, config).save_pretrained(str(tmp_path / "a"))
    saved = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert saved["num_transformer_submodules"] == 2
    prompt = load_prompt(tmp_path / "a")
    assert prompt.vectors.shape == (10, 16)
    assert [(s.name, s.start, s.stop) for s in prompt.segments] == [("encoder", 0, 5), ("decoder", 5, 10)]


def test_model_hash_follows_the_embedding_bytes_not_the_path(tmp_path, tiny_model_dir):
    """The model's sha256 (reports, cache keys) is content-based: a copied directory has the same hash,
    a model with other embedding values a different one, and a half-precision copy of the matrix another."""
    import shutil

    from safetensors.torch import load_file

    from audit.inputs.formats import load_vocabulary
    from tests.helpers import WORDS, save_tiny_hf_model

    first = load_vocabulary(str(tiny_model_dir)).sha256
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert load_vocabulary(str(copy)).sha256 == first
    other = save_tiny_hf_model(tmp_path / "other", WORDS + ["blanca", "negro", "gitano"], seed=1)
    assert load_vocabulary(str(other)).sha256 != first
    state = load_file(str(copy / "model.safetensors"))
    save_file({k: v.half() for k, v in state.items()}, str(copy / "model.safetensors"))
    assert load_vocabulary(str(copy)).sha256 not in (first, None)
