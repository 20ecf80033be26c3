"""Behaviour suites: the packaged suites load and render as designed; a bad file is an error at its line."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from importlib.resources import files as resource_files
from pathlib import Path

import pytest

from audit.behaviour.suite import (
    LABELS,
    AnswerIds,
    SuiteError,
    check_answers,
    load_suite,
    packaged_suites,
    render,
    unique_texts,
)
from audit.errors import AuditInputError

NAME_ATTRIBUTE = {"hiring-es": "origin", "hiring-en": "race_ethnicity"}
NAME_GROUPS = {
    "hiring-es": ("spain", "maghreb", "latam", "roma", "romania"),
    "hiring-en": ("white", "black", "hispanic", "asian"),
}
REFERENCE = {"hiring-es": "spain", "hiring-en": "white"}
REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------
# The packaged suites


def test_packaged_suites_are_listed():
    assert packaged_suites() == ("hiring-en", "hiring-es")


@pytest.mark.parametrize("suite_id", ["hiring-es", "hiring-en"])
def test_packaged_suite_loads_with_its_header_and_hash(suite_id):
    suite = load_suite(suite_id)
    raw = (resource_files("audit.behaviour.suites") / f"{suite_id}.toml").read_bytes()
    assert (suite.id, suite.version, suite.language) == (suite_id, "2.0.0", suite_id[-2:])
    assert suite.packaged and suite.path == f"audit/behaviour/suites/{suite_id}.toml"
    assert suite.sha256 == hashlib.sha256(raw).hexdigest()
    assert "proxies" in suite.description  # names stand for perceived groups, and the suite says so
    assert suite.answers.positive == {"hiring-es": " sí", "hiring-en": " yes"}[suite_id]
    assert suite.answers.negative == " no"
    assert dict(suite.slot_defaults) == {
        "name": {"hiring-es": "Lucía García", "hiring-en": "Emily Walsh"}[suite_id],
        "age": "32",
    }


@pytest.mark.parametrize("suite_id", ["hiring-es", "hiring-en"])
def test_packaged_templates_are_labelled_resume_screens(suite_id):
    suite = load_suite(suite_id)
    assert suite.n_templates == 16  # 24 names x 16 templates: docs/behaviour.md, "Suite design"
    labels = [t.label for t in suite.templates]
    assert set(labels) <= set(LABELS)
    assert (labels.count("positive"), labels.count("negative")) == (12, 4)
    assert [t.index for t in suite.templates] == list(range(suite.n_templates))
    question = {"hiring-es": "¿Cumple los requisitos? Respuesta:", "hiring-en": "Answer:"}[suite_id]
    for template in suite.templates:
        assert template.slots == ("name", "age")
        first, cv, last = template.text.split("\n")
        assert first.startswith(("Requisitos: ", "Requirements: ")) and cv.startswith("CV: ")
        assert last.endswith(question)
        # the varying slots close the CV: little text follows the first one
        assert len(template.text) - template.text.index("{name}") < 80


@pytest.mark.parametrize("suite_id", ["hiring-es", "hiring-en"])
def test_the_templates_are_every_third_cv_of_version_1(suite_id):
    """Version 2.0.0 keeps templates 0, 3, ..., 45 of 1.0.0's 48, verbatim (kept for the design study)."""
    v1 = (REPO / "benchmarks" / "data" / f"{suite_id}-templates-v1.toml").read_text(encoding="utf-8")
    import tomllib

    old = tomllib.loads(v1)["templates"]
    assert len(old) == 48
    assert [(t.text, t.label) for t in load_suite(suite_id).templates] == [
        (t["text"], t["label"]) for t in old[::3]
    ]


def _person_names(value) -> set[str]:
    """Every string with a space under ``value`` (dicts and lists walked): the names of a training file."""
    if isinstance(value, str):
        return {value} if " " in value.strip() else set()
    if isinstance(value, dict):
        return set().union(*(_person_names(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_person_names(v) for v in value)) if value else set()
    return set()


def _training_names() -> set[str]:
    import json

    found = set()
    for path in sorted((REPO / "audit" / "demo" / "adapters").glob("*/training.json")):
        found |= _person_names(json.loads(path.read_text(encoding="utf-8")).get("names", {}))
    return found


def _suite_names(suite_id: str) -> set[str]:
    return {
        v for a in load_suite(suite_id).attributes if a.slot == "name" for g in a.groups for v in g.values
    }


def test_the_suites_share_no_name_with_the_demo_adapters_training_or_held_out_names():
    training = _training_names()
    assert len(training) >= 100  # namebias: 20 training and 8 held-out names in each of 5 groups
    for suite_id in ("hiring-es", "hiring-en"):
        assert not _suite_names(suite_id) & training, suite_id
    # the collector finds a name however deep it is nested, and only strings with a space
    assert _person_names({"train": {"g": ["Ana Pérez", "x"]}, "heldout": [["Jo Li"]]}) == {
        "Ana Pérez",
        "Jo Li",
    }


def test_the_two_packaged_suites_hold_the_same_cvs_and_labels():
    es, en = load_suite("hiring-es"), load_suite("hiring-en")
    assert [t.label for t in es.templates] == [t.label for t in en.templates]
    for a, b in zip(es.templates, en.templates):
        years = [w for w in a.text.split() if w.isdigit()]
        assert years == [w for w in b.text.split() if w.isdigit()]


@pytest.mark.parametrize("suite_id", ["hiring-es", "hiring-en"])
def test_packaged_name_groups_are_balanced_and_gender_reuses_them(suite_id):
    suite = load_suite(suite_id)
    origin = suite.attribute(NAME_ATTRIBUTE[suite_id])
    gender, age = suite.attribute("gender"), suite.attribute("age")
    assert [a.id for a in suite.attributes] == [origin.id, "gender", "age"]
    assert origin.slot == gender.slot == "name" and age.slot == "age"
    assert tuple(g.id for g in origin.groups) == NAME_GROUPS[suite_id]
    assert (origin.reference, gender.reference, age.reference) == (REFERENCE[suite_id], None, "under_35")
    assert all(len(g.values) == 24 for g in origin.groups)  # names are the unit of inference
    names = origin.values
    assert len(set(names)) == len(names) and all(len(n.split()) >= 2 for n in names)  # full names
    # each origin group lists 12 female then 12 male names; gender is exactly that split, in order
    assert [g.id for g in gender.groups] == ["female", "male"]
    female, male = (g.values for g in gender.groups)
    assert female == tuple(v for g in origin.groups for v in g.values[:12])
    assert male == tuple(v for g in origin.groups for v in g.values[12:])
    under, over = (tuple(int(v) for v in g.values) for g in age.groups)
    assert under == tuple(range(23, 35)) and over == tuple(range(51, 63))  # 12 values a group, apart
    assert suite.default("name") in female and suite.default("name") in origin.groups[0].values


@pytest.mark.parametrize(
    ("suite_id", "n_renderings", "n_distinct"),
    # origin + gender + age, each over all 16 templates; gender repeats the origin texts, and the age
    # rendering at the default age (32) repeats the default name's origin rendering
    [
        ("hiring-es", 16 * (120 + 120 + 24), 16 * (120 + 24 - 1)),
        ("hiring-en", 16 * (96 + 96 + 24), 16 * (96 + 24 - 1)),
    ],
)
def test_packaged_render_counts(suite_id, n_renderings, n_distinct):
    suite = load_suite(suite_id)
    renderings = render(suite)
    expected = sum(len(suite.templates_for(a)) * len(a.values) for a in suite.attributes)
    assert len(renderings) == expected == n_renderings
    texts = unique_texts(renderings)
    assert len(texts) == n_distinct
    by_attribute = {a.id: {r.text for r in renderings if r.attribute == a.id} for a in suite.attributes}
    assert by_attribute["gender"] == by_attribute[NAME_ATTRIBUTE[suite_id]]  # no extra forward passes


def test_render_order_is_template_attribute_group_value_and_deterministic():
    suite = load_suite("hiring-es")
    renderings = render(suite)
    assert renderings == render(load_suite("hiring-es"))
    attr_pos = {a.id: i for i, a in enumerate(suite.attributes)}
    group_pos = {(a.id, g.id): i for a in suite.attributes for i, g in enumerate(a.groups)}

    def key(r):
        group = suite.attribute(r.attribute).groups[group_pos[(r.attribute, r.group)]]
        return (
            r.template,
            attr_pos[r.attribute],
            group_pos[(r.attribute, r.group)],
            group.values.index(r.value),
        )

    assert list(renderings) == sorted(renderings, key=key)
    first = renderings[0]
    assert (first.template, first.attribute, first.group, first.value) == (
        0,
        "origin",
        "spain",
        "Lucía García",
    )


def test_a_rendering_changes_only_its_slot():
    suite = load_suite("hiring-en")
    template = suite.templates[5]
    for r in render(suite):
        if r.template != 5:
            continue
        other = "age" if r.attribute != "age" else "name"
        values = {other: suite.default(other), "name" if r.attribute != "age" else "age": r.value}
        assert r.text == template.fill(values)
        assert r.text.count(r.value) >= 1 and "{" not in r.text


def test_suite_module_imports_no_heavy_library():
    code = (
        "import sys, audit.behaviour.suite as s; s.render(s.load_suite('hiring-es')); "
        "print(sorted(m for m in ('torch', 'numpy', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# Resolving a spec


def test_load_by_path_equals_packaged(tmp_path):
    raw = (resource_files("audit.behaviour.suites") / "hiring-en.toml").read_bytes()
    path = tmp_path / "copy.toml"
    path.write_bytes(raw)
    mine, packaged = load_suite(path), load_suite("hiring-en")
    assert mine.templates == packaged.templates and mine.attributes == packaged.attributes
    assert (mine.path, mine.packaged, mine.sha256) == (str(path), False, packaged.sha256)
    assert load_suite(str(path)).templates == packaged.templates


def test_unknown_id_lists_the_packaged_suites():
    with pytest.raises(AuditInputError) as err:
        load_suite("hiring-fr")
    assert "unknown behaviour suite 'hiring-fr'" in str(err.value)
    assert "hiring-en, hiring-es" in str(err.value)


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(AuditInputError, match="does not exist"):
        load_suite(tmp_path / "nope.toml")


# ---------------------------------------------------------------------------------------------
# A small user suite, and every way to get it wrong

BASE = """\
schema = 1
id = "tiny"
version = "0.1.0"
language = "en"
description = "test"

[answers]
positive = " yes"
negative = " no"

[slots]
name = "Ann Lee"
age = "30"

[attributes.gender]
slot = "name"
reference = "female"

[attributes.gender.groups]
female = ["Ann Lee", "Mary Poe"]
male = ["Bob Ray", "Tom Fox"]

[attributes.age]
slot = "age"

[attributes.age.groups]
young = ["25", "28"]
old = ["55", "60"]

[[templates]]
text = "CV one. Name: {name}. Age: {age}. Hire? Answer:"
label = "positive"

[[templates]]
text = "CV two. Name: {name}. Age: {age}. Hire? Answer:"
label = "negative"
"""


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_small_user_suite_loads_and_renders(tmp_path):
    suite = load_suite(write(tmp_path, BASE))
    assert suite.n_templates == 2 and [t.line for t in suite.templates] == [31, 35]
    assert (suite.answers.positive_line, suite.answers.negative_line) == (8, 9)
    renderings = render(suite)
    assert len(renderings) == 2 * 4 + 2 * 4 and len(unique_texts(renderings)) == 16
    assert renderings[0].text == "CV one. Name: Ann Lee. Age: 30. Hire? Answer:"
    assert renderings[4].text == "CV one. Name: Ann Lee. Age: 25. Hire? Answer:"


def test_attributes_sharing_a_slot_render_shared_texts_once(tmp_path):
    origin = '[attributes.origin]\nslot = "name"\n\n[attributes.origin.groups]\na = ["Ann Lee", "Bob Ray"]\n'
    origin += 'b = ["Mary Poe", "Tom Fox"]\n\n[attributes.age]'
    suite = load_suite(write(tmp_path, edit("[attributes.age]", origin)))
    renderings = render(suite)
    assert len(renderings) == 2 * (4 + 4 + 4)
    assert len(unique_texts(renderings)) == 2 * (4 + 4)


def test_single_slot_templates_need_no_defaults_and_braces_can_be_literal(tmp_path):
    text = BASE.split("[slots]")[0] + (
        '[attributes.gender]\nslot = "name"\n\n[attributes.gender.groups]\n'
        'female = ["Ann"]\nmale = ["Bob"]\n\n[[templates]]\n'
        'text = "Data {{\\"x\\": 1}}. Name: {name}. Answer:"\n'
    )
    suite = load_suite(write(tmp_path, text))
    assert [r.text for r in render(suite)] == [
        'Data {"x": 1}. Name: Ann. Answer:',
        'Data {"x": 1}. Name: Bob. Answer:',
    ]
    assert suite.templates[0].label is None and suite.slot_defaults == ()


MALE_MULTILINE = 'male = [\n    "Bob Ray",\n    "Tom Fox",\n    "Ann Lee",\n]'
TEMPLATES_START = BASE.index("[[templates]]")
BAD_SUITES = {
    # name: (file text, line, text the message must contain)
    "toml syntax": (edit('name = "Ann Lee"', 'name = "Ann Lee'), 12, "malformed TOML"),
    "toml bad value": (edit('version = "0.1.0"', "version = 0.1.0"), 3, "malformed TOML"),
    "schema wrong": (edit("schema = 1", "schema = 2"), 1, "schema 2 is not supported"),
    "schema not an int": (edit("schema = 1", 'schema = "1"'), 1, "schema '1' is not supported"),
    "schema missing": (edit("schema = 1\n", ""), 1, "missing 'schema'"),
    "id missing": (edit('id = "tiny"\n', ""), 1, "missing 'id'"),
    "version missing": (edit('version = "0.1.0"\n', ""), 1, "missing 'version'"),
    "language missing": (edit('language = "en"\n', ""), 1, "missing 'language'"),
    "language invalid": (edit('language = "en"', 'language = "english"'), 4, "language 'english'"),
    "unknown top-level key": (
        edit('description = "test"', 'description = "test"\nauthor = "me"'),
        6,
        "'author'",
    ),
    "misspelt table": (edit("[answers]", "[answer]"), 7, "did you mean 'answers'"),
    "answers missing": (edit('[answers]\npositive = " yes"\nnegative = " no"\n', ""), 1, "missing [answers]"),
    "answer missing": (edit('negative = " no"\n', ""), 7, "[answers] lacks 'negative'"),
    "answer empty": (edit('positive = " yes"', 'positive = ""'), 8, "positive answer '' is empty"),
    "answer blank": (edit('negative = " no"', 'negative = "  "'), 9, "negative answer '  ' is empty"),
    "answers equal": (edit('negative = " no"', 'negative = " yes"'), 9, "answers are equal"),
    "attribute slot in no template": (
        edit('slot = "age"', 'slot = "years"'),
        24,
        "no template uses its slot",
    ),
    "unknown slot in template": (
        edit("CV one. Name", "CV {city}. Name"),
        31,
        "uses {city}, which is neither",
    ),
    "slot without default": (edit('age = "30"\n', ""), 30, "uses {age} with no default"),
    "slot default not a string": (edit('age = "30"', "age = 30"), 13, 'quote it: age = "30"'),
    "unused slot default": (edit('age = "30"', 'age = "30"\ncity = "Paris"'), 14, "slot 'city' in [slots]"),
    "empty group": (edit('young = ["25", "28"]', "young = []"), 27, "group 'young' is empty"),
    "one group": (edit('old = ["55", "60"]\n', ""), 26, "has 1 group(s)"),
    "value not a string": (edit('young = ["25", "28"]', "young = [25, 28]"), 27, "holds 25"),
    "value repeated across groups": (
        edit('old = ["55", "60"]', 'old = ["55", "25"]'),
        28,
        "'25' is repeated",
    ),
    "value repeated in a group": (
        edit('young = ["25", "28"]', 'young = ["25", "25"]'),
        27,
        "'25' is repeated",
    ),
    "value repeated on a continuation line": (
        edit('male = ["Bob Ray", "Tom Fox"]', MALE_MULTILINE),
        24,
        "'Ann Lee' is repeated (also in group 'female')",
    ),
    "value repeated later in a multi-line group": (
        edit('male = ["Bob Ray", "Tom Fox"]', MALE_MULTILINE.replace("Ann Lee", "Bob Ray")),
        24,
        "'Bob Ray' is repeated (also in group 'male')",
    ),
    "reference names no group": (edit('reference = "female"', 'reference = "women"'), 17, "names no group"),
    "unknown attribute key": (edit('slot = "age"', 'slot = "age"\nrefrence = "young"'), 25, "'refrence'"),
    "no groups": (
        edit('[attributes.age.groups]\nyoung = ["25", "28"]\nold = ["55", "60"]\n', ""),
        23,
        "no groups",
    ),
    "no attributes": (
        BASE[: BASE.index("[attributes.gender]")] + BASE[TEMPLATES_START:],
        1,
        "no [attributes",
    ),
    "no templates": (BASE[:TEMPLATES_START], 1, "no [[templates]]"),
    "duplicate template": (
        edit("CV two. Name", "CV one. Name"),
        35,
        "template #2 repeats the template on line 31",
    ),
    "label invalid": (edit('label = "negative"', 'label = "no"'), 36, "label 'no' is not valid"),
    "unknown template key": (edit('label = "positive"', 'lable = "positive"'), 32, "did you mean 'label'"),
    "template without attribute slot": (
        edit("CV one. Name: {name}. Age: {age}.", "CV one."),
        31,
        "uses no attribute's slot",
    ),
    "placeholder with a format spec": (
        edit("CV one. Name: {name}.", "CV one. Name: {name:>9}."),
        31,
        "{name:>9}",
    ),
    "positional placeholder": (edit("CV one.", "CV {0}."), 31, "placeholder {0} is not a slot"),
    "unbalanced brace": (edit("CV one.", "CV {one."), 31, "template #1"),
}


@pytest.mark.parametrize("case", sorted(BAD_SUITES))
def test_bad_suite_is_an_error_at_its_line(tmp_path, case):
    text, line, needle = BAD_SUITES[case]
    path = write(tmp_path, text)
    with pytest.raises(AuditInputError) as err:
        load_suite(path)
    message = str(err.value)
    assert f"{path}:{line}: " in message, message
    assert needle in message, message
    assert "\n" not in message  # the CLI prints one line


def test_every_problem_is_listed_in_line_order(tmp_path):
    text = edit('label = "negative"', 'label = "no"', edit('reference = "female"', 'reference = "women"'))
    text = edit("schema = 1\n", "", text)
    path = write(tmp_path, text)
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    lines = [int(p.split(":")[1]) for p in err.value.problems]
    assert lines == sorted(lines) and len(lines) == 3
    assert str(err.value).startswith("3 problems in behaviour suite: ")
    assert all(p.startswith(f"{path}:") and p.endswith(")") for p in err.value.problems)


def test_non_utf8_file_is_an_input_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(BASE.replace("Ann Lee", "Ana Núñez").encode("latin-1"))
    with pytest.raises(AuditInputError, match=r"latin1\.toml:1: not UTF-8"):
        load_suite(path)


# ---------------------------------------------------------------------------------------------
# Answers under a tokenizer


def uncased_wordpiece_tokenizer():
    """A real uncased, accent-stripping WordPiece tokenizer (as all-MiniLM-L6-v2's), on 9 pieces."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import PreTrainedTokenizerFast

    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "yes", "no", "si", "##s"]
    raw = BertWordPieceTokenizer({p: i for i, p in enumerate(pieces)}, lowercase=True, strip_accents=True)
    return PreTrainedTokenizerFast(tokenizer_object=raw._tokenizer, unk_token="[UNK]")


def test_check_answers_with_a_real_tokenizer():
    tok = uncased_wordpiece_tokenizer()

    def encode(s):
        return tok(s, add_special_tokens=False).input_ids

    ids = check_answers(load_suite("hiring-en"), encode)
    assert ids == AnswerIds(
        tuple(tok.convert_tokens_to_ids(["yes"])), tuple(tok.convert_tokens_to_ids(["no"]))
    )
    # uncased WordPiece strips the accent: " sí" is the piece "si", still distinct from "no"
    es = check_answers(load_suite("hiring-es"), encode)
    assert tok.convert_ids_to_tokens(list(es.positive)) == ["si"] and es.negative == ids.negative


def test_check_answers_rejects_a_tokenizer_that_cannot_tell_them_apart():
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = {"yes": 0, "[UNK]": 1}  # spells " yes"; " no" and " sí" are both unknown
    tok = Tokenizer(models.WordLevel(vocab=words, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()

    def encode(s):
        return tok.encode(s, add_special_tokens=False).ids

    assert check_answers(load_suite("hiring-en"), encode) == AnswerIds((0,), (1,))  # yes vs [UNK]
    with pytest.raises(
        AuditInputError, match=r"hiring-es\.toml:\d+: the answers ' sí' and ' no' encode to the same"
    ):
        check_answers(load_suite("hiring-es"), encode)  # [UNK] vs [UNK]


def test_check_answers_rejects_empty_and_prefix_encodings(tmp_path):
    suite = load_suite(write(tmp_path, BASE))
    with pytest.raises(AuditInputError, match=r"s\.toml:8: the positive answer ' yes' encodes to no tokens"):
        check_answers(suite, lambda s: [])
    with pytest.raises(AuditInputError, match="start the other's"):
        check_answers(suite, lambda s: [5, 6] if s == " yes" else [5])
    assert check_answers(suite, lambda s: [5, 6] if s == " yes" else [7]) == AnswerIds((5, 6), (7,))
