"""Real packaged models and real PEFT adapters: TEXT-init prompts read back their init text."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from audit.cli import main
from audit.config import AuditConfig
from audit.pipeline import run_audit
from audit.prompts import load_prompt

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


def _assert_reads_back(result, vocab, init):
    """Each virtual token's top-1 is the token PEFT initialised it from (specials included)."""
    expected = vocab.init_token_ids(init, len(result.positions))
    for method in READ_BACK:
        got = [p.projections[method].token_id for p in result.positions]
        assert got == expected, method


def test_minilm_text_init_reads_back_its_init_tokens(minilm_adapter, minilm_path):
    from audit.vocab import load_vocabulary

    prompt = load_prompt(minilm_adapter)
    assert prompt.vectors.shape == (8, 384)
    result = run_audit(AuditConfig(prompt=minilm_adapter, model="all-minilm-l6-v2", progress=False))
    assert result.model.vocab_size == 30522 and result.model.dim == 384 and result.model.embed_scale == 1.0
    _assert_reads_back(result, load_vocabulary("all-minilm-l6-v2"), "classify resumes of good candidates")
    for method in READ_BACK:
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
    result = run_audit(AuditConfig(prompt=gemma_text_adapter, progress=False))  # model from the adapter
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
    assert data["inputs"]["prompt"]["peft_type"] == "PROMPT_TUNING"
    assert all(w["prompt_f1"] == 1.0 for m, w in data["waywardness"].items() if m != "dot")
    assert data["inputs"]["model"]["embed_scale"] == pytest.approx(25.298221, abs=1e-6)
    assert len(data["positions"]) == 13  # <bos> + 12 text tokens
    assert "<table>" in out_html.read_text()
