#!/usr/bin/env bash
# Device check for the optional CUDA path (run on a GPU machine from the repo root):
# the CUDA tests, then CPU vs CUDA projection timings on a Gemma-sized random matrix.
set -uo pipefail
export HF_HUB_OFFLINE=1 PYTHONPATH=. PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -5
python3 - <<'PY'
import time, torch
from audit.projection import METHODS, project
from audit.stats import compute_stats
from audit.vocab import vocabulary_from_tensors
from tests.conftest import word_level_tokenizer
gen = torch.Generator().manual_seed(0)
words = [f"w{i}" for i in range(262_143)]
vocab = vocabulary_from_tensors(torch.randn(262_144, 640, generator=gen), word_level_tokenizer(words), embed_scale=25.3)
stats = compute_stats(vocab)
prompt = torch.randn(20, 640, generator=gen) * 25
for device in ("cpu", "cuda", "cuda"):
    t = time.perf_counter()
    out = project(prompt, vocab, stats, tuple(METHODS), 10, device=device)
    print(f"{device}: {time.perf_counter() - t:.2f} s for 20 positions x 6 methods x 262144 tokens")
PY
