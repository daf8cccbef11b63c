"""The digit detector in front of every reader: is this ink a digit at all?

A reader of the zoo answers with one of ten digits however unlike a digit its input is; its top probability
separates non-digits poorly (docs/predict.md). The detector (``models/detector.py``) is trained apart, with outlier
exposure as an eleventh class (Hendrycks, Mazeika & Dietterich 2019; a discriminator trained on in- and
out-distribution data, as Bitterwolf et al. 2022 find most such methods amount to): digits of many hands against
the training non-digits (``digits.nondigits``; how it was built and chosen: docs/detector.md). Its digit probability
is one minus that of the eleventh class (of every class from the eleventh on, where the letters have their own),
averaged over its members, networks trained alike from different seeds (``training.detector.SEEDS``): each doubts
non-digits the others let through.
Served, it multiplies the reader's calibrated probability into the one score the reader's threshold judges
(``analysis.gate``); the digits cut from a number pass the same test. Its record keeps the threshold it would use
alone (chosen on development digits only, as a reader's is) and what that rejects. Its files live beside the
zoo's weights:
``outputs/digit_detector.safetensors`` and ``outputs/digit_detector.json`` (``training.detector`` writes them).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from core.artifacts import REFERENCE_ROOT
from data_utils import normalize
from digits.prepare import aspect_views
from models import detector as architecture

STEM = "digit_detector"
ROOT = REFERENCE_ROOT  # where --predict, the web app and the benchmarks find the detector's files


class DetectorError(Exception):
    """The detector's files are damaged; the message names the file."""


def paths(root: Path | str = REFERENCE_ROOT) -> tuple[Path, Path]:
    """The detector's weights and its record under ``root``."""
    outputs = Path(root) / "outputs"
    return outputs / f"{STEM}.safetensors", outputs / f"{STEM}.json"


MEMBER = "member{}."  # the key prefix of each member's weights in a file of several
# Images per forward pass when the detector judges many: on a CPU a small batch's activations stay in cache, where a
# thousand's do not, and each image's answer is the same at any batch size (benchmarks.detector_batch measures both).
BATCH = 128

# How the members' answers become one, from their (M, N) probabilities that each input is not a digit. The record's
# "join" names it ("mean" where it names none): the measured alternatives are in benchmarks.gate_rules.
JOINS: dict[str, Callable[[Tensor], Tensor]] = {
    "mean": lambda not_digit: 1 - not_digit.mean(0),  # the members' digit probabilities averaged
    "log-odds": lambda not_digit: torch.logit(1 - not_digit, eps=1e-7).mean(0).sigmoid(),  # their odds' geometric mean
    "least": lambda not_digit: 1 - not_digit.amax(0),  # the most doubtful member's: any member's doubt is enough
}


@dataclass
class Detector:
    """The trained detector: one network or several trained alike with different seeds (members), whose digit
    probabilities are averaged, and the digit probability below which it alone would say "not a digit" (its
    record's; the served gate multiplies its probability with the reader's instead)."""

    nets: list[nn.Module]
    threshold: float
    fingerprint: str = ""  # of its weights' file (and join): a reader's threshold names the detector it was chosen with
    join: str = "mean"  # how the members' probabilities become one (JOINS)
    remembered: dict[bytes, Tensor] | None = None  # answers kept by question, within ``remembering``

    @torch.no_grad()
    def digit_probability(self, digits: Tensor, stretched: Tensor | None = None, batch_size: int = BATCH) -> Tensor:
        """For (N, 28, 28) digits in [0, 1], prepared as ``--predict`` prepares them: the probability that each is a
        digit at all, the mean of the members'. ``stretched`` (N,) marks bitmaps stretched to their frame
        (``digits.prepare.stretched_bitmap``), whose own width the format lost: each is judged at several widths
        (``aspect_views``) and keeps the most digit-like, since at one of them it may be the digit it was."""
        remembered = self.remembered  # read once: another thread's ``remembering`` may end meanwhile
        if remembered is None:
            return self._probability(digits, stretched, batch_size)
        question = hashlib.blake2b(f"{batch_size} {stretched is None}".encode(), digest_size=20)
        for part in (digits, stretched):
            if part is not None:
                question.update(f"{part.dtype}{tuple(part.shape)}".encode())
                question.update(part.detach().cpu().contiguous().numpy().tobytes())
        key = question.digest()
        if key not in remembered:
            remembered[key] = self._probability(digits, stretched, batch_size)
        return remembered[key].clone()

    def _probability(self, digits: Tensor, stretched: Tensor | None, batch_size: int) -> Tensor:
        probability = self._mean(digits, batch_size)
        if stretched is not None and bool(stretched.any()):
            views = aspect_views(digits[stretched])
            probability[stretched] = torch.stack([self._mean(view, batch_size) for view in views]).amax(0)
        return probability

    def _mean(self, digits: Tensor, batch_size: int) -> Tensor:
        if len(digits) == 0:
            return torch.zeros(0)
        chunks = batches(digits, batch_size)
        odds = [torch.cat([net(x).softmax(1)[:, architecture.NOT_A_DIGIT:].sum(1) for x in chunks]) for net in self.nets]
        return JOINS[self.join](torch.stack(odds))


def batches(digits: Tensor, batch_size: int) -> list[Tensor]:
    """(N, 28, 28) or (N, 1, 28, 28) digits in [0, 1] as a member takes them: normalized, (B, 1, 28, 28) each."""
    return [normalize(chunk.float()).reshape(-1, 1, 28, 28) for chunk in digits.split(batch_size)]


@contextlib.contextmanager
def remembering(root: Path | str | None = None) -> Iterator[None]:
    """Within it, the detector saved under ``root`` answers a question it was asked before (the same digits, bit for
    bit) with the answer it gave then, without running its members again: a benchmark that lets many readers read
    one set asks it the same thing once per reader, as does the web app's request that every model answers. Only
    the time changes: it computes each answer as it would have, the first time it is asked. Threads may overlap:
    the first in keeps the answers until it leaves, and a question asked after that is computed again."""
    found = load(root)
    if found is None or found.remembered is not None:  # no detector, or already remembering
        yield
        return
    found.remembered = {}
    try:
        yield
    finally:
        found.remembered = None


def build(width: int = architecture.WIDTH, outputs: int = architecture.NOT_A_DIGIT + 1,
          head: str = architecture.HEAD) -> nn.Module:
    return architecture.Net(width, outputs=outputs, head=head)


def width_of(state: dict[str, Tensor]) -> int:
    """The width of the member whose weights are ``state``: its first convolution's channels."""
    return int(state["layers.0.weight"].shape[0])


def outputs_of(state: dict[str, Tensor]) -> int:
    """The outputs of the member whose weights are ``state``: the rows of its one linear layer (eleven, or more
    where the non-digits were taught in several classes; every output from ``NOT_A_DIGIT`` on is one)."""
    return int(next(v for v in state.values() if v.dim() == 2).shape[0])


def head_of(state: dict[str, Tensor]) -> str:
    """The head of the member whose weights are ``state`` (``models.detector.HEADS``): only the "grid" head has
    weights right after the last convolution's batch norm."""
    return "grid" if "layers.20.weight" in state else "average"


def state_of(nets: list[nn.Module]) -> dict[str, Tensor]:
    """The weights of a detector's members as one state dict: a single member's as it is, several under
    ``MEMBER`` prefixes."""
    if len(nets) == 1:
        return nets[0].state_dict()
    return {MEMBER.format(i) + k: v for i, net in enumerate(nets) for k, v in net.state_dict().items()}


def members(state: dict[str, Tensor]) -> list[nn.Module]:
    """The member networks of a state dict ``state_of`` made, evaluating."""
    numbers = sorted({int(k.split(".")[0].removeprefix("member")) for k in state if k.startswith("member")})
    states = [{k.removeprefix(MEMBER.format(i)): v for k, v in state.items() if k.startswith(MEMBER.format(i))}
              for i in numbers] or [state]
    nets = []
    for one in states:
        net = build(width_of(one), outputs_of(one), head_of(one))  # members may differ in width, outputs and head
        net.load_state_dict(one)
        nets.append(net.eval())
    return nets


def load(root: Path | str | None = None) -> Detector | None:
    """The detector saved under ``root`` (default ``ROOT``: the repository's), or None where none was trained
    (readers then decide alone); read once per process."""
    return _load(Path(root or ROOT))


@functools.lru_cache(maxsize=4)
def _load(root: Path) -> Detector | None:
    weights, record = paths(root)
    if not weights.is_file() and not record.is_file():
        return None
    try:
        nets = members(load_file(str(weights)))
        fingerprint = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
        saved = json.loads(record.read_text())
        threshold = float(saved["reject_below"])
        join = saved.get("join", "mean")
    except FileNotFoundError as exc:
        raise DetectorError(f"{exc.filename}: missing beside its pair; run python -m training.detector again") from None
    except Exception as exc:  # a damaged file: say which, without a traceback
        raise DetectorError(f"{weights} or {record}: not the digit detector's ({type(exc).__name__}); run"
                            " python -m training.detector again") from None
    if not 0 <= threshold <= 1:
        raise DetectorError(f"{record}: its threshold is outside [0, 1]; run python -m training.detector again")
    if join not in JOINS:
        raise DetectorError(f"{record}: join {join!r} is none of {', '.join(JOINS)}")
    if join != "mean":  # a reader's threshold chosen with the mean does not hold for another join of the same weights
        fingerprint = hashlib.sha256(f"{fingerprint} {join}".encode()).hexdigest()[:16]
    return Detector(nets, threshold, fingerprint, join=join)
