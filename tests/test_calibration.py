"""Calibration: a temperature fitted on held-out digits, its error measured, and applied where predictions are printed."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import config
import main
import zoo
from analysis import calibration, detector, external, rejection
from core import artifacts
from core.artifacts import REFERENCE_ROOT, ArtifactPaths
from deploy import predict
from tests.test_numbers import page, seven


def test_the_fitted_temperature_undoes_a_known_one() -> None:
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (4000,), generator=gen)
    true_logits = 3 * torch.randn(4000, 10, generator=gen)
    true_logits[torch.arange(4000), labels] += 2.0
    sampled = torch.multinomial(true_logits.softmax(1), 1, generator=gen).flatten()  # labels the logits predict truly
    assert calibration.fit_temperature(true_logits * 2.5, sampled) == pytest.approx(2.5, rel=0.1)


def test_expected_calibration_error_is_the_weighted_gap_between_confidence_and_accuracy() -> None:
    probabilities = torch.tensor([[0.85, 0.15]] * 10 + [[0.65, 0.35]] * 10)
    labels = torch.tensor([0] * 9 + [1] + [0] * 3 + [1] * 7)  # 90% right at 0.85, 30% right at 0.65
    r = calibration.reliability("toy", probabilities, labels, bins=10)
    assert r.ece == pytest.approx(100 * (10 * 0.05 + 10 * 0.35) / 20, abs=1e-3)
    assert r.counts[8] == r.counts[6] == 10 and r.accuracy[8] == pytest.approx(0.9)


def test_a_temperature_changes_confidences_never_answers() -> None:
    net = zoo.load("3", REFERENCE_ROOT)
    digits = torch.rand(64, 28, 28, generator=torch.Generator().manual_seed(1))
    from analysis.evaluation import probabilities

    plain, warm = probabilities(net, digits), probabilities(calibration.Calibrated(net, 3.0), digits)
    assert torch.equal(plain.argmax(1), warm.argmax(1)) and (warm.max(1).values < plain.max(1).values).all()


@pytest.fixture
def run_of_v3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The committed V3 copied as a run of yours, in a runs/ away from the repository's."""
    monkeypatch.setattr(artifacts, "RUNS_ROOT", tmp_path / "runs")
    run = artifacts.run_dir("mnist_model_3", "copy")
    (run / "outputs").mkdir(parents=True)
    for attr in ("params", "safetensors", "metrics"):
        shutil.copy(getattr(ArtifactPaths("mnist_model_3", REFERENCE_ROOT), attr),
                    getattr(ArtifactPaths("mnist_model_3", run), attr))
    return run


def test_predict_prints_the_calibrated_confidence(run_of_v3: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    image = tmp_path / "seven.png"
    page(lambda d: seven(d, 100), (260, 160)).save(image)
    assert main.main(["--model", "3", "--predict", str(image), "--format", "json"]) == 0
    out = capsys.readouterr()
    plain = json.loads(out.out)
    assert "no threshold of 'not a digit'" in out.err and "run --calibrate" in out.err  # an uncalibrated run says so
    ArtifactPaths("mnist_model_3", run_of_v3).calibration.write_text(json.dumps({"temperature": 4.0}))
    assert main.main(["--model", "3", "--predict", str(image), "--format", "json"]) == 0
    warm = json.loads(capsys.readouterr().out)
    assert warm["number"] == plain["number"] == "7" and warm["confidence"] < plain["confidence"]
    assert zoo.predict("3", image)[0].probability == pytest.approx(warm["confidence"])


@pytest.mark.parametrize("content", ["not json", json.dumps({"temperature": -1}), json.dumps({"t": 1})])
def test_a_damaged_calibration_file_is_one_line_and_exit_2(run_of_v3: Path, tmp_path: Path, capsys,  # noqa: ANN001
                                                          content: str) -> None:
    ArtifactPaths("mnist_model_3", run_of_v3).calibration.write_text(content)
    assert main.main(["--model", "3", "--predict", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("main.py: error: ") and "_calibration.json" in err[0]
    assert "run --calibrate again" in err[0]


def test_a_threshold_chosen_with_another_digit_detector_is_refused_in_one_line(run_of_v3: Path, tmp_path: Path,
                                                                             capsys) -> None:  # noqa: ANN001
    record = json.loads(ArtifactPaths("mnist_model_3", REFERENCE_ROOT).calibration.read_text())
    assert record["rejection"]["detector"] == detector.load().fingerprint  # the committed ones were chosen with it
    image = tmp_path / "seven.png"
    page(lambda d: seven(d, 100), (260, 160)).save(image)
    ArtifactPaths("mnist_model_3", run_of_v3).calibration.write_text(json.dumps(record))
    assert main.main(["--model", "3", "--predict", str(image)]) == 0
    assert "no threshold" not in capsys.readouterr().err  # said only where there is none
    record["rejection"]["detector"] = "0123456789abcdef"  # the detector was trained again since
    ArtifactPaths("mnist_model_3", run_of_v3).calibration.write_text(json.dumps(record))
    assert main.main(["--model", "3", "--predict", str(image)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "_calibration.json" in err[0] and "another digit detector" in err[0]
    assert "run --calibrate again" in err[0]


def test_calibrate_without_the_development_digits_names_the_missing_file_in_one_line(run_of_v3: Path, tmp_path: Path,
                                                                                     mnist_root, capsys) -> None:  # noqa: ANN001
    data = tmp_path / "data"  # MNIST, and none of the development sets a threshold is chosen on
    data.mkdir()
    (data / "MNIST").symlink_to(Path(mnist_root) / "MNIST")
    assert main.main(["--model", "3", "--calibrate", "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("main.py: error: ") and str(data / "OPTDIGITS") in err[0]
    assert not ArtifactPaths("mnist_model_3", run_of_v3).calibration.exists()  # nothing half-written


def test_calibrate_fits_on_development_digits_and_writes_the_record_and_the_diagram(run_of_v3: Path,
                                                                                    monkeypatch, mnist_root) -> None:  # noqa: ANN001
    # Every set is cut to a few hundred images (the detector in front costs most of the time), the record's shape
    # unchanged: fast, not real figures.
    data_utils = __import__("data_utils")
    splits = data_utils.load_mnist(mnist_root)
    test = splits["test"]
    small = {"development stand-in": (test.images[:300].float() / 255.0, test.labels[:300])}
    monkeypatch.setattr(calibration, "development_digits", lambda root: small)
    monkeypatch.setattr(data_utils, "load_mnist", lambda root, verify=True: {
        **splits, "test": type(test)(test.images[-400:], test.labels[-400:])})
    stretched, non_digits = rejection.stretched_digits, rejection.development_non_digits
    monkeypatch.setattr(rejection, "stretched_digits", lambda root, rows: tuple(t[:200] for t in stretched(root, rows)))
    monkeypatch.setattr(rejection, "DEVELOPMENT_DRAWN", 50)
    monkeypatch.setattr(rejection, "development_non_digits", lambda: {k: x[:300] for k, x in non_digits().items()})
    monkeypatch.setattr(external, "prepared_semeion", lambda root: (_ for _ in ()).throw(external.ExternalDataError("no")))
    cfg = config.resolve("3", {"data_dir": str(mnist_root), "out_dir": str(run_of_v3)}, "cpu")
    record = zoo.calibrate_saved(cfg, run_of_v3)
    assert 0.2 < record["temperature"] < 5 and record["fitted_on"] == {"development stand-in": 300}
    names = [s["before"]["name"] for s in record["sets"]]
    assert names == ["development stand-in (fitted on)", rejection.STRETCHED, "MNIST test"]
    chosen = record["rejection"]
    assert chosen["chosen_on_sets"] == ["development stand-in (fitted on)", rejection.STRETCHED]
    assert chosen["score"] == "calibrated top probability x the digit detector's digit probability"
    assert abs(sum(chosen["rejected_percent"][n] * c for n, c in (("development stand-in (fitted on)", 300),
                                                                   (rejection.STRETCHED, 200))) / 500 - 1) < 0.2
    written = json.loads(ArtifactPaths("mnist_model_3", run_of_v3).calibration.read_text())
    assert written["temperature"] == record["temperature"]
    assert ArtifactPaths("mnist_model_3", run_of_v3).reliability_plot.stat().st_size > 10_000
    assert predict.calibrated(zoo.load("3"), run_of_v3, "mnist_model_3").temperature == record["temperature"]
