"""The optional CUDA path gives the same neighbours as the CPU. Skipped where no GPU is present
(CI has none); run on a GPU machine with `pytest tests/test_cuda.py`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audit.cli import main
from audit.geometry.engine import project
from audit.geometry.methods import METHODS
from audit.geometry.stats import compute_stats
from audit.inputs.vocab import vocabulary_from_tensors
from tests.helpers import word_level_tokenizer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def test_cuda_projection_matches_cpu():
    gen = torch.Generator().manual_seed(0)
    words = [f"w{i}" for i in range(20_000)]
    rows = torch.randn(len(words) + 1, 128, generator=gen)
    vocab = vocabulary_from_tensors(rows, word_level_tokenizer(words), embed_scale=3.0)
    stats = compute_stats(vocab)
    prompt = torch.randn(16, 128, generator=gen) * 3.0
    cpu = project(prompt, vocab, stats, tuple(METHODS), 10, device="cpu")
    gpu = project(prompt, vocab, stats, tuple(METHODS), 10, device="cuda")
    for method in METHODS:
        assert torch.equal(cpu[method].ids[:, 0], gpu[method].ids[:, 0]), method
        overlap = (cpu[method].ids == gpu[method].ids).float().mean().item()
        assert overlap > 0.98, (method, overlap)
        assert torch.allclose(cpu[method].scores, gpu[method].scores, rtol=1e-4, atol=1e-3), method


def test_cli_device_cuda_end_to_end(tmp_path, tiny_model_dir, capsys):
    from safetensors.torch import load_file

    emb = load_file(str(tiny_model_dir / "model.safetensors"))["embeddings.word_embeddings.weight"]
    prompt = tmp_path / "p.npy"
    np.save(prompt, emb[[0, 1]].numpy())
    outs = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.json"
        argv = ["scan", str(prompt), "--model", str(tiny_model_dir), "--device", device, "--json", str(out)]
        assert main([*argv, "--quiet"]) == 0, capsys.readouterr().err
        outs[device] = json.loads(out.read_text())
    for a, b in zip(outs["cpu"]["positions"], outs["cuda"]["positions"]):
        assert {m: p["token_id"] for m, p in a["projections"].items()} == {
            m: p["token_id"] for m, p in b["projections"].items()
        }
    assert outs["cpu"]["summary"]["risk"] == outs["cuda"]["summary"]["risk"]
