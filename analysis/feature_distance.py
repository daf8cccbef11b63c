"""How far an image lies from every digit in the digit detector's own features: the Mahalanobis distance to the
nearest digit class (Lee et al. 2018), each class a Gaussian with a covariance shared by all ten, fitted on
digits the detector trains on, per member, the members' distances averaged.

The detector's probability says which side of its learned boundary an image falls; this says how unlike the
digits it was taught the image's features are, which a letter that lands on the digit side can still be.
``benchmarks.feature_distance`` measures what it adds to the gate on development data; nothing serves it (not
adopted: docs/detector.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from analysis.detector import batches
from digits.prepare import aspect_views

CLASSES = 10
SHRINKAGE = 1e-3  # of the mean variance added to the shared covariance's diagonal, so that it inverts


@torch.no_grad()
def features(net: nn.Module, digits: Tensor, batch_size: int = 1000) -> Tensor:
    """(N, F) penultimate features of one detector member (``models.detector.Net``: what its last layer weighs)
    for (N, 28, 28) or (N, 1, 28, 28) digits in [0, 1] prepared as ``--predict`` prepares them."""
    body = net.eval().layers[:-2]  # all but the dropout and the last linear layer
    chunks = batches(digits, batch_size)
    return torch.cat([body(x) for x in chunks]) if chunks else torch.zeros(0)


@dataclass
class FeatureDistance:
    """Per member: the ten class means (10, F) and the shared covariance's inverse (F, F)."""

    means: list[Tensor]
    precisions: list[Tensor]

    @classmethod
    def fit(cls, nets: list[nn.Module], digits: Tensor, labels: Tensor) -> FeatureDistance:
        """Fitted on labelled digits (the detector's training digits, never a test set)."""
        means, precisions = [], []
        for net in nets:
            f = features(net, digits).double()
            centres = torch.stack([f[labels == c].mean(0) for c in range(CLASSES)])
            centred = f - centres[labels]
            covariance = centred.T @ centred / len(f)
            covariance += SHRINKAGE * covariance.diagonal().mean() * torch.eye(len(covariance), dtype=covariance.dtype)
            means.append(centres)
            precisions.append(torch.linalg.inv(covariance))
        return cls(means, precisions)

    @torch.no_grad()
    def distance(self, nets: list[nn.Module], digits: Tensor, stretched: Tensor | None = None) -> Tensor:
        """(N,) squared distance to the nearest class, per feature, the members' mean. ``stretched`` marks bitmaps
        stretched to their frame, judged at several widths as the detector judges them, keeping the nearest."""
        distance = self._mean(nets, digits)
        if stretched is not None and bool(stretched.any()):
            views = aspect_views(digits[stretched])
            distance[stretched] = torch.stack([self._mean(nets, view) for view in views]).amin(0)
        return distance

    def _mean(self, nets: list[nn.Module], digits: Tensor) -> Tensor:
        if len(digits) == 0:
            return torch.zeros(0)
        out = []
        for net, centres, precision in zip(nets, self.means, self.precisions, strict=True):
            f = features(net, digits).double()
            squared = torch.stack([((f - m) @ precision * (f - m)).sum(1) for m in centres]).amin(0)
            out.append(squared / centres.shape[1])
        return torch.stack(out).mean(0).float()


def discounted(score: Tensor, distance: Tensor, scale: float, weight: float) -> Tensor:
    """The gate's score times exp(-weight * distance / scale): still in [0, 1], lower the farther the features lie
    from every digit's; ``scale`` (a typical digit's distance, e.g. the development digits' median) makes
    ``weight`` mean the same for any detector. Weight 0 is the score as served."""
    return score * torch.exp(-weight * distance / scale)
