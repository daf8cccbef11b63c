"""Evaluation: confusion matrix and per-class scores against hand-computed examples; figures and --evaluate."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import pytest
import torch

import main
from analysis import evaluation


def test_confusion_matrix_matches_a_hand_computed_example() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2])
    predictions = torch.tensor([0, 1, 1, 1, 0])
    confusion = evaluation.confusion_matrix(predictions, labels, num_classes=3)
    assert confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert int(confusion.sum()) == len(labels)


def test_per_class_scores_match_a_hand_computed_example() -> None:
    confusion = torch.tensor([[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    scores = evaluation.per_class_scores(confusion)
    assert [s.support for s in scores] == [2, 2, 1]
    assert [s.precision for s in scores] == pytest.approx([1 / 2, 2 / 3, 0.0])
    assert [s.recall for s in scores] == pytest.approx([1 / 2, 1.0, 0.0])
    assert [s.f1 for s in scores] == pytest.approx([1 / 2, 0.8, 0.0])


def test_most_confident_mistakes_come_first_and_are_all_wrong() -> None:
    class Fixed(torch.nn.Module):
        def forward(self, x):  # logits read straight from the first pixels
            return x.flatten(1)[:, :10]

    images = torch.zeros(4, 1, 28, 28)
    images.view(4, -1)[0, 3] = 9.0   # says 3 very confidently
    images.view(4, -1)[1, 5] = 2.0   # says 5, less sure
    images.view(4, -1)[2, 7] = 5.0   # says 7
    images.view(4, -1)[3, 1] = 6.0   # says 1
    labels = torch.tensor([8, 4, 7, 2])  # image 2 is right, the other three are wrong
    result, mistakes = evaluation.evaluate_model(Fixed(), [(images, labels)])
    assert [(m.true, m.predicted) for m in mistakes] == [(8, 3), (2, 1), (4, 5)]
    assert mistakes[0].confidence > mistakes[1].confidence > mistakes[2].confidence
    assert result.accuracy == 25.0 and sum(map(sum, result.confusion)) == 4


def _flags(root: Path, out: Path, model: str) -> list[str]:
    return ["--data-dir", str(root), "--out-dir", str(out), "--no-verify", "--device", "cpu", "--model", model]


def test_training_writes_the_evaluation_and_its_three_figures(synthetic_root: Path, tmp_path: Path) -> None:
    assert main.main([*_flags(synthetic_root, tmp_path, "1"), "--epochs", "1", "--batch-size", "64"]) == 0
    metrics = json.loads((tmp_path / "outputs" / "mnist_model_1_metrics.json").read_text())
    ev = metrics["evaluation"]
    assert sum(map(sum, ev["confusion_matrix"])) == metrics["data"]["test_images"]
    assert ev["accuracy"] == metrics["summary"]["final_test_acc"]
    assert [c["digit"] for c in ev["per_class"]] == list(range(10))
    for name in ("confusion", "mistakes", "filters"):
        assert matplotlib.image.imread(tmp_path / "plots" / f"mnist_model_1_{name}.png").ndim == 3


def test_evaluate_loads_saved_params_prints_the_table_and_trains_nothing(synthetic_root, tmp_path, capsys) -> None:
    assert main.main([*_flags(synthetic_root, tmp_path, "fc"), "--epochs", "1"]) == 0
    params = tmp_path / "outputs" / "mnist_model_fc_params.pth"
    before = params.read_bytes()
    (tmp_path / "plots" / "mnist_model_fc_confusion.png").unlink()
    capsys.readouterr()
    assert main.main([*_flags(synthetic_root, tmp_path, "fc"), "--evaluate"]) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "confusion matrix" in out
    assert params.read_bytes() == before
    assert (tmp_path / "plots" / "mnist_model_fc_confusion.png").is_file()
    assert not (tmp_path / "plots" / "mnist_model_fc_filters.png").exists()  # no convolution in fc


def test_evaluate_without_saved_params_exits_2_naming_the_file(synthetic_root, tmp_path, capsys) -> None:
    assert main.main([*_flags(synthetic_root, tmp_path, "2"), "--evaluate"]) == 2
    err = capsys.readouterr().err
    assert "mnist_model_2_params.pth: no saved weights for model 2" in err
    assert "usage:" not in err  # not a usage error: one line, no usage block
