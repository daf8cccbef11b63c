"""Several seeds of one model trained at once, as one network whose layers are the seeds' copies side by side.

``python main.py --model 3 --seeds 3 --seeds-at-once`` trains a leaderboard entry's K seeds as one
``SeedStack``. Every layer becomes K independent copies: a convolution a grouped one (K times the
groups), a batch norm K times as wide (its statistics are per channel, so per seed), a linear layer
a batched matrix product (``GroupedLinear``); activations, pools, dropout and flattening act per
element or per channel already. Seed s's batch (its own order and augmentation, from
``TensorTrainBatches`` with its seed) goes in as input channel s; copy s starts from the weights
``torch.manual_seed(seed)`` gives the model; the loss is the sum of the seeds' mean losses, so each
copy's gradient, and every element-wise optimizer update, is its own run's. The runs are K
independent ones mathematically; the random draws differ (dropout comes from one generator), so they
match separate runs statistically, not bit for bit. At the end the stack is split into K ordinary
``state_dict``s, and each seed's run is recorded as if trained alone, with a note that it was not.

What it saves depends on the device and the model: one process start, one evaluation pass and one
set of kernel launches serve K models (a GPU's launches are most of a tiny net's step), while the
arithmetic stays K models' worth; ``benchmarks/bench_seeds.py`` measures it against separate runs.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from typing import Iterator

import torch
from torch import Tensor, nn

import acceleration
import config
import data_utils
import lr_schedulers
import model_strategy
from analysis import evaluation
from training import loop

# Layers without parameters that act per element or per channel: the same module serves K copies.
SHARED = (nn.ReLU, nn.Dropout, nn.Dropout2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Identity)


class GroupedLinear(nn.Module):
    """K linear layers side by side: (N, K*in) -> (N, K*out), copy k reading and writing its own slice."""

    def __init__(self, k: int, in_features: int, out_features: int, bias: bool, device: torch.device | str) -> None:
        super().__init__()
        self.k, self.in_features, self.out_features = k, in_features, out_features
        self.weight = nn.Parameter(torch.empty(k, out_features, in_features, device=device))
        self.bias = nn.Parameter(torch.empty(k, out_features, device=device)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        n = len(x)
        y = torch.bmm(x.reshape(n, self.k, self.in_features).transpose(0, 1), self.weight.transpose(1, 2))
        if self.bias is not None:
            y = y + self.bias.unsqueeze(1)
        return y.transpose(0, 1).reshape(n, self.k * self.out_features)


def _wide(layer: nn.Module, k: int) -> nn.Module:
    """One layer as K copies side by side, parameters left empty (``SeedStack`` fills every one)."""
    if type(layer) is nn.Conv2d:
        return nn.Conv2d(layer.in_channels * k, layer.out_channels * k, layer.kernel_size, layer.stride, layer.padding,
                         layer.dilation, layer.groups * k, layer.bias is not None, layer.padding_mode, device="meta")
    if type(layer) in (nn.BatchNorm1d, nn.BatchNorm2d):
        return type(layer)(layer.num_features * k, layer.eps, layer.momentum, layer.affine, layer.track_running_stats,
                           device="meta")
    if type(layer) is nn.Linear:
        return GroupedLinear(k, layer.in_features, layer.out_features, layer.bias is not None, "meta")
    if isinstance(layer, SHARED):
        return layer
    raise ValueError(f"{type(layer).__name__} cannot be trained as seeds side by side")


def widen(model: nn.Module, k: int) -> nn.Module:
    """A copy of ``model`` whose every layer holds K copies side by side (``_wide``), on the meta device."""
    wide = copy.deepcopy(model)
    for parent in list(wide.modules()):
        for name, child in list(parent.named_children()):
            if not list(child.children()):
                setattr(parent, name, _wide(child, k))
    return wide


class SeedStack(nn.Module):
    """K models of one architecture as one: input (N, K, H, W), seed s's images in channel s; output
    (N, K, classes), seed s's logits at [:, s]."""

    def __init__(self, models: list[nn.Module]) -> None:
        super().__init__()
        self.k = len(models)
        self.template = {name: tensor.shape for name, tensor in models[0].state_dict().items()}
        first = next(models[0].parameters())
        self.net = widen(models[0], self.k).to_empty(device=first.device).to(first.dtype)
        states, wide = [m.state_dict() for m in models], self.net.state_dict()
        joined = {}
        for name, shape in self.template.items():  # stacked where the wide layer adds a seed axis, else joined
            parts = [state[name] for state in states]
            joined[name] = (parts[0] if len(shape) == 0 else torch.stack(parts) if wide[name].dim() == len(shape) + 1
                            else torch.cat(parts))
        self.net.load_state_dict(joined)  # strict: every parameter and buffer of the stack is filled

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).view(len(x), self.k, -1)

    def split(self) -> list[dict[str, Tensor]]:
        """Each seed's ``state_dict`` for the ordinary model."""
        wide = self.net.state_dict()
        seeds = []
        for s in range(self.k):
            state = {}
            for name, shape in self.template.items():
                w = wide[name]
                part = w if len(shape) == 0 else w[s] if w.dim() == len(shape) + 1 else w.chunk(self.k)[s]
                state[name] = part.detach().clone().contiguous()
            seeds.append(state)
        return seeds


class SeedBatches:
    """Each seed's training batches read side by side: images as channels (N, K, H, W), labels (N, K)."""

    def __init__(self, seeds: list[data_utils.TensorTrainBatches]) -> None:
        self.seeds = seeds

    def __len__(self) -> int:
        return len(self.seeds[0])

    def epoch(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        for parts in zip(*(seed.epoch(epoch) for seed in self.seeds)):
            yield torch.cat([images for images, _ in parts], 1), torch.stack([labels for _, labels in parts], 1)


@torch.no_grad()
def evaluate_each(stack: SeedStack, batches: data_utils.TensorEvalBatches) -> list[tuple[float, float]]:
    """Each seed's mean cross-entropy and accuracy (%) on the same images (``evaluation.inference``)."""
    loss_sum = correct = None
    count = 0
    wide = ((images.expand(-1, stack.k, -1, -1).contiguous(), labels) for images, labels in batches)
    for _, logits, labels in evaluation.inference(stack, wide):
        seeds = labels.unsqueeze(1).expand(-1, stack.k)
        loss = torch.nn.functional.cross_entropy(logits.movedim(2, 1), seeds, reduction="none").sum(0)
        hits = (logits.argmax(-1) == seeds).sum(0)
        loss_sum = loss if loss_sum is None else loss_sum + loss
        correct = hits if correct is None else correct + hits
        count += len(labels)
    return [(float(loss_sum[s]) / count, 100.0 * float(correct[s]) / count) for s in range(stack.k)]


def check(cfgs: list[config.RunConfig]) -> None:
    """What training seeds at once needs: one model and recipe, differing only in the seed."""
    base = cfgs[0]
    if base.loader != "tensor":
        raise config.ConfigError("loader", "seeds at once read the tensor loader's batches; drop --loader torchvision")
    if base.val_split:
        raise config.ConfigError("val_split", "seeds at once train on all images; drop --val-split (or --seeds-at-once)")
    if lr_schedulers.get_scheduler(base.scheduler).cadence is lr_schedulers.Cadence.ON_METRIC:
        raise config.ConfigError("scheduler", f"{base.scheduler} steps on one model's loss; seeds at once take a"
                                 " scheduler that does not (onecycle, step, cosine, none)")
    for cfg in cfgs:
        config.check(cfg)


def train_together(cfgs: list[config.RunConfig], started_at: float | None = None) -> list[loop.Run]:
    """Train ``cfgs`` (one per seed, otherwise equal) as one ``SeedStack``; each seed's ``loop.Run``,
    its model the ordinary one with that seed's weights. Raises ``loop.DivergenceError``."""
    started_at = time.perf_counter() if started_at is None else started_at
    check(cfgs)
    base = cfgs[0]
    loop.keep_freed_memory()
    strategy = model_strategy.get_strategy(base.model)
    models = []
    for cfg in cfgs:  # each copy starts where its own run would
        torch.manual_seed(cfg.seed)
        models.append(strategy.get_model(cfg.device, cfg.knobs))
    stack, _ = acceleration.accelerate(SeedStack(models), base.backend)
    splits = data_utils.load_mnist(base.data_dir, verify=base.verify)
    config.check_sizes(base, len(splits["train"]))
    pipelines = [data_utils.build_pipeline(splits, cfg.loader, cfg.batch_size, cfg.seed, cfg.device, cfg.subset,
                                           augment=cfg.augment, outliers=cfg.outliers) for cfg in cfgs]
    train = SeedBatches([p.train for p in pipelines])
    optimizer, schedule, graphed = loop.optimization(base, stack, len(train))
    step = (loop.CudaGraphStep if graphed else loop.TrainStep)(stack, optimizer, base.label_smoothing,
                                                               bool(base.outliers))
    histories = [loop.History() for _ in cfgs]
    loop.fit(step, dataclasses.replace(pipelines[0], train=train), schedule, base.epochs, histories,
             lambda batches: evaluate_each(stack, batches), started_at=started_at,
             names=[f"seed {c.seed}" for c in cfgs])
    runs = []
    for cfg, state, pipeline, history in zip(cfgs, stack.split(), pipelines, histories):
        model = strategy.get_model(cfg.device, cfg.knobs)
        model.load_state_dict(state)
        model, _ = acceleration.accelerate(model, cfg.backend)
        runs.append(loop.Run(cfg, strategy, model, optimizer, schedule, pipeline, history, graphed, started_at,
                             together=[c.seed for c in cfgs]))
    return runs
