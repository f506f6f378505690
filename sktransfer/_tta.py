"""Test-time augmentation: predictions averaged over deterministic views.

The views act on the preprocessed batch (N, C, H, W), after resizing,
cropping and normalisation, so that every view is as large as the input the
network was trained on. They are fixed transforms (no random numbers), in
this order:

    0 identity, 1 horizontal flip,
    2-5 shifts by ``s`` pixels right, left, down, up,
    6-9 the same shifts of the flipped image,

with ``s = max(1, round(min(H, W) / 16))`` (4 pixels at 64 px) and the
vacated border filled by repeating the edge pixels. ``tta="flip"`` takes the
first 2 views, an int ``n`` the first ``n`` (``1`` is the plain prediction).

Classifier probabilities are averaged (the network's output becomes the log
of the mean probability, so that softmax gives the mean); regression outputs
are averaged as they are.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

MAX_VIEWS = 10
COMBINES = ("softmax", "sigmoid", "mean")


def n_views(tta):
    """The number of views of a ``tta`` value (None -> 1)."""
    if tta is None:
        return 1
    if tta == "flip":
        return 2
    return int(tta)


def shift_step(height, width):
    """The shift of the shift views, in pixels."""
    return max(1, round(min(height, width) / 16))


def _shift(x, dy, dx):
    """``x`` moved by (dy, dx) pixels; the border repeats the edge pixels."""
    h, w = x.shape[-2:]
    pad = (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0))
    padded = F.pad(x, pad, mode="replicate")
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top : top + h, left : left + w]


def view(x, index):
    """View ``index`` (0 to 9, see the module docstring) of a batch ``x``."""
    if not 0 <= index < MAX_VIEWS:
        raise ValueError(f"there are {MAX_VIEWS} views, got index {index}")
    flipped = index == 1 or index >= 6
    if flipped:
        x = x.flip(-1)
    if index in (0, 1):
        return x
    s = shift_step(*x.shape[-2:])
    dy, dx = [(0, s), (0, -s), (s, 0), (-s, 0)][(index - 2) % 4]
    return _shift(x, dy, dx)


class TTAModel(nn.Module):
    """Runs ``model`` on the first ``n`` views of each batch and combines
    the outputs: ``"softmax"`` (log of the mean class probability),
    ``"sigmoid"`` (logit of the mean per-label probability) or ``"mean"``
    (mean output)."""

    def __init__(self, model, n, combine):
        super().__init__()
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
        self.model = model
        self.n = n
        self.combine = combine

    def forward(self, x):
        outs = torch.stack([self.model(view(x, i)) for i in range(self.n)])
        if self.combine == "mean":
            return outs.mean(0)
        if self.combine == "softmax":
            return outs.float().softmax(-1).mean(0).log()
        p = torch.sigmoid(outs.float()).mean(0)
        return torch.logit(p)


def tta_model(model, tta, combine, *, owner, images):
    """``model``, or a :class:`TTAModel` of it for ``tta`` (the parameter).

    ``images`` is False for passthrough input, which has no views.
    """
    n = n_views(tta)
    if n == 1:
        return model
    if not images:
        raise ValueError(
            f"{owner}: tta={tta!r} transforms images, but this estimator reads "
            f"X with preprocessing='passthrough'; set tta=None."
        )
    return TTAModel(model, n, combine)
