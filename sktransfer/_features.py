"""From a backbone to feature vectors: layer selection and pooling."""

from __future__ import annotations

import difflib

import torch
from torch import nn

from .backbones._load import without_head

POOLINGS = ("avg", "max", "cls", "flatten")


def pool(output, pooling, *, layer="output"):
    """Turn one layer's output into (N, D) vectors.

    4-D outputs are read as (N, C, H, W) feature maps and 3-D outputs as
    (N, tokens, D) sequences; ``"cls"`` takes the first token; ``"flatten"``
    keeps every value.
    """
    if isinstance(output, (tuple, list)):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise TypeError(
            f"Layer {layer!r} returns {type(output).__name__}, not a tensor; "
            f"choose another layer."
        )
    if output.ndim == 2:
        return output
    if pooling == "flatten":
        return output.flatten(1)
    if output.ndim == 4:
        if pooling == "avg":
            return output.mean(dim=(2, 3))
        if pooling == "max":
            return output.amax(dim=(2, 3))
        raise ValueError(
            f"pooling='cls' needs token outputs (N, tokens, dim), but layer "
            f"{layer!r} returns a feature map of shape {tuple(output.shape)}; "
            f"use pooling='avg' or 'max'."
        )
    if output.ndim == 3:
        if pooling == "avg":
            return output.mean(dim=1)
        if pooling == "max":
            return output.amax(dim=1)
        return output[:, 0]
    return output.flatten(1)


# RuntimeErrors that say nothing about the input: passed on unchanged.
_NOT_INPUT_ERRORS = tuple(
    getattr(torch, name)
    for name in ("OutOfMemoryError", "AcceleratorError")
    if hasattr(torch, name)
) + (NotImplementedError,)


class _Stop(Exception):
    """Raised by a hook once every requested layer has been captured."""


class FeatureModel(nn.Module):
    """Runs a backbone and returns pooled features of the requested layers.

    ``layers`` None means the pooled pre-classifier representation (the head
    replaced by ``nn.Identity``). Otherwise forward hooks capture the named
    modules; the forward stops as soon as all of them have run. Takes
    ownership of ``model`` (the private copy from ``load_backbone``).
    """

    def __init__(self, model, head, layers, pooling):
        super().__init__()
        self.layers = layers
        self.pooling = pooling
        self.body = without_head(model, head) if layers is None else model

    def forward(self, x):
        try:
            return self._forward(x)
        except _NOT_INPUT_ERRORS:
            raise
        except RuntimeError as exc:
            # torch reports an input the backbone cannot take (wrong rank,
            # channels or size) as a bare RuntimeError from deep inside.
            raise ValueError(
                f"The backbone ({type(self.body).__name__}) failed on an input "
                f"batch of shape {tuple(x.shape)} ({exc}). Check that X has the "
                f"shape the backbone expects; with preprocessing='passthrough' X "
                f"reaches the backbone unchanged (a CNN needs (n, C, H, W))."
            ) from exc

    def _forward(self, x):
        if self.layers is None:
            return pool(self.body(x), self.pooling)
        # Hooks live only during the call, so the module stays picklable.
        captured = {}
        modules = dict(self.body.named_modules())

        def hook_for(name):
            def hook(module, args, output):
                captured[name] = output
                if len(captured) == len(self.layers):
                    raise _Stop

            return hook

        handles = [modules[n].register_forward_hook(hook_for(n)) for n in self.layers]
        try:
            self.body(x)
        except _Stop:
            pass
        finally:
            for handle in handles:
                handle.remove()
        missing = [name for name in self.layers if name not in captured]
        if missing:
            raise ValueError(
                f"Layer(s) {missing} did not run during the forward pass; pick "
                f"modules that the backbone's forward uses."
            )
        return torch.cat(
            [pool(captured[n], self.pooling, layer=n).flatten(1) for n in self.layers],
            dim=1,
        )


def check_layers(model, layer, *, backbone_name, owner):
    """Normalise ``layer`` to None or a list of module names present in model."""
    if layer is None:
        return None
    layers = [layer] if isinstance(layer, str) else layer
    if (
        not isinstance(layers, (list, tuple))
        or not layers
        or not all(isinstance(n, str) for n in layers)
    ):
        raise TypeError(
            f"{owner}: layer must be None, a module name or a list of module "
            f"names, got {layer!r}."
        )
    names = [n for n, _ in model.named_modules() if n]
    for name in layers:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
            top = [n for n, _ in model.named_children()]
            raise ValueError(
                f"{owner}: backbone {backbone_name!r} has no layer {name!r}. "
                + (f"Close names: {close}. " if close else "")
                + f"Top-level modules: {top}; any name from "
                f"dict(model.named_modules()) works."
            )
    return list(layers)
