"""What a trained model gets right and wrong: per-class scores, the confusion matrix, its worst mistakes.

``inference`` is the one inference loop (eval mode, no gradients); ``evaluate`` (loss and accuracy, what
training records each epoch), ``classify`` (digits and probabilities for images in [0, 1]) and
``evaluate_model`` (per-class scores and the worst mistakes) all read predictions from it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from data_utils import normalize

NUM_CLASSES = 10


@torch.no_grad()
def inference(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor | None]]
              ) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
    """The one inference loop: eval mode, no gradients; (images, logits, labels) per batch."""
    model.eval()
    for images, labels in batches:
        yield images, model(images), labels


def evaluate(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]],
             collect: list[tuple[Tensor, Tensor, Tensor]] | None = None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (%) over all batches, without augmentation or gradients.

    ``collect``, when given, receives each batch's (images, logits, labels) for deeper analysis.
    """
    loss_sum = correct = count = None
    for images, logits, labels in inference(model, batches):
        if collect is not None:
            collect.append((images, logits, labels))
        loss = F.cross_entropy(logits, labels, reduction="sum")
        hits = (logits.argmax(1) == labels).sum()
        loss_sum = loss if loss_sum is None else loss_sum + loss
        correct = hits if correct is None else correct + hits
        count = len(labels) if count is None else count + len(labels)
    if count is None:
        return math.nan, math.nan
    return float(loss_sum) / count, 100.0 * float(correct) / count


def logits(model: nn.Module, digits: Tensor, batch_size: int = 1000) -> Tensor:
    """The model's logits (N, 10) for (N, 28, 28) images in [0, 1], on the CPU."""
    if len(digits) == 0:
        return torch.zeros(0, NUM_CLASSES)
    device = next(model.parameters()).device
    batches = ((normalize(chunk).to(device), None) for chunk in digits.split(batch_size))
    return torch.cat([out.cpu() for _, out, _ in inference(model, batches)])


def probabilities(model: nn.Module, digits: Tensor, batch_size: int = 1000) -> Tensor:
    """Softmax probabilities (N, 10) for (N, 28, 28) images in [0, 1], on the CPU."""
    return logits(model, digits, batch_size).softmax(1)


def classify(model: nn.Module, digits: Tensor, batch_size: int = 1000) -> tuple[Tensor, Tensor]:
    """Predicted digits and their softmax probabilities for (N, 28, 28) images in [0, 1]."""
    probability, digit = probabilities(model, digits, batch_size).max(1)
    return digit, probability


@dataclass
class ClassScore:
    digit: int
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class Evaluation:
    accuracy: float  # percent
    loss: float
    per_class: list[ClassScore]
    confusion: list[list[int]]  # rows: true digit, columns: predicted digit

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "loss": self.loss, "per_class": [asdict(c) for c in self.per_class],
                "confusion_matrix": self.confusion, "confusion_axes": "rows: true digit, columns: predicted digit",
                "split": "test"}


def confusion_matrix(predictions: Tensor, labels: Tensor, num_classes: int = NUM_CLASSES) -> Tensor:
    """Counts of (true, predicted) pairs as a (num_classes, num_classes) int64 matrix."""
    index = labels.long().cpu() * num_classes + predictions.long().cpu()
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class_scores(confusion: Tensor) -> list[ClassScore]:
    """Precision, recall and F1 per class (0 where undefined, as scikit-learn's zero_division=0)."""
    confusion = confusion.double()
    tp = confusion.diag()
    predicted, actual = confusion.sum(0), confusion.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(actual > 0, tp / actual.clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), torch.zeros_like(tp))
    return [ClassScore(d, float(precision[d]), float(recall[d]), float(f1[d]), int(actual[d]))
            for d in range(len(tp))]


@dataclass
class Mistake:
    image: Tensor  # normalized (1, 28, 28), on the CPU
    true: int
    predicted: int
    confidence: float


def evaluate_model(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]],
                   worst: int = 25) -> tuple[Evaluation, list[Mistake]]:
    """Scores over every batch, and the ``worst`` most confident mistakes."""
    collected: list[tuple[Tensor, Tensor, Tensor]] = []
    loss, accuracy = evaluate(model, batches, collect=collected)
    images = torch.cat([c[0] for c in collected]).cpu()
    probs = torch.cat([c[1] for c in collected]).float().softmax(1).cpu()
    labels = torch.cat([c[2] for c in collected]).cpu()
    confidence, predicted = probs.max(1)
    confusion = confusion_matrix(predicted, labels)
    wrong = (predicted != labels).nonzero().flatten()
    order = wrong[confidence[wrong].argsort(descending=True)][:worst]
    mistakes = [Mistake(images[i], int(labels[i]), int(predicted[i]), float(confidence[i])) for i in order]
    return Evaluation(accuracy, loss, per_class_scores(confusion), confusion.tolist()), mistakes


def format_report(evaluation: Evaluation) -> str:
    """The per-class table, overall accuracy and the confusion matrix, as text for the terminal."""
    lines = ["digit  precision  recall      f1  support"]
    for c in evaluation.per_class:
        lines.append(f"{c.digit:>5}  {c.precision:>9.4f}  {c.recall:>6.4f}  {c.f1:>6.4f}  {c.support:>7}")
    lines.append(f"accuracy {evaluation.accuracy:.2f}% over {sum(c.support for c in evaluation.per_class)} test images")
    lines.append("confusion matrix (rows: true, columns: predicted)")
    lines.append("      " + "".join(f"{d:>6}" for d in range(NUM_CLASSES)))
    for d, row in enumerate(evaluation.confusion):
        lines.append(f"{d:>6}" + "".join(f"{n:>6}" for n in row))
    return "\n".join(lines)
