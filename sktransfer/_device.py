"""Devices and precision: where and in which float type the network runs."""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device, owner):
    """ "auto" -> cuda, then mps, then cpu; anything else must be available."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"{owner}: device must be 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a "
            f"torch.device, got {device!r}."
        ) from exc
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available()
        and (resolved.index is None or resolved.index < torch.cuda.device_count()),
        "mps": getattr(torch.backends, "mps", None) is not None
        and torch.backends.mps.is_available(),
    }.get(resolved.type, False)
    if not available:
        raise ValueError(
            f"{owner}: device {device!r} is not available on this machine; use "
            f"device='auto' to pick the best available one, or device='cpu'."
        )
    return resolved


def autocast(device, precision):
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def wants_channels_last(model, device):
    """channels_last helps convolutions on CPU and CUDA (measured: ~2x on CPU)."""
    return device.type in ("cpu", "cuda") and any(
        isinstance(m, torch.nn.Conv2d) for m in model.modules()
    )
