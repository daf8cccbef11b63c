"""SEMEION and QMNIST's writer series: verified loading, --predict's preparation, clear failures."""
from __future__ import annotations

import shutil

import pytest
import torch

import artifacts
import external
import main


@pytest.fixture
def external_root(mnist_root):
    root = mnist_root
    if not (root / external.SEMEION_FILE).is_file() or not (root / external.QMNIST_TEST_FILE).is_file():
        pytest.skip(f"external-data test skipped: {root} lacks {external.SEMEION_FILE} or {external.QMNIST_TEST_FILE}")
    return root


def test_semeion_loads_1593_digits_of_every_class_and_prepares_them_like_predict(external_root) -> None:
    images, labels = external.load_semeion(external_root)
    assert images.shape == (1593, 16, 16) and set(images.unique().tolist()) == {0.0, 1.0}
    assert torch.bincount(labels, minlength=10).min() > 150
    prepared = external.as_scans(images[:20])
    assert prepared.shape == (20, 28, 28) and prepared[:, 0].max() == 0 and prepared.amax((1, 2)).min() > 0.9


def test_the_writer_series_split_mnist_test_into_4999_census_and_5001_student_digits(external_root) -> None:
    series = external.test_series(external_root)
    assert series.shape == (10_000,) and int((series == 0).sum()) == 4999 and int((series == 4).sum()) == 5001


def test_a_missing_or_altered_external_file_is_named_and_exits_2(external_root, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(artifacts, "RUNS_ROOT", tmp_path / "runs")  # the committed model 1, its record into runs/
    root = tmp_path / "data"
    shutil.copytree(external_root / "MNIST", root / "MNIST")
    code = main.main(["--model", "1", "--evaluate-external", "--data-dir", str(root)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and external.SEMEION_FILE in err[0] and "missing" in err[0]
    (root / "SEMEION").mkdir()
    (root / external.SEMEION_FILE).write_text("0 " * 266 + "\n")
    code = main.main(["--model", "1", "--evaluate-external", "--data-dir", str(root)])
    assert code == 2 and "checksum mismatch" in capsys.readouterr().err
