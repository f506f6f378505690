"""Mixed precision and data loading of a fine-tuner's skorch net.

:class:`MixedPrecisionMixin` runs the forward pass of a skorch ``NeuralNet``
under ``torch.autocast`` (``precision="bfloat16"`` or ``"float16"``) and, for
float16, scales the loss with a ``torch.amp.GradScaler`` so that small
gradients do not underflow (the gradients are unscaled before the
``on_grad_computed`` callbacks, e.g. gradient clipping, see them). Outputs
are cast back to float32 before the loss. On CUDA, batches are copied to the
device without blocking (the DataLoader pins them, see
:func:`loader_params`).

:func:`loader_params` gives the DataLoader settings of a fine-tuner:
``n_jobs`` worker processes decoding and augmenting the training images
(kept alive between epochs), and pinned host memory when the device is CUDA.
"""

from __future__ import annotations

import torch
from skorch import NeuralNet
from skorch.dataset import unpack_data

from ._device import autocast


class MixedPrecisionMixin:
    """skorch ``NeuralNet`` mixin: autocast forward passes, float16 loss scaling.

    ``precision`` is one of ``"float32"`` (nothing changes), ``"bfloat16"``
    or ``"float16"``. The scaler is created by ``initialize`` as
    ``grad_scaler_`` (None unless float16).
    """

    def __init__(self, *args, precision="float32", **kwargs):
        super().__init__(*args, **kwargs)
        self.precision = precision

    def initialize(self):
        super().initialize()
        device = torch.device(self.device)
        self.grad_scaler_ = (
            torch.amp.GradScaler(device.type) if self.precision == "float16" else None
        )
        return self

    def infer(self, x, **fit_params):
        device = torch.device(self.device)
        if isinstance(x, torch.Tensor) and device.type == "cuda":
            x = x.to(device, non_blocking=True)
        with autocast(device, self.precision):
            y = super().infer(x, **fit_params)
        if isinstance(y, torch.Tensor) and y.is_floating_point():
            return y.float()
        return y

    def train_step_single(self, batch, **fit_params):
        scaler = getattr(self, "grad_scaler_", None)
        if scaler is None:
            return super().train_step_single(batch, **fit_params)
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        scaler.scale(loss).backward()
        for name in self._optimizers:
            scaler.unscale_(getattr(self, name + "_"))
        return {"loss": loss, "y_pred": y_pred}

    def _step_optimizer(self, step_fn):
        scaler = getattr(self, "grad_scaler_", None)
        if scaler is None:
            return super()._step_optimizer(step_fn)
        if step_fn is not None:
            step_fn()
        for name in self._optimizers:
            scaler.step(getattr(self, name + "_"))  # skipped on inf/NaN gradients
        scaler.update()
        return None


class MixedPrecisionNet(MixedPrecisionMixin, NeuralNet):
    """The skorch net of a fine-tuner (``precision=`` as in the mixin)."""


def loader_params(n_jobs, device):
    """skorch ``iterator_*`` parameters: ``n_jobs`` DataLoader worker
    processes for the training and validation images, pinned memory on CUDA."""
    params = {}
    if n_jobs:
        for which in ("iterator_train", "iterator_valid"):
            params[f"{which}__num_workers"] = int(n_jobs)
            params[f"{which}__persistent_workers"] = True
    if torch.device(device).type == "cuda":
        params["iterator_train__pin_memory"] = True
        params["iterator_valid__pin_memory"] = True
    return params
