"""Sanity checks of every model and of the pipeline: the net can learn (one batch driven to near-zero
loss) and nothing leaks labels (trained on shuffled labels, it scores near chance)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import config
import data_utils
import model_strategy
from training import loop


def _batch(mnist_root, n: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    train = data_utils.load_mnist(mnist_root)["train"]
    return data_utils.normalize(train.images[:n]), train.labels[:n]


@pytest.mark.parametrize("key", model_strategy.available_models())
def test_every_model_drives_the_loss_of_one_fixed_batch_to_near_zero(key, mnist_root) -> None:
    torch.manual_seed(0)
    images, labels = _batch(mnist_root)
    model = model_strategy.get_strategy(key).get_model("cpu")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2 if model_strategy.param_count(model) < 10_000 else 3e-3)
    for _ in range(300):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        if loss.item() < 0.02:
            break
    model.eval()
    with torch.no_grad():
        final = F.cross_entropy(model(images), labels).item()
    assert final < 0.05, f"model {key}: loss {final:.3f} on the batch it trained on"


def test_shuffled_labels_leave_the_test_accuracy_at_chance(mnist_root, monkeypatch) -> None:
    """The run trains on a permutation of the labels: if nothing leaks, the test set sees ~10%."""
    splits = data_utils.load_mnist(mnist_root)
    shuffled = torch.randperm(len(splits["train"]), generator=torch.Generator().manual_seed(0))
    splits["train"] = data_utils.MNISTTensors(splits["train"].images, splits["train"].labels[shuffled])
    cfg = config.resolve("3", {"epochs": 2, "subset": 6000, "data_dir": str(mnist_root)}, "cpu")
    monkeypatch.setattr(data_utils, "load_mnist", lambda *a, **k: splits)
    run = loop.train(cfg)
    final = run.history.epochs[-1].test_acc
    # A run that learned digits is far above this (V3 reaches over 90% in these two epochs on the true labels); one
    # that learned nothing maps each digit's cluster of images to some label by chance: 10% expected, but 20% when two
    # of the ten clusters land on their own label, as seed 1 does on one AMD EPYC (16% then 21%; seed 2: 9%, 11%).
    assert final < 40.0, f"test accuracy {final:.1f}% after training on shuffled labels"
