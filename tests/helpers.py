"""Helpers shared by the test modules (plain functions and constants; fixtures live in conftest.py).

Tiny synthetic models whose geometry the tests control: word-level tokenizers, a random-weight BERT
folder, tiny causal LMs (Gemma 3, Llama, GPT-2 layouts), PEFT adapters on them, a tiny behaviour suite,
synthetic audit results and behavioural records. Nothing here loads a packaged model.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import torch

from audit.cli import main
from audit.config import AuditConfig
from audit.engine import audit_prompt
from audit.inputs.prompts import Segment, SoftPrompt
from audit.inputs.vocab import vocabulary_from_tensors
from audit.records import (
    Ablation,
    AttributeDisparity,
    BehaviourResult,
    Calibration,
    Category,
    CategoryTable,
    Condition,
    GroupDisparity,
)
from audit.terms.load import load_wordlists
from audit.verdict.behaviour import gaps, risk_and_verdict, unresolved
from audit.verdict.explain import explained
from audit.verdict.stage import escalate, with_behaviour

# ---------------------------------------------------------------------------------------------
# Tiny vocabularies and a tiny BERT model folder

WORDS = ["buenos", "blancos", "malos", "casa", "perro", "gato", "mesa", "libro", "sol", "agua"]


def word_level_tokenizer(words: list[str], *, special: tuple[str, ...] = ("[UNK]",)):
    """A real (tokenizers-built) word-level tokenizer: id i spells words[i]; specials come last."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(words)}
    for extra in special:
        vocab[extra] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=special[0]))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=special[0])


def orthogonal_rows(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """(n, d) orthonormal rows (n <= d): every pair of tokens is equally far apart."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, n, generator=gen))
    return q.T.contiguous()


def save_tiny_hf_model(
    path: Path, words: list[str], dim: int = 16, *, safe: bool = True, seed: int = 0
) -> Path:
    """A real (random-weight) BERT model directory with a word-level tokenizer: config.json, weights,
    tokenizer files, exactly as save_pretrained writes them."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    tokenizer = word_level_tokenizer(words)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=dim,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * dim,
        max_position_embeddings=64,
        pad_token_id=len(tokenizer) - 1,
    )
    model = BertModel(config)
    model.save_pretrained(str(path))
    if not safe:
        # A legacy pickle checkpoint (transformers 5 only writes safetensors): the same tensors in
        # pytorch_model.bin, as older save_pretrained versions wrote it.
        torch.save(model.state_dict(), path / "pytorch_model.bin")
        (path / "model.safetensors").unlink()
    tokenizer.save_pretrained(str(path))
    return path


# ---------------------------------------------------------------------------------------------
# The command line


class Exploit:
    """Unpickling it runs a shell command (touches $EXPLOIT_MARKER): a prompt file must never load it."""

    def __reduce__(self):
        return (os.system, (f"touch {os.environ['EXPLOIT_MARKER']}",))


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, pattern):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("prompt-audit: error:")
    assert "Traceback" not in err
    assert pattern in lines[0], lines[0]


# ---------------------------------------------------------------------------------------------
# PEFT prompt-tuning adapters on a tiny model


def write_adapter(model_dir: Path, config, out: Path, *, name_or_path: str | None = None, **save) -> Path:
    """Saves a PEFT adapter for the model in ``model_dir``. ``name_or_path``: what ``from_pretrained``
    would have set had the model been loaded from there (a hub id, a path on another machine)."""
    from peft import get_peft_model
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
    if name_or_path is not None:
        model.name_or_path = name_or_path
    get_peft_model(model, config, **save.pop("get_peft_model", {})).save_pretrained(str(out), **save)
    return out


def text_config(text: str, n: int, tokenizer: Path, **extra):
    from peft import PromptTuningConfig

    return PromptTuningConfig(
        task_type="FEATURE_EXTRACTION",
        prompt_tuning_init="TEXT",
        prompt_tuning_init_text=text,
        num_virtual_tokens=n,
        tokenizer_name_or_path=str(tokenizer),
        **extra,
    )


def random_config(n: int = 3):
    from peft import PromptTuningConfig

    return PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=n)


# ---------------------------------------------------------------------------------------------
# Tiny causal LMs and a tiny behaviour suite

LM_WORDS = [f"w{i}" for i in range(40)]
BOS, PAD = "[BOS]", "[PAD]"
D = 32


def tiny_tokenizer():
    """Word-level, ``[BOS]`` prepended as special token (as Gemma's <bos>), ``[PAD]`` last."""
    from tokenizers.processors import TemplateProcessing

    tok = word_level_tokenizer(LM_WORDS, special=("[UNK]", BOS, PAD))
    bos_id = tok.convert_tokens_to_ids(BOS)
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, bos_id)]
    )
    tok.bos_token, tok.pad_token = BOS, PAD
    return tok


def _tiny_config(arch: str, vocab: int, pad: int, bos: int):
    from transformers import Gemma3TextConfig, GPT2Config, LlamaConfig

    if arch == "gemma3":  # sliding window 4 < the sequences (and prefixes), logit soft-capping
        return Gemma3TextConfig(
            vocab_size=vocab,
            hidden_size=D,
            intermediate_size=2 * D,
            num_hidden_layers=3,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
            sliding_window=4,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            final_logit_softcapping=5.0,
            max_position_embeddings=128,
            pad_token_id=pad,
            bos_token_id=bos,
            eos_token_id=pad,
        )
    if arch == "llama":  # untied output matrix, grouped-query attention
        return LlamaConfig(
            vocab_size=vocab,
            hidden_size=D,
            intermediate_size=2 * D,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            tie_word_embeddings=False,
            pad_token_id=pad,
            bos_token_id=bos,
            eos_token_id=pad,
        )
    # GPT-2: learned absolute positions, so position ids past the cached prefix must be right
    return GPT2Config(
        vocab_size=vocab,
        n_embd=D,
        n_layer=2,
        n_head=2,
        n_positions=128,
        pad_token_id=pad,
        bos_token_id=bos,
        eos_token_id=pad,
    )


def save_tiny_causal_lm(path: Path, arch: str, seed: int = 0) -> Path:
    from transformers import AutoModelForCausalLM

    tok = tiny_tokenizer()
    config = _tiny_config(arch, len(tok), tok.pad_token_id, tok.bos_token_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():  # random init is near-uniform; larger weights make the checks sharper
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0.0, 0.3)
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


SUITE_GROUPS = {"a": ["w10", "w11", "w12", "w13"], "b": ["w14", "w15", "w16", "w17"]}
SUITE_TEMPLATES = [(f"w3 w4 w{20 + i} w5 {{name}} w6", "positive" if i < 6 else "negative") for i in range(8)]


def write_suite(path: Path, templates=SUITE_TEMPLATES, groups=SUITE_GROUPS, suite_id: str = "tiny") -> Path:
    """A suite file: one attribute ``origin`` (slot ``name``, reference ``a``) with ``groups``."""
    lines = [
        "schema = 1",
        f"id = {json.dumps(suite_id)}",
        'version = "0.1.0"',
        'language = "en"',
        'description = "a tiny suite for tests"',
        "[answers]",
        'positive = " w1"',
        'negative = " w2"',
        "[attributes.origin]",
        'slot = "name"',
        'reference = "a"',
        "[attributes.origin.groups]",
    ]
    lines += [f"{g} = {json.dumps(v)}" for g, v in groups.items()]
    for text, label in templates:
        lines += ["[[templates]]", f"text = {json.dumps(text)}", f'label = "{label}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Synthetic audit results (reports)

HOSTILE = [
    "<script>document.title='pwned'</script>",
    '"quoted"',
    "a&b",
    "{{ 7*7 }}",
    "<img src=x onerror=alert(1)>",
]


def result(words, mix, reference="casa gitanos"):
    """A synthetic world: orthonormal word vectors; ``mix`` = list of (word, weight) per position.

    The rows are basis vectors, exact on every machine (a QR of random numbers differs in the last bits
    between BLAS builds, and so did the golden report)."""
    n, d = len(words), 64
    rows = torch.eye(d)[: n + 1].contiguous()
    rows[words.index("gitanos")] *= 2.0
    vocab = vocabulary_from_tensors(rows, word_level_tokenizer(words), spec="synthetic")
    vectors = torch.stack([sum(w * rows[words.index(tok)] for tok, w in pos) for pos in mix])
    prompt = SoftPrompt(vectors, Path("synthetic.npy"), "0" * 64, "npy", (Segment("prompt", 0, len(mix)),))
    config = AuditConfig(progress=False, top_k=3, reference_text=reference)
    return audit_prompt(prompt, vocab, load_wordlists(), config)


REPORT_WORDS = [
    "casa",
    "mesa",
    "gitanos",
    "perro",
    "gato",
    "sol",
    "agua",
    "libro",
    "musulmanes",
    "blancos",
] + HOSTILE
MIX = [[("casa", 1.0)], [("casa", 0.55), ("gitanos", 0.225)], [("perro", 0.7), ("blancos", 0.3)]]


def hostile_result():
    mix = [[(HOSTILE[0], 1.0)], [(HOSTILE[1], 0.6), (HOSTILE[3], 0.4)], [(HOSTILE[4], 0.7), ("gitanos", 0.3)]]
    return result(REPORT_WORDS, mix, reference="<b>bold</b> & {{ x }}")


# ---------------------------------------------------------------------------------------------
# Behavioural records

REF = GroupDisparity(
    "spain", 96, 8, 0.9, 0.8, None, None, None, 0.0, None, None, None, None, None, True, False, False, False
)


def group(ratio, q, *, cannot=False, gid="maghreb", bound=None):
    """A compared group; ``bound``: its non-inferiority lower bound (None: not tested)."""
    return replace(
        REF,
        id=gid,
        impact_ratio=ratio,
        q_value=q,
        p_value=q,
        min_p=0.03,
        is_reference=False,
        cannot_reach_significance=cannot,
        ni_lower=bound,
        ni_p_value=None if bound is None else (0.01 if bound >= 0.8 else 0.4),
    )


def condition(cid, *groups):
    return Condition(
        cid, None, 0.9, 100, (AttributeDisparity("origin", "name", "spain", True, 36, (REF, *groups)),)
    )


def behaviour(soft_group, ablations=(), readings=(), positions=()):
    s = condition("soft_prompt", soft_group)
    found = gaps(s, condition("no_prompt", group(1.0, 0.9)))
    open_ = unresolved(s)
    risk, verdict = risk_and_verdict(s, found, open_)
    return BehaviourResult(
        "hiring-es",
        "1.0.0",
        "0" * 64,
        "x",
        "es",
        48,
        (" sí", " no"),
        4224,
        2304,
        (s,),
        "t",
        "c",
        "f",
        0,
        2000,
        risk,
        found,
        verdict,
        {"en": "", "es": ""},
        readings,
        ablations,
        positions,
        unresolved=open_,
    )


def ablation(position, active):
    return Ablation(
        position, "mean", None, "origin", (), 0.01 if active else 0.6, 0.02 if active else 0.7, active
    )


def with_behaviour_result(result, b):
    """The synthetic result with a behavioural check attached, risks combined as the pipeline does."""
    risks = escalate({p.index: p.risk for p in result.positions}, b)
    positions = tuple(replace(p, risk=risks[p.index]) for p in result.positions)
    combined = replace(result, behaviour=b, positions=positions, summary=with_behaviour(result.summary, b))
    return explained(combined)  # reasons and scope as the pipeline's assemble() computes them


def result_with_behaviour(b):
    """The report words' synthetic result with the behavioural check ``b``."""
    return with_behaviour_result(result(REPORT_WORDS, MIX), b)


def bias_audit_tables() -> tuple[CategoryTable, ...]:
    """A crossed table of the LL144 summary with one category under 2 % (excluded)."""
    return (
        CategoryTable(
            "origin x gender",
            ("origin", "gender"),
            "spain x female",
            (
                Category("spain x female", ("spain", "female"), 144, 4, 0.5, 0.9, 1.0, False, False),
                Category("maghreb x female", ("maghreb", "female"), 144, 4, 0.49, 0.45, 0.5, False, False),
                Category("roma x male", ("roma", "male"), 4, 1, 0.01, 0.25, None, True, True),
            ),
            1,
            0,
        ),
    )


CALIBRATION = Calibration(500, 22, 0.044, 0.05, 0.009747, False, "placebo splits")
