"""Can the model describe a soft prompt in its own words? A Patchscopes/InSPEcT-style measurement on the
demo adapters, and the behavioural check of each description.

Usage::

    python benchmarks/probe_description.py [--reports reports/sample] [--texts 572] [--tokens 16]

Per demo adapter (Gemma 3 270M, ``hiring-es``): the soft prompt is placed in front of a description
template (``[prompt][<bos> template]``, as the runner places a prompt before a text) and the model
continues greedily for ``--tokens`` tokens; each description is then run as a text prompt on a seeded
sample of the suite's texts (stratified by template label), and its
decisions are compared with the soft prompt's there, beside the best projection's (its text read from the
demo report in ``--reports``) on the same texts. Prints one block per adapter. This is what
docs/behaviour.md cites for leaving the description out of the tool.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from audit.behaviour.assemble import probes
from audit.behaviour.faithful import key, stratified_sample
from audit.behaviour.lm import load_causal_lm
from audit.behaviour.runner import _cache_keyword, answer_log_odds, text_prompt
from audit.behaviour.suite import check_answers, load_suite
from audit.demo.run import DEMO_MODEL, DEMO_SUITE, demo_adapters
from audit.inputs.models import resolve_model
from audit.inputs.prompts import load_prompt

TEMPLATES = (  # the description's frame: the prompt first, then a request to restate it
    " La instrucción anterior, dicha con otras palabras:",
    " En resumen, la tarea de arriba es",
    " The instruction above, in plain words:",
)


def describe(lm, prompt: torch.Tensor, template: str, n_tokens: int) -> str:
    """Greedy continuation of ``[prompt][<bos> template]``.

    Args:
        prompt: (n_virtual, d_model) rows in the scaled embedding space.
    """
    from transformers import DynamicCache

    ids = list(lm.tokenizer(template, add_special_tokens=True)["input_ids"])
    embeds = torch.cat([prompt, lm.embed(torch.tensor(ids))])[None]
    cache, out = DynamicCache(config=lm.model.config), []
    past = 0
    with torch.inference_mode():
        for _ in range(n_tokens):
            n = embeds.shape[1]
            hidden = lm.body(
                inputs_embeds=embeds,
                attention_mask=torch.ones(1, past + n, dtype=torch.long),
                position_ids=torch.arange(past, past + n)[None],
                use_cache=True,
                **{_cache_keyword(lm.body): cache},
            ).last_hidden_state
            past += n
            token = int(lm.logits(hidden[:, -1]).argmax(-1))
            if token == lm.tokenizer.eos_token_id or token == 106:  # <end_of_turn> on Gemma 3
                break
            out.append(token)
            embeds = lm.embed(torch.tensor([[token]]))
    return lm.tokenizer.decode(out, skip_special_tokens=True).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", default="reports/sample", help="the demo reports (best projections)")
    parser.add_argument("--texts", type=int, default=572, help="suite texts in the sample (1/4 of hiring-es)")
    parser.add_argument("--tokens", type=int, default=16, help="tokens generated per description")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    lm = load_causal_lm(resolve_model(DEMO_MODEL), progress=False)
    suite = load_suite(DEMO_SUITE)
    probe = probes(suite)
    ans = check_answers(suite, lambda s: lm.tokenizer(s, add_special_tokens=False)["input_ids"])
    answers = (ans.positive, ans.negative)
    for adapter in demo_adapters():
        prompt = load_prompt(adapter.path).vectors.float()
        report = json.loads((Path(args.reports) / f"{adapter.name}.json").read_text())["behaviour"]
        best = max(report["readings"], key=lambda r: (r["agreement"], -r["kl"]))
        rows = stratified_sample(probe.labels, np.zeros(len(probe.texts)), args.texts, args.seed)
        texts = [probe.texts[int(r)] for r in rows]
        soft = answer_log_odds(lm, prompt, texts, answers)

        def scored(text: str, soft=soft, texts=texts) -> str:
            lo = answer_log_odds(lm, text_prompt(lm, text), texts, answers)
            agree, neg_kl = key(soft, lo)
            return f"agreement {agree / len(texts):.3f}, KL {-neg_kl:.3f}, says yes {np.mean(lo > 0):.3f}"

        print(
            f"{adapter.name}: soft prompt says yes on {np.mean(soft > 0):.3f} of {len(texts)} sampled texts"
        )
        print(f"  best projection ({'/'.join(best['methods'])}) {best['text']!r}: {scored(best['text'])}")
        for template in TEMPLATES:
            text = describe(lm, prompt, template, args.tokens)
            print(
                f"  description after {template!r}: {text!r}: {scored(text) if text else 'empty'}", flush=True
            )


if __name__ == "__main__":
    main()
