"""SEMEION, optdigits and QMNIST's writer series: verified loading, --predict's preparation, clear failures."""
from __future__ import annotations

import contextlib
import gzip
import importlib.util
import io
import json
import math
import shutil

import pytest
import torch

import data_utils
import main
from analysis import external
from core import artifacts
from digits import prepare


@pytest.fixture(scope="session")
def external_root(mnist_root):
    root = mnist_root
    if not (root / external.SEMEION_FILE).is_file() or not (root / external.QMNIST_TEST_FILE).is_file():
        pytest.skip(f"external-data test skipped: {root} lacks {external.SEMEION_FILE} or {external.QMNIST_TEST_FILE}")
    return root


def test_semeion_loads_1593_digits_of_every_class_and_prepares_them_like_predict(external_root) -> None:
    images, labels = external.load_semeion(external_root)
    assert images.shape == (1593, 16, 16) and set(images.unique().tolist()) == {0.0, 1.0}
    assert torch.bincount(labels, minlength=10).min() > 150
    prepared = prepare.as_scans(images[:20])
    assert prepared.shape == (20, 28, 28) and prepared[:, 0].max() == 0 and prepared.amax((1, 2)).min() > 0.9


def test_optdigits_loads_1797_digits_in_seventeen_levels_of_every_class_and_prepares_them_like_predict() -> None:
    images, labels = external.load_optdigits()
    assert images.shape == (1797, 8, 8) and images.min() == 0 and images.max() == 1
    assert torch.equal(images * 16, (images * 16).round())  # block counts 0..16 of a 32x32 bitmap
    assert torch.bincount(labels, minlength=10).min() > 170
    prepared = prepare.as_scans(images[:20])
    assert prepared.shape == (20, 28, 28) and prepared[:, 0].max() == 0 and prepared.amax((1, 2)).min() > 0.9
    assert not prepare.as_scans(torch.zeros(1, 8, 8)).any()  # a scan --predict finds blank is a blank field


def test_a_missing_or_altered_optdigits_or_no_scikit_learn_is_named_and_exits_2(external_root, tmp_path, monkeypatch,
                                                                                capsys) -> None:
    with pytest.raises(external.ExternalDataError, match="digits.csv.gz: cannot be read"):
        external.load_optdigits(tmp_path / "digits.csv.gz")
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(external.optdigits_path().read_bytes()[:1000])  # a truncated download
    with pytest.raises(external.ExternalDataError, match="cut.csv.gz: cannot be read"):
        external.load_optdigits(cut)
    altered = tmp_path / "altered.csv.gz"
    altered.write_bytes(gzip.compress(gzip.decompress(external.optdigits_path().read_bytes()).replace(b"0,", b"1,", 1)))
    with pytest.raises(external.ExternalDataError, match="altered.csv.gz: checksum mismatch"):
        external.load_optdigits(altered)
    monkeypatch.setattr(artifacts, "RUNS_ROOT", tmp_path / "runs")
    monkeypatch.setattr(external, "prepared_semeion", lambda root: (torch.zeros(1, 28, 28), torch.zeros(1, dtype=torch.long)))
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "sklearn" else find_spec(name, *args))
    external.prepared_optdigits.cache_clear()  # prepared once per process: an earlier test may have read it
    code = main.main(["--model", "1", "--evaluate-external", "--data-dir", str(external_root)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "scikit-learn" in err[0] and "not installed" in err[0]


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


def test_a_writer_split_holds_out_whole_writers_about_n_digits_and_never_one_writer_on_both_sides(external_root) -> None:
    writers = data_utils.read_qmnist(external_root, "train")[:, 2]
    train, val = data_utils.writer_split_indices(writers, None, 6000, seed=1)
    assert 6000 <= len(val) < 6000 + 1000 and len(train) + len(val) == 60_000
    assert not set(writers[train].tolist()) & set(writers[val].tolist())
    again, _ = data_utils.writer_split_indices(writers, None, 6000, seed=1)
    assert torch.equal(train, again)  # seeded: the same writers every time
    sub_train, sub_val = data_utils.writer_split_indices(writers, 3000, 300, seed=2)
    assert int(torch.cat([sub_train, sub_val]).max()) < 3000 and len(sub_val) >= 300


def test_runs_say_which_validation_split_they_used(synthetic_root, external_root, tmp_path, capsys) -> None:
    common = ["--data-dir", str(external_root), "--model", "1", "--epochs", "1", "--subset", "2000", "--val-split",
              "200", "--batch-size", "128", "--device", "cpu"]
    for kind, expected in (("auto", "writers"), ("random", "random")):
        out = tmp_path / kind
        assert main.main([*common, "--out-dir", str(out), "--val-split-by", kind]) == 0
        record = json.loads((out / "outputs" / "mnist_model_1_metrics.json").read_text())
        assert record["data"]["val_split"] == expected and record["config"]["val_split_by"] == kind
        assert record["data"]["val_images"] >= 200
    # other data in MNIST's format (here 256 synthetic images) has no writers: auto is random, writers refused
    shutil.copytree(external_root / "QMNIST", synthetic_root / "QMNIST")
    other = ["--data-dir", str(synthetic_root), "--no-verify", "--model", "1", "--epochs", "1", "--val-split", "40",
             "--device", "cpu"]
    assert main.main([*other, "--out-dir", str(tmp_path / "s")]) == 0
    assert json.loads((tmp_path / "s" / "outputs" / "mnist_model_1_metrics.json").read_text())["data"]["val_split"] == "random"
    assert main.main([*other, "--out-dir", str(tmp_path / "w"), "--val-split-by", "writers"]) == 2
    assert "--val-split-by: writers needs QMNIST/raw/qmnist-train-labels-idx2-int.gz" in capsys.readouterr().err


def test_binary_scans_stretch_each_digit_to_fill_a_binary_box() -> None:
    images = torch.zeros(3, 28, 28)
    images[0, 4:24, 12:16] = 0.9  # a narrow "1"
    images[1, 10:14, 4:24] = 0.6  # a flat dash
    scans = external.binary_scans(images)
    assert scans.shape == (3, 16, 16)
    assert set(scans.unique().tolist()) <= {0.0, 1.0}
    for scan in scans[:2]:
        assert bool(scan[0].any() and scan[-1].any() and scan[:, 0].any() and scan[:, -1].any())
    assert not scans[2].any()  # a blank image stays blank


def test_a_score_keeps_each_true_digits_accuracy_and_the_confusion_matrix() -> None:
    s = external.score("a set", torch.tensor([0, 1, 1, 2, 7]), torch.tensor([0, 1, 2, 2, 9]))
    assert s.accuracy == 60.0 and s.images == 5
    assert s.per_digit[:3] == [100.0, 100.0, 50.0] and s.per_digit[9] == 0.0 and s.per_digit[3] is None
    assert s.confusion[2][1] == 1 and s.confusion[9][7] == 1 and sum(map(sum, s.confusion)) == 5
    assert s.per_digit_line().startswith("0: 100.0% · 1: 100.0% · 2: 50.0% · 3: -")


def test_evaluate_external_records_and_prints_each_sets_per_digit_accuracy(external_root, tmp_path, monkeypatch,
                                                                           capsys) -> None:
    monkeypatch.setattr(artifacts, "RUNS_ROOT", tmp_path / "runs")  # the committed model 1, its record into runs/
    blank = (torch.zeros(10, 28, 28), torch.arange(10))  # stand-ins for the slow-to-prepare scans
    monkeypatch.setattr(external, "prepared_semeion", lambda root: blank)
    monkeypatch.setattr(external, "prepared_optdigits", lambda: blank)
    assert main.main(["--model", "1", "--evaluate-external", "--data-dir", str(external_root)]) == 0
    out = capsys.readouterr().out
    assert out.count("per true digit: 0: ") == 4
    written = tmp_path / "runs" / "mnist_model_1" / "reference" / "outputs" / "mnist_model_1_metrics.json"
    record = json.loads(written.read_text())
    scores = {s["name"]: s for s in record["external"]["scores"]}
    census = scores["MNIST test, hsf_0 (Census employees)"]
    assert len(census["per_digit"]) == 10 and sum(map(sum, census["confusion"])) == census["images"] == 4999
    assert sum(map(sum, scores[external.SEMEION]["confusion"])) == 10


def _few(external_root, monkeypatch):
    """The reading measures on slices of the real test sets, which keep them quick: 300 MNIST test digits, 40
    SEMEION pages, 10 non-digits, 4 numbers of each kind."""
    import zoo  # noqa: PLC0415
    from analysis import rejection  # noqa: PLC0415

    load = data_utils.load_mnist

    def first_300(root, verify=True):  # noqa: ANN001, ANN202 - a slice of the real test set keeps it quick
        splits = load(root, verify)
        return {**splits, "test": data_utils.MNISTTensors(splits["test"].images[:300], splits["test"].labels[:300])}

    monkeypatch.setattr(data_utils, "load_mnist", first_300)
    pages, labels = external.semeion_pages(str(external_root))
    monkeypatch.setattr(external, "semeion_pages", lambda root: (pages[:40], labels[:40]))
    scans, _ = external.load_semeion(external_root)
    monkeypatch.setattr(external, "prepared_semeion", lambda root: (prepare.as_scans(scans[:40]), labels[:40]))
    monkeypatch.setattr(rejection, "test_non_digits", lambda: {"blank pages": rejection.blank_pages(4),
                                                               "noise": rejection.noise(6)})
    monkeypatch.setattr(zoo, "READING_NUMBERS", 4)
    return external_root


@pytest.fixture
def few_test_sets(external_root, monkeypatch):
    return _few(external_root, monkeypatch)


@pytest.fixture(scope="module")
def read_once(external_root, tmp_path_factory):
    """``--evaluate-reading`` of the committed V3 on the few test sets, its record kept in a runs/ of its own: what it
    printed, and the run's folder. Run once for the tests that read what it wrote."""
    runs = tmp_path_factory.mktemp("reading") / "runs"
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as monkeypatch, contextlib.redirect_stdout(printed):
        monkeypatch.setattr(artifacts, "RUNS_ROOT", runs)  # the committed V3, its record into runs/
        assert main.main(["--model", "3", "--evaluate-reading", "--data-dir", str(_few(external_root, monkeypatch))]) == 0
    return printed.getvalue(), runs / "mnist_model_3" / "reference"


def test_evaluate_reading_records_accuracy_rejection_auroc_calibration_and_numbers(read_once) -> None:
    out, run = read_once
    assert "test non-digits rejected" in out and "numbers read exactly: 4 digits gaps" in out
    r = json.loads((run / "outputs" / "mnist_model_3_metrics.json").read_text())["reading"]
    assert r["calibrated"] and r["threshold"] > 0
    assert r["mnist_accuracy"] > 97 and r["mnist_accepted_accuracy"] > 97 and 0 <= r["mnist_rejected"] < 5
    assert 0 <= r["semeion_rejected"] <= 100 and r["ece_semeion"] >= 0 and r["semeion_accuracy"] > 80
    assert r["non_digits"]["blank pages"] == 100.0 and 0 < r["auroc"] <= 1
    assert math.isclose(r["non_digits_rejected"], (4 * 100.0 + 6 * r["non_digits"]["noise"]) / 10)
    assert [(n["kind"], n["length"], n["numbers"]) for n in r["numbers"]] == [
        ("gaps", 4, 4), ("tight", 4, 4), ("touching", 4, 4), ("gaps", 1, 4)]


def test_the_rejection_benchmark_keeps_in_each_metrics_json_the_record_evaluate_reading_keeps(read_once, few_test_sets,
                                                                                              tmp_path, monkeypatch) -> None:
    from benchmarks import rejection as table  # noqa: PLC0415

    root = tmp_path / "copy"  # the committed V3 with its record and calibration, its metrics read and rewritten
    (root / "outputs").mkdir(parents=True)
    for name in ("params.safetensors", "calibration.json", "metrics.json"):
        shutil.copy(artifacts.REFERENCE_ROOT / "outputs" / f"mnist_model_3_{name}", root / "outputs")
    _, one = read_once  # what --evaluate-reading wrote into the run's record
    monkeypatch.setattr("sys.argv", ["rejection", "--data-dir", str(few_test_sets), "--models", "3", "--root",
                                     str(root), "--json-out", str(tmp_path / "table.json"), "--into-metrics"])
    table.main()
    kept = [json.loads((place / "outputs" / "mnist_model_3_metrics.json").read_text()) for place in (one, root)]
    alike = [{k: v for k, v in record["reading"].items() if k != "seconds"} for record in kept]
    assert alike[0] == alike[1] and alike[0]["numbers"]
    assert kept[1]["config"] == kept[0]["config"]  # the record it joined is kept whole
    [row] = json.loads((tmp_path / "table.json").read_text())["rows"]
    assert {k: v for k, v in row.items() if k not in ("model", "seconds")} == {
        k: v for k, v in alike[0].items() if k not in ("params_file", "calibrated", "note")}
