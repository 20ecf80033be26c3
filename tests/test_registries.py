"""Extending through the registries alone (docs/extending.md): a report format and a model format added by
one registration each appear in --help, single scans and batches, with no other edit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from audit.cli import main
from audit.errors import AuditInputError
from audit.inputs import formats as model_formats
from audit.inputs.models import ModelFiles, ModelFormat
from audit.inputs.prompts import sha256_file
from audit.inputs.tokens import load_tokenizer_dir
from audit.inputs.vocab import vocabulary_from_tensors
from audit.report import writers
from tests.helpers import WORDS, orthogonal_rows, word_level_tokenizer


def _toy_report(result, lang: str) -> str:
    """A one-line report: the risk and the top-1 reading under l2."""
    return f"{result.summary.risk.label} {result.projected_text.get('l2', '')}\n"


def _locate_npy_model(path: Path) -> Path | None:
    return path if path.is_dir() and (path / "rows.npy").is_file() else None


def _load_npy_model(files: ModelFiles, *, allow_pickle: bool = False, progress: bool = True):
    rows = torch.from_numpy(np.load(files.path / "rows.npy", allow_pickle=False))
    return vocabulary_from_tensors(rows, load_tokenizer_dir(files.path), spec=files.spec, model_type="npy")


def _no_causal_lm(files: ModelFiles) -> None:
    raise AuditInputError(
        f"{files.spec} holds embedding rows only", "the geometry scan runs without --behaviour"
    )


NPY_FORMAT = ModelFormat(
    kind="npy-rows",
    description="folder with rows.npy (the embedding matrix) and tokenizer files",
    locate=_locate_npy_model,
    load_vocabulary=_load_npy_model,
    load_causal_lm=lambda files, *, progress: _no_causal_lm(files),
    check_causal=_no_causal_lm,
    weights_key=lambda files: sha256_file(files.path / "rows.npy"),
    parameters=lambda files: _no_causal_lm(files),
)


@pytest.fixture()
def registered():
    """The toy report format and the npy model format, registered for one test and removed after."""
    writers.register(
        writers.AuditFormat("toy", ".toy", "Toy", "write a one-line toy report here", _toy_report)
    )
    model_formats.register(NPY_FORMAT)
    yield
    writers.AUDIT_FORMATS.pop("toy")
    model_formats.FORMATS.pop("npy-rows")


@pytest.fixture()
def npy_world(tmp_path) -> tuple[Path, list[Path]]:
    """A model in the new format (orthonormal rows, a word-level tokenizer) and two prompts: one equal to
    the row of 'casa', one to the row of 'perro'."""
    model = tmp_path / "npy-model"
    model.mkdir()
    rows = orthogonal_rows(len(WORDS) + 1, 16)
    np.save(model / "rows.npy", rows.numpy())
    word_level_tokenizer(WORDS).save_pretrained(str(model))
    prompts = []
    for word in ("casa", "perro"):
        path = tmp_path / f"{word}.npy"
        np.save(path, rows[[WORDS.index(word)] * 2].numpy())
        prompts.append(path)
    return model, prompts


def test_a_registered_report_format_is_an_option_of_scan_and_render(registered, capsys):
    for command in ("scan", "render"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "--toy" in out and "write a one-line toy report here" in out


def test_registered_formats_run_in_a_single_scan(registered, npy_world, tmp_path, capsys):
    model, (casa, _) = npy_world
    out = tmp_path / "casa.toy"
    code = main(
        ["scan", str(casa), "--model", str(model), "--toy", str(out), "--json", str(tmp_path / "a.json")]
    )
    assert code == 0, capsys.readouterr().err
    assert out.read_text().split()[1:] == ["casa", "casa"]  # read back through the new model format
    assert json.loads((tmp_path / "a.json").read_text())["model"]["model_type"] == "npy"
    assert f"Toy: {out}" in capsys.readouterr().out


def test_registered_formats_run_in_a_batch(registered, npy_world, tmp_path, capsys):
    model, prompts = npy_world
    out = tmp_path / "batch"
    code = main(["scan", *map(str, prompts), "--model", str(model), "--out-dir", str(out), "--toy"])
    assert code == 0, capsys.readouterr().err
    assert (out / "casa.toy").read_text().split()[1:] == ["casa", "casa"]
    assert (out / "perro.toy").read_text().split()[1:] == ["perro", "perro"]
    assert {p.name for p in out.iterdir()} >= {"casa.json", "casa.html", "index.html", "summary.json"}


def test_without_registration_neither_format_exists(npy_world, tmp_path, capsys):
    model, (casa, _) = npy_world
    assert main(["scan", str(casa), "--model", str(model)]) == 2
    assert "is not a model this tool can read" in capsys.readouterr().err
    assert main(["scan", str(casa), "--toy", "x.toy"]) == 2


def test_a_format_name_is_registered_once(registered):
    with pytest.raises(ValueError, match="already registered"):
        writers.register(writers.AuditFormat("toy", ".t", "T", "", _toy_report))
    with pytest.raises(ValueError, match="already registered"):
        model_formats.register(NPY_FORMAT)
