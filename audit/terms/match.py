"""Matching terms to a vocabulary: normalisation, the token-to-term index, coverage, the allow-list.

Matching rule (documented in the report): each vocabulary id is decoded with the tokenizer; its surface
(leading space / ``▁`` / ``Ġ`` / ``##`` removed) is NFC-normalised and casefolded, accents stripped where
the tokenizer strips them; a token matches a term when that equals one of the term's normalised forms
(a whole-token hit). A hit on a token that does not start a word (a sub-word piece) is marked
``word_start = false`` and weighs one severity level less. Forms that no single token represents are
multi-token forms: they give a *partial* hit at a position when all their pieces of 3+ characters
appear together in one method's neighbour set, or when the form's first, word-start piece has 5+
characters and covers at least half of the form (``▁musul`` for ``musulmana``; single-word forms
only) and is a neighbour. Short all-caps forms (ALS, VIH) match case-sensitively where the tokenizer
keeps case.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from audit.cache import get_or_build
from audit.records import CoverageRow
from audit.terms.schema import LOW_COVERAGE, PREFIX_MIN_CHARS, AllowRule, Term, Wordlists


def normalize(text: str, *, strip_accents: bool = False) -> str:
    """NFC + casefold (+ accent stripping for tokenizers that strip accents)."""
    text = unicodedata.normalize("NFC", text).casefold().strip()
    if strip_accents:
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        text = unicodedata.normalize("NFC", text)
    return text


def token_word(surface: str, piece: str) -> str:
    """The word a token spells: its decoded surface without the word-boundary marker."""
    word = surface
    if piece.startswith("##") and word.startswith("##"):
        word = word[2:]
    return word.strip().lstrip("▁Ġ")


# ---------------------------------------------------------------------------------------------
# Loading and validation (I/O)


@dataclass(frozen=True)
class TermIndex:
    """Which vocabulary ids spell which terms.

    Attributes:
        token_terms: token id -> sorted term ids it spells as a whole token.
        multi: term id -> tuples of token ids (one per multi-token form's distinctive pieces).
        prefix: token id -> term ids whose multi-token form starts with this word-start piece of
            PREFIX_MIN_CHARS+ characters covering at least half of the form (``▁musul`` -> musulmana).
        covered: term id -> True when some form is a single token.
    """

    token_terms: dict[int, tuple[str, ...]]
    multi: dict[str, tuple[tuple[int, ...], ...]]
    prefix: dict[int, tuple[str, ...]]
    covered: dict[str, bool]


def is_acronym(form: str) -> bool:
    """All-caps short forms (ALS, VIH, TDAH, LGTBI): matched case-sensitively where the tokenizer keeps
    case, so that 'als' (German 'as') is not read as ALS."""
    letters = [c for c in form if c.isalpha()]
    return 2 <= len(letters) <= 6 and " " not in form and all(c.isupper() for c in letters)


def _form_key(form: str, strip: bool, cased: bool) -> str:
    if cased and is_acronym(form):
        return "=" + unicodedata.normalize("NFC", form)  # exact-case key
    return normalize(form, strip_accents=strip)


def _form_keys(forms: tuple[str, ...], strip: bool, cased: bool) -> set[str]:
    return {_form_key(f, strip, cased) for f in forms}


INDEX_VERSION = "4"


def build_index(vocab, lists: Wordlists) -> TermIndex:
    """Builds (or loads from the cache) the token-to-term index for ``vocab``."""
    strip = bool(vocab.strips_accents)
    key = f"{vocab.sha256}|{lists.sha256}|{strip}|{vocab.uncased}|v{INDEX_VERSION}"
    return get_or_build(
        "term-index",
        hashlib.sha256(key.encode()).hexdigest(),
        build=lambda: _compute_index(vocab, lists, strip),
        save=_save_index,
        load=_load_index,
        suffix=".json",
    )


def _save_index(index: TermIndex, path: Path) -> None:
    payload = {
        "token_terms": {str(k): list(v) for k, v in sorted(index.token_terms.items())},
        "multi": {k: [list(ids) for ids in v] for k, v in sorted(index.multi.items())},
        "prefix": {str(k): list(v) for k, v in sorted(index.prefix.items())},
        "covered": dict(sorted(index.covered.items())),
    }
    path.write_bytes(json.dumps(payload, sort_keys=True).encode())


def _load_index(path: Path) -> TermIndex:
    data = json.loads(path.read_text(encoding="utf-8"))
    return TermIndex(
        {int(k): tuple(v) for k, v in data["token_terms"].items()},
        {k: tuple(tuple(ids) for ids in v) for k, v in data["multi"].items()},
        {int(k): tuple(v) for k, v in data["prefix"].items()},
        data["covered"],
    )


def _compute_index(vocab, lists: Wordlists, strip: bool) -> TermIndex:
    cased = not vocab.uncased
    form_to_terms: dict[str, set[str]] = defaultdict(set)
    for term in lists.terms:
        for key in _form_keys(term.forms, strip, cased):
            form_to_terms[key].add(term.id)
    token_terms: dict[int, tuple[str, ...]] = {}
    word_to_ids: dict[str, list[int]] = defaultdict(list)
    pieces, surfaces, special = vocab.tokens.pieces, vocab.tokens.surfaces, vocab.tokens.special
    for tok_id in range(vocab.size):
        if special[tok_id]:
            continue
        raw = token_word(surfaces[tok_id], pieces[tok_id])
        word = normalize(raw, strip_accents=strip)
        if not word:
            continue
        exact = "=" + unicodedata.normalize("NFC", raw)
        word_to_ids[word].append(tok_id)
        word_to_ids[exact].append(tok_id)
        hit = form_to_terms.get(word, set()) | form_to_terms.get(exact, set())
        if hit:
            token_terms[tok_id] = tuple(sorted(hit))
    covered: dict[str, bool] = {}
    multi: dict[str, tuple[tuple[int, ...], ...]] = {}
    prefix: dict[int, set[str]] = defaultdict(set)
    # Pieces that carry no word: [UNK] (an unknown word tokenizes to it), <bos>, [CLS], ...
    control = set(getattr(vocab.tokenizer, "all_special_ids", []) or [])
    for term in lists.terms:
        keys = _form_keys(term.forms, strip, cased)
        covered[term.id] = any(k in word_to_ids for k in keys)
        if covered[term.id]:
            continue
        combos = set()
        for form in term.forms:
            ids = vocab.tokenizer(" " + form, add_special_tokens=False)["input_ids"]
            distinctive = tuple(
                sorted(
                    {
                        i
                        for i in ids
                        if 0 <= i < vocab.size
                        and len(token_word(surfaces[i], pieces[i])) >= 3
                        and not special[i]
                        and i not in control
                    }
                )
            )
            if len(distinctive) >= 2:
                combos.add(distinctive)
            first = ids[0] if ids else -1
            # A prefix piece stands for one word: not the first word of a phrase ('clase' of 'clase alta').
            usable = 0 <= first < vocab.size and first not in control and not special[first]
            usable = usable and " " not in form.strip() and not is_acronym(form)
            if usable and vocab.tokens.word_start[first]:
                head = normalize(token_word(surfaces[first], pieces[first]), strip_accents=strip)
                key = normalize(form, strip_accents=strip)
                if len(head) >= PREFIX_MIN_CHARS and key.startswith(head) and 2 * len(head) >= len(key):
                    prefix[first].add(term.id)
        if combos:
            multi[term.id] = tuple(sorted(combos))
    return TermIndex(token_terms, multi, {k: tuple(sorted(v)) for k, v in prefix.items()}, covered)


def coverage(lists: Wordlists, index: TermIndex) -> tuple[CoverageRow, ...]:
    """Per (language, category): how many terms the vocabulary spells as a whole token."""
    groups: dict[tuple[str, str], list[Term]] = defaultdict(list)
    for term in lists.terms:
        groups[(term.language, term.category)].append(term)
    rows = []
    for (language, category), terms in sorted(groups.items()):
        missing = tuple(sorted(t.lemma for t in terms if not index.covered.get(t.id)))
        n_covered = len(terms) - len(missing)
        low = n_covered < LOW_COVERAGE * len(terms)
        rows.append(CoverageRow(language, category, len(terms), n_covered, missing, low))
    return tuple(rows)


def allow_reason(
    rules: tuple[AllowRule, ...], term: Term, token_word_norm: str, model_spec: str
) -> str | None:
    """The reason of the first allow rule that suppresses this hit, or None."""
    for rule in rules:
        if rule.language != term.language:
            continue
        if rule.category and rule.category != term.category:
            continue
        if rule.tokenizer and rule.tokenizer != model_spec:
            continue
        form = normalize(rule.form)
        if form in (token_word_norm, normalize(term.lemma)):
            return rule.reason
    return None
