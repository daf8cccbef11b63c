"""Training the digit detector (``analysis.detector``): eleven classes, the ten digits and "not a digit".

    python -m training.detector --data-dir ../shared/data                   # a member for each of SEEDS
    python -m training.detector --data-dir ../shared/data --seeds 3 --add   # one more beside those saved
    python -m training.detector --data-dir ../shared/data --seeds 3 --add --width 48   # a wider one
    python -m training.detector --data-dir ../shared/data --seeds 5 --add --head grid  # one that keeps where ink is
    python -m training.detector --data-dir ../shared/data --epochs 6 --fine-tune . --out-dir D  # the saved ones, further
    python -m training.detector ... --resume   # the same command, after an interruption: from the last epoch kept

Digits of many hands: MNIST's training digits but for the 10,000 of whole writers held out (QMNIST's writer ids,
the split ``--val-split`` makes), the training handwriting fonts' digits, and the even rows of PENDIGITS (a
development set of 44 writers' pen paths) drawn as strokes, and the even rows of MFEAT (a development set of digits
stretched to fill their frame, as SEMEION's and USPS's are: a 0 or an 8 becomes a round blob that no other source
shows). Against them, as many training non-digits
(``augmentations.pick_non_digits`` from ``non_digit_pool``: the training fonts' letters, scribbles, shapes,
straight strokes, photo crops; ``--objects SHARE`` of them photographs of objects in MNIST's format,
``nondigits.objects``, docs/detector.md; ``--pen-letters SHARE`` of them letters drawn along the Hershey fonts'
strokes, ``nondigits.draw_pen_letter``; ``--mirrored SHARE`` of them training digits mirrored, ``mirrored_pool``;
``--silhouettes SHARE`` of them garments' solid silhouettes drawn at random, ``silhouette_pool``;
``--mine Q`` trains on those a member finds most digit-like, ``mined``;
``--letter-classes`` teaches each training letter as a class of its own beside "not a digit", ``non_digit_classes``).
Digits and non-digits are varied alike (``varied``; ``--scans SHARE`` of them also stored as other
digit sets store theirs). The record gives the detector alone: its threshold,
the digit probability below which 1% of the development digits fall (those a reader's threshold is chosen on,
``analysis.rejection.development_digits``), and the share rejected at it of them, of the held-out writers, of the
digits cut from numbers composed of their digits, of the odd rows of PENDIGITS and of the development non-digits
(``--choose-only`` chooses again for the saved weights). Served, the detector's probability multiplies the
reader's and the reader's threshold decides (``analysis.gate``). No test set is read.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from safetensors.torch import load_file
from torch import Tensor, nn

import augmentations
import data_utils
from analysis import calibration, detector, external, numbers, rejection
from core.arguments import number, plainly
from core.artifacts import (
    REFERENCE_ROOT,
    WriteError,
    atomic_write_bytes,
    atomic_write_many,
    json_bytes,
    safetensors_bytes,
    torch_bytes,
)
from digits import font_digits, nondigits, pendigits
from digits.prepare import digits_of, scans_as_read

EPOCHS, PER_EPOCH, BATCH, PEAK_LR, SEED = 30, 40_000, 256, 4e-3, 0
COMMAND = "python -m training.detector --data-dir ../shared/data"  # the default recipe's
SEEDS = (0, 1, 2)  # the members: seeds doubt different non-digits, so their mean doubts more of them
HELD_OUT = 10_000  # MNIST training digits of whole writers kept out, to measure on
MFEAT_REPEAT = 4  # MFEAT's 1,000 training digits drawn as often as 4,000 would be (each comes back varied)
PEN_LETTERS_DRAWN = 8_000  # how many pen-drawn letters the training draws from (each comes back varied)
SILHOUETTES_DRAWN = 8_000  # how many silhouettes the training draws from (each comes back varied)
MIRROR_CLASSES = (2, 3, 4, 5, 6, 7, 9)  # the digits whose mirror image is no digit: 0, 1 and 8 mirror into themselves
SCANS = 0.0  # the share of all images, digits and non-digits, also stored as another digit set's scan (``--scans``)
NOT_A_DIGIT = detector.architecture.NOT_A_DIGIT
WIDTH = detector.architecture.WIDTH  # a new member's first convolutions' channels (``--width``)
HEAD = detector.architecture.HEAD  # a new member's head (``--head``, ``models.detector.HEADS``)
MINE: float | None = None  # ATOM's q (``--mine``); None draws the non-digits as they come
LETTER_CLASSES = False  # each training letter a class of its own beside "not a digit" (``--letter-classes``)
CANDIDATES = 4  # mining: this many non-digits drawn for each one kept
NUMBERS = 300  # numbers of each spacing composed from the held-out writers' digits, whose pieces are measured


def pen_digits(root: Path | str, rows: slice) -> tuple[Tensor, Tensor]:
    """PENDIGITS' pen paths (the rows picked by ``rows``) drawn as strokes and prepared as ``--predict`` prepares a
    drawing: (N, 28, 28) uint8 and the labels."""
    try:
        drawn = pendigits.paths(root, rows)
    except pendigits.PendigitsError as exc:
        raise calibration.CalibrationDataError(str(exc)) from None
    images, labels = [], []
    for points, label in drawn:
        page = Image.new("L", (nondigits.CANVAS, nondigits.CANVAS), 255)
        ImageDraw.Draw(page).line([(14 + 0.68 * x, 14 + 0.68 * y) for x, y in points], fill=0, width=7, joint="curve")
        digit = nondigits.prepared(page)
        if digit is not None:
            images.append((digit * 255).round().byte())
            labels.append(label)
    return torch.stack(images), torch.tensor(labels)


def _split(root: Path | str) -> tuple[data_utils.MNISTTensors, Tensor, Tensor]:
    """MNIST's training split and the indices of the digits trained on and of the whole writers held out."""
    train = data_utils.load_mnist(root)["train"]
    writers = data_utils.read_qmnist(root, "train")
    if writers is None:
        raise calibration.CalibrationDataError(f"{Path(root) / data_utils.QMNIST_FILES['train'][0]}: missing; the"
                                               " detector holds whole writers out")
    kept, held = data_utils.writer_split_indices(writers[:, 2], None, HELD_OUT, SEED)
    return train, kept, held


def held_out_writers(root: Path | str) -> tuple[Tensor, Tensor]:
    """The MNIST training digits of the whole writers the detector never trains on, (N, 28, 28) uint8, and their
    labels: a development set of MNIST's own hands."""
    train, _, held = _split(root)
    return train.images[held], train.labels[held]


def training_digits(root: Path | str) -> tuple[Tensor, Tensor, Tensor]:
    """The training digits (N, 1, 28, 28) in [0, 1] with labels, and the held-out writers' MNIST digits (uint8)."""
    train, kept, held = _split(root)
    fonts, font_labels = font_digits.load("train").digits()
    pen, pen_labels = pen_digits(root, slice(0, None, 2))
    stretched, stretched_labels = rejection.stretched_digits(root, slice(0, None, 2))
    stretched = (stretched * 255).round().byte().repeat(MFEAT_REPEAT, 1, 1)
    images = torch.cat([train.images[kept], fonts, pen, stretched]).float().div(255).unsqueeze(1)
    labels = torch.cat([train.labels[kept], font_labels, pen_labels, stretched_labels.repeat(MFEAT_REPEAT)])
    return images, labels, train.images[held]


def number_pieces(digits: Tensor, count: int = NUMBERS, seed: int = SEED) -> Tensor:
    """The digits ``--predict`` cuts out of ``count`` 4-digit numbers of each spacing with whole digits (gaps,
    tight) composed from ``digits`` (N, 28, 28) uint8, as (K, 28, 28) in [0, 1]: a number's pieces are cut and
    prepared again, which a whole digit never is, and must pass the detector all the same."""
    gen, pieces = torch.Generator().manual_seed(seed), []
    for kind in ("gaps", "tight"):
        for _ in range(count):
            pick = torch.randint(0, len(digits), (4,), generator=gen)
            pieces += [digit for digit, _ in digits_of(numbers.compose(digits[pick], numbers.KINDS[kind], gen))]
    return torch.stack(pieces)


def varied(x: Tensor, gen: torch.Generator, scanned: float = 0.0) -> Tensor:
    """Each image (N, 1, 28, 28) varied one of two ways, half each, drawn per image and blind to its class: as the
    zoo's recipe varies MNIST (``rotation-scans-third``: a small turn, a third of them scanned as another digit set
    is) or as another hand would draw it (``affine``, ``thickness``, ``elastic``); then, ``scanned`` > 0, that share
    of all of them, also blind to class, stored as another digit set stores its digits (``augmentations.scans``:
    another hand, then scanned, is what SEMEION is). Digits and non-digits must look alike in every way but their
    shape: varied differently, the detector would learn the variation (it did: non-digits always blurred by the
    warps taught it that crisp ink is a digit)."""
    other_hand = torch.rand(len(x), generator=gen) < 0.5
    out = x.clone()
    if other_hand.any():
        out[other_hand] = augmentations.elastic(augmentations.thickness(augmentations.affine(x[other_hand], gen), gen), gen)
    if (~other_hand).any():
        out[~other_hand] = augmentations.rotation_scans_third(x[~other_hand], gen)
    out.clamp_(0, 1)
    if scanned > 0:  # drawn only when asked: the recorded detectors' streams stay as they were
        chosen = torch.rand(len(x), 1, 1, 1, generator=gen) < scanned
        out = torch.where(chosen, augmentations.scans(out, gen, chosen), out)
    return out


def non_digit_pool() -> Tensor:
    """What the detector trains against, (N, 1, 28, 28) in [0, 1]: the readers' training non-digits
    (``augmentations.training_non_digits``)."""
    return augmentations.training_non_digits(torch.device("cpu"))


def object_pool() -> Tensor:
    """The pieces of the training objects (``nondigits.prepared_objects``), (N, 1, 28, 28) in [0, 1]."""
    return nondigits.prepared_objects("train").float().div(255).unsqueeze(1)


def pen_letter_pool() -> Tensor:
    """The training pen-drawn letters (``nondigits.draw_pen_letter``), (N, 1, 28, 28) in [0, 1]."""
    return nondigits.drawn(nondigits.PEN_LETTERS, PEN_LETTERS_DRAWN, nondigits.TRAINING_SEED).float().div(255).unsqueeze(1)


def silhouette_pool() -> Tensor:
    """The training garments' silhouettes (``nondigits.draw_silhouette``), (N, 1, 28, 28) in [0, 1]."""
    return nondigits.drawn(nondigits.SILHOUETTES, SILHOUETTES_DRAWN, nondigits.TRAINING_SEED).float().div(255).unsqueeze(1)


def mirrored_pool(images: Tensor, labels: Tensor) -> Tensor:
    """The training digits ``images`` (N, 1, 28, 28) whose mirror image is no digit (``MIRROR_CLASSES``), mirrored
    left to right: non-digits drawn by the very hands, pens and scanners the digits come from. Every other
    training non-digit is a font's letter, a drawing or a photo, so ink as people write it is otherwise always a digit;
    these teach that a shape, not a hand, makes one (shifted instances of the data as negatives: Tack et al. 2020)."""
    return images[torch.isin(labels, torch.tensor(MIRROR_CLASSES))].flip(-1)


@dataclass(frozen=True)
class Extra:
    """A kind of non-digit a member may draw a share of its non-digits from, beside ``non_digit_pool``'s."""

    flag: str  # the command's option
    about: str  # what it is, for --help
    pool: Callable[[Tensor, Tensor], Tensor]  # (training digits, their labels) -> (N, 1, 28, 28) in [0, 1]
    in_every_recipe: bool = False  # recorded in every recipe, at 0 too (the first two: older partial files have them)


# The extra kinds in the order a member's draws take them (the order its random stream was drawn in).
EXTRAS: dict[str, Extra] = {
    "objects": Extra("--objects", "photographs of objects in MNIST's format (Fashion-MNIST's training half)",
                     lambda images, labels: object_pool(), in_every_recipe=True),
    "pen_letters": Extra("--pen-letters", "letters drawn along the Hershey fonts' strokes",
                         lambda images, labels: pen_letter_pool(), in_every_recipe=True),
    "mirrored": Extra("--mirrored", "the training digits whose mirror image is no digit"
                      f" ({', '.join(map(str, MIRROR_CLASSES))}), mirrored", mirrored_pool),
    "silhouettes": Extra("--silhouettes", "garments' solid silhouettes, drawn at random",
                         lambda images, labels: silhouette_pool()),
}


def shares_of(shares: Mapping[str, float] | None) -> dict[str, float]:
    """Every extra kind's share (0 where ``shares`` names none); a kind ``EXTRAS`` lacks is a ValueError."""
    unknown = set(shares or {}) - EXTRAS.keys()
    if unknown:
        raise ValueError(f"no extra kind of non-digit {', '.join(sorted(unknown))}: {', '.join(EXTRAS)}")
    return {kind: float((shares or {}).get(kind, 0.0)) for kind in EXTRAS}


def non_digit_classes(index: Tensor, letters: int) -> Tensor:
    """The class each drawn non-digit is taught as, from its place in ``non_digit_pool`` (``index``, -1 for one
    turned on its side, as ``augmentations.draw_non_digits`` gives it): the pool's first ``letters`` images are the
    training fonts' letters, font by font, and each letter of ``nondigits.LETTERS`` has a class of its own after
    ``NOT_A_DIGIT``; everything else, a letter on its side included, is "not a digit". ``letters`` 0: all are."""
    classes = torch.full_like(index, NOT_A_DIGIT)
    is_letter = (index >= 0) & (index < letters)
    classes[is_letter] = NOT_A_DIGIT + 1 + index[is_letter] % len(nondigits.LETTERS)
    return classes


def with_letter_classes(net: nn.Module) -> nn.Module:
    """A copy of ``net`` (eleven outputs) with an output for each of ``nondigits.LETTERS`` after "not a digit", each
    started as "not a digit" is, less the log of their number: the sum of the non-digit classes' probabilities,
    and so the digit probability, is at first exactly ``net``'s."""
    wide = copy.deepcopy(net)
    old = net.layers[-1]
    n = 1 + len(nondigits.LETTERS)
    wide.layers[-1] = nn.Linear(old.in_features, NOT_A_DIGIT + n)
    with torch.no_grad():
        wide.layers[-1].weight.copy_(torch.cat([old.weight[:NOT_A_DIGIT], old.weight[NOT_A_DIGIT:].expand(n, -1)]))
        wide.layers[-1].bias.copy_(torch.cat([old.bias[:NOT_A_DIGIT], old.bias[NOT_A_DIGIT:].expand(n) - math.log(n)]))
    return wide


def pick_against(count: int, gen: torch.Generator, pool: Tensor, extras: Sequence[tuple[Tensor, float]] = (),
                 letters: int = 0) -> tuple[Tensor, Tensor]:
    """``count`` non-digits to train against and the class each is taught as (``non_digit_classes``, ``letters``
    its count of letters): from ``pool``, each replaced, with the probability of its share, by one of an extra
    source's images (``extras``: (images, share) pairs, the shares summing to at most 1; those "not a digit";
    ``augmentations.pick_non_digits`` draws from each). Shares rather than one pool of all: each source's weight
    in a batch is then chosen, not an accident of how many images it holds."""
    picked, index = augmentations.draw_non_digits(count, gen, torch.device("cpu"), pool)
    classes = non_digit_classes(index, letters)
    extras = [(images, share) for images, share in extras if share > 0]
    if not extras:
        return picked, classes
    drawn, low = torch.rand(count, generator=gen), 0.0
    for images, share in extras:
        which = (drawn >= low) & (drawn < low + share)
        if which.any():
            picked[which] = augmentations.pick_non_digits(int(which.sum()), gen, torch.device("cpu"), images)
            classes[which] = NOT_A_DIGIT
        low += share
    return picked, classes


@torch.no_grad()
def mined(net: nn.Module, candidates: Tensor, keep: int, q: float) -> Tensor:
    """Outlier mining (ATOM, Chen et al. 2021): of ``candidates`` (varied non-digits, (N, 1, 28, 28) in [0, 1]),
    which ``keep`` (their places) ``net`` finds most digit-like after skipping the first ``q`` of them in that order. The
    easy non-digits teach the detector little once it rejects them; the very most digit-like are skipped,
    because among letters they are written exactly as digits are (a q as a 9), and pushing them out would push
    out other writers' digits with them. A trained member gets all but a few per cent of its training
    non-digits right, so ``q`` must stay below that share: skipping more skips every one it gets wrong."""
    was_training = net.training
    net.eval()
    odds = net(data_utils.normalize(candidates)).softmax(1)[:, NOT_A_DIGIT:].sum(1)
    net.train(was_training)
    start = min(int(q * len(candidates)), len(candidates) - keep)
    return odds.argsort()[start:start + keep]


def recipe(epochs: int, seed: int, shares: Mapping[str, float] | None, mine: float | None, scans: float,
           width: int, fine_tuned: bool, letter_classes: bool = LETTER_CLASSES, head: str = HEAD) -> dict:
    """What a member's training is made of: an interrupted one continues only under the same (``--resume``)."""
    return {"epochs": epochs, "seed": seed, "mine": mine, "scans": scans, "width": width, "fine_tuned": fine_tuned,
            **({"letter_classes": True} if letter_classes else {}), **({"head": head} if head != HEAD else {}),
            **{kind: share for kind, share in shares_of(shares).items() if share > 0 or EXTRAS[kind].in_every_recipe}}


def partial_path(out_root: Path | str, seed: int) -> Path:
    """Where the member of ``seed`` stands after each epoch until the detector is written: ``--resume`` continues
    from it."""
    return detector.paths(out_root)[0].with_name(f"digit_detector.seed{seed}.partial.pt")


def interrupted(out_root: Path | str, seed: int) -> dict | None:
    """The interrupted training of the member of ``seed`` under ``out_root`` (None where there is none). Raises
    ValueError, naming the fault, for a file that is not one."""
    path = partial_path(out_root, seed)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, foreign objects
        raise ValueError(f"{path}: not an interrupted detector training ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not {"recipe", "epoch", "net", "optimizer", "schedule", "gen"} <= state.keys():
        raise ValueError(f"{path}: not an interrupted detector training (fields missing)")
    return state


def train_member(images: Tensor, labels: Tensor, epochs: int, seed: int, shares: Mapping[str, float] | None = None,
                 mine: float | None = MINE, start: nn.Module | None = None, scans: float = SCANS, width: int = WIDTH,
                 partial: Path | None = None, resume: dict | None = None,
                 letter_classes: bool = LETTER_CLASSES, head: str = HEAD) -> tuple[nn.Module, dict]:
    """One member of the detector, trained on ``images`` (N, 1, 28, 28) in [0, 1] and their ``labels`` against the
    training non-digits (``non_digit_pool``), ``shares`` of them (by kind) drawn from the extra kinds (``EXTRAS``:
    objects, pen-drawn letters, mirrored digits, drawn silhouettes), ``mine`` not None
    mined (``mined``, that q), ``scans`` of all images stored as scans (``varied``),
    ``letter_classes`` each training letter taught as a class of its own (``non_digit_classes``; a start of eleven
    outputs is widened first, ``with_letter_classes``); from
    ``start``'s weights (fine-tuning, at a quarter of the peak rate) or from scratch, ``width`` channels wide
    with ``head`` (``models.detector.Net``). After each epoch everything it needs to go on (weights, optimizer, schedule, both
    random streams) is written to ``partial``; ``resume`` (such a state, of the same ``recipe``) continues it
    where it stopped, to the same weights as a run never stopped. The network, evaluating, and what to record."""
    torch.manual_seed(seed)
    pool = non_digit_pool()  # the pools are made once, before the clock
    shares = shares_of(shares)
    extras = [(EXTRAS[kind].pool(images, labels), share) for kind, share in shares.items() if share > 0]
    letters = len(nondigits.letters("train")) if letter_classes else 0  # the pool's first images
    if letter_classes and start is not None and detector.outputs_of(start.state_dict()) == NOT_A_DIGIT + 1:
        start = with_letter_classes(start)
    outputs = NOT_A_DIGIT + 1 + (len(nondigits.LETTERS) if letter_classes else 0)
    net, gen = start or detector.build(width, outputs, head), torch.Generator().manual_seed(seed)
    peak = PEAK_LR / 4 if start is not None else PEAK_LR
    steps = epochs * (PER_EPOCH // BATCH)
    optimizer = torch.optim.AdamW(net.parameters(), peak / 2, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, peak, total_steps=max(steps, 1))
    first, before = 0, 0.0
    if resume is not None:
        net.load_state_dict(resume["net"])
        optimizer.load_state_dict(resume["optimizer"])
        schedule.load_state_dict(resume["schedule"])
        gen.set_state(resume["gen"])
        torch.set_rng_state(resume["rng"])
        first, before = resume["epoch"], resume.get("seconds", 0.0)
        print(f"seed {seed}: continuing after epoch {first}/{epochs} ({partial})", flush=True)
    started = time.perf_counter() - before
    for epoch in range(first, epochs):
        net.train()
        total = 0.0
        for _ in range(PER_EPOCH // BATCH):
            pick = torch.randint(0, len(images), (BATCH // 2,), generator=gen)
            if mine is not None:
                drawn, classes = pick_against(CANDIDATES * BATCH // 2, gen, pool, extras, letters)
                drawn = varied(drawn, gen, scans)
                kept = mined(net, drawn, BATCH // 2, mine)
                x, classes = torch.cat([varied(images[pick], gen, scans), drawn[kept]]), classes[kept]
            else:
                drawn, classes = pick_against(BATCH // 2, gen, pool, extras, letters)
                x = varied(torch.cat([images[pick], drawn]), gen, scans)
            target = torch.cat([labels[pick], classes])
            loss = F.cross_entropy(net(data_utils.normalize(x)), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item()
        print(f"seed {seed}, epoch {epoch + 1}/{epochs}: loss {total / (PER_EPOCH // BATCH):.4f}"
              f" ({time.perf_counter() - started:.0f} s)", flush=True)
        if partial is not None:
            atomic_write_bytes(partial, torch_bytes({
                "recipe": recipe(epochs, seed, shares, mine, scans, detector.width_of(net.state_dict()),
                                 start is not None, letter_classes, detector.head_of(net.state_dict())),
                "epoch": epoch + 1, "seconds": time.perf_counter() - started, "net": net.state_dict(),
                "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "gen": gen.get_state(),
                "rng": torch.get_rng_state()}))
    built = detector.head_of(net.state_dict())  # a fine-tuned member keeps its start's head
    return net.eval(), {"seed": seed, "epochs": epochs, "parameters": sum(p.numel() for p in net.parameters()),
                        **({"width": net.layers[0].out_channels} if net.layers[0].out_channels != WIDTH else {}),
                        **({"head": built} if built != HEAD else {}),
                        "seconds": round(time.perf_counter() - started),
                        **{kind: share for kind, share in shares.items() if share > 0},
                        **({"scans": scans} if scans > 0 else {}),
                        **({"letter_classes": True} if letter_classes else {}),
                        **({"mine": mine} if mine is not None else {})}


def saved_members(out_root: Path | str) -> tuple[list[nn.Module], list[dict]]:
    """The members of the detector saved under ``out_root`` and their records ([] and [] where none is)."""
    weights, record = detector.paths(out_root)
    if not weights.is_file():
        return [], []
    about = json.loads(record.read_text())
    return detector.members(load_file(str(weights))), about.get("members") or [
        {k: about[k] for k in ("seed", "epochs", "parameters", "seconds") if k in about}]


def saved_command(out_root: Path | str) -> str:
    """The command that trained the detector saved under ``out_root``, as its record says (records older than the
    field: the default recipe's)."""
    return json.loads(detector.paths(out_root)[1].read_text()).get("command", COMMAND)


def chained(first: list[str], then: list[str]) -> list[str]:
    """The commands ``first`` followed by ``then``, once: where ``then`` began as ``first`` did (a detector
    continued from a copy of the one kept), the shared start is not repeated."""
    return then if then[:len(first)] == first else [*first, *then]


class ResumeError(ValueError):
    """An interrupted training under the out-dir that this command would overwrite, or cannot continue."""


def interrupted_states(out_root: Path | str, seeds: tuple[int, ...], recipes: dict[int, dict],
                       resume: bool) -> dict[int, dict]:
    """The interrupted trainings of ``seeds`` under ``out_root`` to continue (``resume``); each must have been
    started with its seed's recipe. Raises ``ResumeError`` for one that ``resume`` False would overwrite, one of
    another recipe, or ``resume`` with none to continue."""
    states = {}
    for seed in seeds:
        try:
            state = interrupted(out_root, seed)
        except ValueError as exc:
            raise ResumeError(str(exc)) from None
        if state is None:
            continue
        path = partial_path(out_root, seed)
        if not resume:
            raise ResumeError(f"{path} holds the member of seed {seed} trained to epoch {state['epoch']}"
                              f"/{state['recipe'].get('epochs')}: continue it with --resume, or delete it to start"
                              " afresh")
        here, there = recipes[seed], state["recipe"]  # a field left out where it has its default: both ways
        differ = [f"{k} ({there.get(k)} there, {here.get(k)} here)" for k in sorted(here.keys() | there.keys())
                  if there.get(k) != here.get(k)]
        if differ:
            raise ResumeError(f"{path} was trained otherwise: " + ", ".join(differ))
        states[seed] = state
    if resume and not states:
        raise ResumeError(f"no interrupted training of seed {', '.join(map(str, seeds))} under"
                          f" {detector.paths(out_root)[0].parent}")
    return states


def train(root: Path | str, out_root: Path | str = REFERENCE_ROOT, epochs: int = EPOCHS,
          seeds: tuple[int, ...] = SEEDS, add: bool = False, shares: Mapping[str, float] | None = None,
          mine: float | None = MINE, fine_tune: Path | str | None = None, command: str = COMMAND,
          scans: float = SCANS, width: int = WIDTH, resume: bool = False,
          letter_classes: bool = LETTER_CLASSES, head: str = HEAD) -> dict:
    """Train a member for each of ``seeds`` (``add``: beside the members saved under ``out_root``; ``shares``: the
    share of the non-digits drawn from each extra kind, ``EXTRAS``; ``mine``: ATOM's q; ``scans``:
    the share of images stored as scans; ``width`` and
    ``head``: a new member's channels and head; ``letter_classes``: each training letter a class of its own;
    ``fine_tune``: from the weights of the member of that seed saved under it, whose record the new one keeps),
    choose the detector's threshold on development digits, write its weights and record (``command``: the one that
    trained it); the record. Each member's progress is kept after every epoch (``partial_path``) until the detector is written;
    ``resume`` continues from there (``ResumeError``, before any training, where it cannot)."""
    starts: dict[int, tuple[nn.Module, dict]] = {}
    if fine_tune is not None:
        starts = {m.get("seed"): (net, m) for net, m in zip(*saved_members(fine_tune))}
    recipes = {seed: recipe(epochs, seed, shares, mine, scans,
                            detector.width_of(starts[seed][0].state_dict()) if seed in starts else width,
                            seed in starts, letter_classes,
                            detector.head_of(starts[seed][0].state_dict()) if seed in starts else head)
               for seed in seeds}
    states = interrupted_states(out_root, seeds, recipes, resume)
    rejection.development_digits(root)  # what choose() reads after the epochs: a file missing is said before them
    images, labels, held = training_digits(root)
    nets, about = saved_members(out_root) if add else ([], [])
    for seed in seeds:
        start, before = starts.get(seed, (None, None))
        net, record = train_member(images, labels, epochs, seed, shares, mine, start, scans, width,
                                   partial_path(out_root, seed), states.get(seed), letter_classes, head)
        if before is not None:
            record["fine_tuned_from"] = before  # the member it continued, as its record was
        nets.append(net)
        about.append(record)
    record = choose(root, out_root, about, held, command, nets)  # weights and record written as one
    for seed in seeds:
        partial_path(out_root, seed).unlink(missing_ok=True)
    return record


# What a missing or damaged data file raises here, each naming the file: a command says it in one line (``plainly``).
DATA_ERRORS = (data_utils.MNISTDataError, calibration.CalibrationDataError, font_digits.FontDigitsError)


def development_sets(root: Path | str) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The development digits thresholds are chosen on (``analysis.rejection.development_digits``), and the other
    development sets they are measured on (PENDIGITS' odd rows, the development non-digits), each (N, 28, 28) in
    [0, 1] as ``--predict`` prepares them."""
    chosen_on = {name: digits for name, (digits, _) in rejection.development_digits(root).items()}
    others = {"PENDIGITS odd rows (development)": pen_digits(root, slice(1, None, 2))[0].float() / 255,
              "development letters": nondigits.letters("development").float() / 255,
              "development objects (pieces)": nondigits.prepared_objects("development").float() / 255,
              **{f"development {kind}": nondigits.drawn(kind, rejection.DEVELOPMENT_DRAWN,
                                                        nondigits.DEVELOPMENT_SEED).float() / 255
                 for kind in nondigits.KINDS[1:]}}
    return chosen_on, others


def semeion_format_sets(development: dict[str, Tensor], held: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
    """Two development digit sets stored as SEMEION stores its digits (``analysis.external.binary_scans``: each ink
    box stretched to 16 x 16 and thresholded), then prepared as ``--predict`` prepares a scan: MFEAT's odd rows (of
    ``development_sets``' first) and the held-out MNIST writers ``held`` (N, 28, 28) in [0, 1]; each with whether
    ``--predict`` finds it a stretched bitmap (``scans_as_read``). What SEMEION's format alone costs, measured
    without SEMEION."""
    return {f"{name} as SEMEION stores them (development)": scans_as_read(external.binary_scans(digits))
            for name, digits in (("MFEAT odd rows", development[rejection.STRETCHED]), ("held-out MNIST writers", held))}


def choose(root: Path | str, out_root: Path | str, members: list[dict], held: Tensor, command: str = COMMAND,
           nets: list[nn.Module] | None = None) -> dict:
    """The threshold of the detector ``nets`` (None: the one saved under ``out_root``), chosen on the development
    digits, and the share it rejects of every development set (the digits cut from numbers too); written under
    ``out_root`` with ``members`` (what to record of each) and ``command`` — with ``nets``' weights, as one step, so
    weights and record never disagree. ``held``: the held-out writers' MNIST digits."""
    weights, record_path = detector.paths(out_root)
    found = detector.Detector(detector.members(load_file(str(weights))) if nets is None else nets, 0.0)
    development, others = development_sets(root)
    chosen_on = {name: found.digit_probability(digits) for name, digits in development.items()}
    threshold = rejection.choose_threshold(torch.cat(list(chosen_on.values())))
    pieces = found.digit_probability(number_pieces(held))
    measured = {**{f"{name} (chosen on)": p for name, p in chosen_on.items()},
                f"MNIST training writers held out ({len(held):,})": found.digit_probability(held.float() / 255),
                f"digits cut from {2 * NUMBERS} numbers of the held-out writers ({len(pieces):,})": pieces,
                **{name: found.digit_probability(images) for name, images in others.items()}}
    record = {"reject_below": round(threshold, 6), "chosen_on": f"{100 * rejection.DEVELOPMENT_REJECTED:g}% of the"
              " development digits", "rejected_percent": {k: round(rejection.rejected(p, threshold), 3)
                                                          for k, p in measured.items()},
              "members": members, "command": command,
              "note": "trained and chosen on training and development data only; no test set is read"}
    atomic_write_many({**({weights: safetensors_bytes(detector.state_of(nets))} if nets is not None else {}),
                       record_path: json_bytes(record)})
    detector._load.cache_clear()  # noqa: SLF001 - the files just changed
    return record


def seed_list(text: str) -> tuple[int, ...]:
    """``--seeds``: distinct non-negative integers, comma-separated."""
    try:
        seeds = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 0,1,2, got {text!r}") from None
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct and non-negative, got {text!r}")
    return seeds


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m training.detector", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=data_utils.default_data_dir())
    p.add_argument("--out-dir", type=Path, default=REFERENCE_ROOT, help="writes outputs/digit_detector.* under it")
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--seeds", type=seed_list, default=SEEDS, help="a member trained with each seed, comma-separated"
                   f" (default: {','.join(map(str, SEEDS))})")
    p.add_argument("--add", action="store_true", help="keep the members saved under --out-dir and add these")
    p.add_argument("--choose-only", action="store_true", help="keep the saved weights; choose the thresholds again")
    for kind, extra in EXTRAS.items():
        p.add_argument(extra.flag, dest=kind, type=number(float, 0, 1, high_open=True), default=0.0, metavar="SHARE",
                       help=f"the share of the non-digits drawn from {extra.about} (default: 0; docs/detector.md)")
    p.add_argument("--scans", type=number(float, 0, 1), default=SCANS, metavar="SHARE",
                   help="the share of all images, digits and non-digits alike, also stored as another digit set"
                   f" stores its digits (SEMEION's binary or optdigits' blocks; default: {SCANS:g})")
    p.add_argument("--mine", type=number(float, 0, 1, high_open=True), default=MINE, metavar="Q",
                   help="mine the non-digits (ATOM): of each four drawn, train on those the member finds most"
                   " digit-like after skipping the first Q of them (default: no mining)")
    p.add_argument("--width", type=number(int, 8, 256), default=WIDTH, metavar="CHANNELS",
                   help="a new member's first convolutions' channels, doubled twice deeper in (default:"
                   f" {WIDTH}; the members of one detector may differ)")
    p.add_argument("--head", choices=sorted(detector.architecture.HEADS), default=HEAD,
                   help="a new member's head: global average pooling, or a grid that keeps where on the 7x7 map each"
                   f" feature fired (default: {HEAD}; the members of one detector may differ)")
    p.add_argument("--letter-classes", action="store_true", help="teach each training letter as a class of its"
                   " own beside \"not a digit\" (a fine-tuned member's output layer is widened; the digit probability"
                   " is the ten digits' sum)")
    p.add_argument("--fine-tune", type=Path, metavar="DIR", help="start each member from the weights of the member"
                   " of its seed saved under DIR/outputs (at a quarter of the peak learning rate)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted training (the same command"
                   " without --resume): each member from its last finished epoch, kept in"
                   " outputs/digit_detector.seedN.partial.pt under --out-dir")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    if args.choose_only and args.resume:
        p.error("--resume continues a training; --choose-only trains nothing")
    shares = {kind: getattr(args, kind) for kind in EXTRAS}
    if sum(shares.values()) > 1:
        p.error(", ".join(f"{EXTRAS[kind].flag} {share:g}" for kind, share in shares.items() if share > 0)
                + ": shares of the same draws, they sum to at most 1")
    if args.choose_only or args.add:
        try:
            saved = saved_members(args.out_dir)[1]
        except Exception as exc:  # a damaged file: say which, without a traceback
            p.error(f"{detector.paths(args.out_dir)[0]} or its record: not the digit detector's ({type(exc).__name__})")
        if args.choose_only and not saved:
            p.error(f"--choose-only: no detector under {args.out_dir / 'outputs'} to choose for")
        if args.add and {m.get("seed") for m in saved} & set(args.seeds):
            p.error(f"--add: seeds {sorted({m.get('seed') for m in saved} & set(args.seeds))} are members already")
    if args.fine_tune is not None and args.width != WIDTH:
        p.error(f"--width {args.width}: sets a new member's channels; --fine-tune continues the saved members at theirs")
    if args.fine_tune is not None and args.head != HEAD:
        p.error(f"--head {args.head}: sets a new member's head; --fine-tune continues the saved members with theirs")
    if args.fine_tune is not None:
        try:
            tuned = {m.get("seed") for m in saved_members(args.fine_tune)[1]}
        except Exception as exc:  # a damaged file: say which, without a traceback
            p.error(f"--fine-tune: {detector.paths(args.fine_tune)[0]} or its record: not the digit detector's"
                    f" ({type(exc).__name__})")
        if not set(args.seeds) <= tuned:
            p.error(f"--fine-tune: no member of seed {sorted(set(args.seeds) - tuned)} under"
                    f" {args.fine_tune / 'outputs'}")
    with plainly(p, *DATA_ERRORS):  # a data file missing or damaged: one line
        if args.choose_only:  # the weights are the previous command's
            record = choose(args.data_dir, args.out_dir, saved, held_out_writers(args.data_dir)[0],
                            saved_command(args.out_dir))
        else:
            kept = saved_command(args.out_dir).split(" && ") if args.add and saved else []  # trained the members kept
            continued = saved_command(args.fine_tune).split(" && ") if args.fine_tune is not None else []
            command = " && ".join([*chained(kept, continued), shlex.join(["python", "-m", "training.detector",
                                                                          *(a for a in argv if a != "--resume")])])
            try:
                record = train(args.data_dir, args.out_dir, args.epochs, args.seeds, args.add, shares, args.mine,
                               args.fine_tune, command, args.scans, args.width, args.resume, args.letter_classes,
                               args.head)
            except ResumeError as exc:
                p.error(f"argument --resume: {exc}")
            except (KeyboardInterrupt, WriteError) as exc:
                kept = [str(partial_path(args.out_dir, s)) for s in args.seeds if partial_path(args.out_dir, s).is_file()]
                print(f"{p.prog}: " + ("interrupted" if isinstance(exc, KeyboardInterrupt) else f"cannot write {exc}")
                      + (f". The finished epochs are in {', '.join(kept)}; continue with: "
                         + shlex.join(["python", "-m", "training.detector", *argv, *([] if args.resume else ["--resume"])])
                         if kept else ". Nothing was saved."), file=sys.stderr)
                sys.exit(130 if isinstance(exc, KeyboardInterrupt) else 4)
    print(f"threshold {record['reject_below']:.3f} ({record['chosen_on']}); rejected: " + ", ".join(
        f"{k} {v:.2f}%" for k, v in record["rejected_percent"].items()))
    print("wrote " + ", ".join(map(str, detector.paths(args.out_dir))))
    if not args.choose_only:
        print("the readers' thresholds were chosen with the detector's previous weights: choose them again with"
              " python -m benchmarks.calibration --data-dir ../shared/data (or --calibrate for your own runs)")


if __name__ == "__main__":
    main()
