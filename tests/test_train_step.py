"""The training step: eager on every device, replayed from CUDA graphs on a GPU (those tests need one)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import data_utils
import lr_schedulers
import optimizers
from model_strategy import get_strategy
from training import loop

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _model(device: str, dropout: float | None = None) -> torch.nn.Module:
    torch.manual_seed(0)
    model = get_strategy("3").get_model(device)
    if dropout is not None:
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = dropout
    return model


def _batches(device: str, sizes=(32, 32, 32, 8)) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(n, 1, 28, 28, generator=gen).to(device), torch.randint(0, 10, (n,), generator=gen).to(device))
            for n in sizes]


def _sgd(model: torch.nn.Module, graph_safe: bool = False) -> torch.optim.Optimizer:
    return optimizers.build_optimizer("sgd", model, lr=0.05, momentum=0.9, weight_decay=0.0, graph_safe=graph_safe)


def test_eager_step_returns_values_the_next_step_leaves_alone():
    model = _model("cpu")
    step = loop.TrainStep(model, _sgd(model))
    kept = step(*_batches("cpu")[0])
    snapshot = [t.clone() for t in kept]
    step(*_batches("cpu")[1])
    assert kept[0].shape == () and kept[1].shape == (32, 10)
    assert not kept[0].requires_grad and torch.isfinite(kept[0])
    assert all(torch.equal(k, s) for k, s in zip(kept, snapshot))  # the next step did not overwrite them


def test_eager_step_is_one_sgd_update_of_the_cross_entropy():
    model = _model("cpu", dropout=0.0)
    reference = _model("cpu", dropout=0.0)
    images, labels = _batches("cpu")[0]
    loss, _ = loop.TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1))(images, labels)
    expected = F.cross_entropy(reference(images), labels)
    expected.backward()
    assert torch.allclose(loss, expected.detach())
    for p, q in zip(model.parameters(), reference.parameters()):
        assert torch.allclose(p, q - 0.1 * q.grad, atol=1e-6)


@pytest.fixture
def exact_cudnn():
    """Full float32, deterministic convolutions, so that two ways of running a step agree to rounding.

    With cuDNN's default (atomic-add) algorithms, 12 steps of V3 drift apart by ~1e-4 run to run.
    """
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic
    torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic = False, True
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic = saved


@cuda
def test_cuda_graph_step_trains_like_the_eager_step(exact_cudnn):
    eager_model, graph_model = _model("cuda", dropout=0.0), _model("cuda", dropout=0.0)
    eager = loop.TrainStep(eager_model, _sgd(eager_model))
    optimizer = _sgd(graph_model, graph_safe=True)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)  # a new rate every step
    graphed = loop.CudaGraphStep(graph_model, optimizer, 0.0, warmup=2)
    eager_schedule = torch.optim.lr_scheduler.StepLR(eager.optimizer, step_size=1, gamma=0.5)
    # steps 1-2 warm up eagerly, step 4 is recorded; the 8-image batches always run eagerly
    for images, labels in _batches("cuda") * 3:
        a, b = eager(images, labels), graphed(images, labels)
        torch.testing.assert_close(b[0], a[0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(b[1], a[1], rtol=1e-4, atol=1e-4)
        schedule.step()
        eager_schedule.step()
    assert graphed.graph is not None
    for (name, p), q in zip(eager_model.state_dict().items(), graph_model.state_dict().values()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)


@cuda
def test_adam_steps_can_be_recorded_too(exact_cudnn):
    model = _model("cuda", dropout=0.0)
    optimizer = optimizers.build_optimizer("adam", model, 1e-3, 0.0, 0.0, graph_safe=True)
    step = loop.CudaGraphStep(model, optimizer, 0.0, warmup=1)
    losses = [float(step(*batch)[0]) for batch in _batches("cuda", sizes=(64,)) * 20]  # learn one batch by heart
    assert step.graph is not None and losses[-1] < losses[0]


@cuda
def test_a_gpu_epoch_never_waits_for_the_host():
    images = torch.randint(0, 256, (1000, 28, 28), dtype=torch.uint8)
    data = data_utils.MNISTTensors(images, torch.randint(0, 10, (1000,))).to("cuda")
    batches = data_utils.TensorTrainBatches(data, batch_size=128, seed=1)  # 7 full batches and one of 104
    model = _model("cuda")
    optimizer = _sgd(model, graph_safe=True)
    step = loop.CudaGraphStep(model, optimizer, 0.0)
    schedule = lr_schedulers.get_scheduler("onecycle").build(
        optimizer, lr_schedulers.ScheduleContext(3, len(batches), 0.75))
    loop.train_one_epoch(step, batches.epoch(1), len(batches), schedule, "warm-up", refresh_every=None)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        results = loop.train_one_epoch(step, batches.epoch(2), len(batches), schedule, "checked",
                                           refresh_every=None)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    losses, hits, sizes = results
    assert step.graph is not None
    assert len(losses) == 8 and int(sizes.sum()) == 1000 and torch.isfinite(losses).all()


def test_whole_epoch_batches_are_the_per_batch_ones_made_at_once():
    images = torch.randint(0, 256, (300, 28, 28), dtype=torch.uint8)
    data = data_utils.MNISTTensors(images, torch.randint(0, 10, (300,)))
    made = [list(data_utils.TensorTrainBatches(data, 128, seed=3, augment="none", whole_epoch=whole).epoch(2))
            for whole in (False, True)]
    assert [len(y) for _, y in made[0]] == [len(y) for _, y in made[1]] == [128, 128, 44]
    for (x0, y0), (x1, y1) in zip(*made):
        assert torch.equal(y0, y1) and torch.equal(x0, x1)
