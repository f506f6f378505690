"""Resolving ``weights=``: names, enums, checkpoint files and state dicts.

Files are loaded without running code: ``.safetensors`` through safetensors,
``.pt``/``.pth``/``.bin``/``.ckpt`` through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch.nn.parameter import is_lazy

from .._files import hash_file

_TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".tar")


def is_weights_file(weights):
    return isinstance(weights, (str, os.PathLike)) and (
        str(weights).endswith(_TORCH_SUFFIXES + (".safetensors",))
        or os.sep in str(weights)
        or "/" in str(weights)
    )


def load_weights_file(path):
    """Load a state dict from ``path`` safely (no pickle code execution)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"weights file not found: {str(path)!r}. Pass an existing .pt, .pth "
            f"or .safetensors file, a state dict, 'DEFAULT', or None."
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError, RuntimeError, ...
        raise ValueError(
            f"Cannot load weights file {str(path)!r} safely ({type(exc).__name__}: "
            f"{exc}). Only tensors and plain containers are loaded "
            f"(torch.load(weights_only=True)); re-save the file with "
            f"torch.save(model.state_dict(), path) or as .safetensors."
        ) from exc
    return unwrap_state_dict(obj, f"weights file {str(path)!r}")


def unwrap_state_dict(obj, what="weights"):
    """Accept a state dict, or a checkpoint dict holding one under a usual key."""
    if (
        isinstance(obj, Mapping)
        and obj
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    ):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model", "module"):
            if key in obj and isinstance(obj[key], Mapping):
                return unwrap_state_dict(obj[key], what)
    raise ValueError(
        f"{what} is not a state dict (a mapping of parameter names to tensors); "
        f"got {type(obj).__name__}"
        + (f" with keys {list(obj)[:5]}" if isinstance(obj, Mapping) else "")
        + "."
    )


def load_state_dict_checked(model, state_dict, *, backbone_name, what):
    """``model.load_state_dict(state_dict)`` with an error naming the mismatch.

    Keys of the form ``module.x`` (DataParallel) are accepted.
    """
    state_dict = _strip_prefix(state_dict, "module.")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict
        and not is_lazy(expected[k])
        and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) {_few(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) {_few(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es) {_few(shapes)}")
        raise ValueError(
            f"{what} do not fit backbone {backbone_name!r}: "
            + "; ".join(parts)
            + ". The checkpoint is probably of another architecture or number of "
            "classes; pick the backbone it was saved from."
        )
    model.load_state_dict(state_dict, strict=True)


def _few(items, n=3):
    shown = ", ".join(str(i) for i in items[:n])
    return f"[{shown}{', ...' if len(items) > n else ''}]"


def _strip_prefix(state_dict, prefix):
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return state_dict


# -- weights identities -----------------------------------------------------------
# Every weights identity is "<source>:<details>", built by weights_identity.
# Those of these sources name exactly the values loaded (content digests,
# versioned library weights, seeded random initialisation), so a feature cache
# key may use them instead of digesting the values; any other source (a custom
# create() function, whose code may change under the same name) may not.
EXACT_SOURCES = (
    "torchvision",
    "timm",
    "sktransfer",
    "random",
    "file",
    "state_dict",
    "module",
)


def weights_identity(source, *details):
    """The identity string of weights: ``"<source>:<detail>:<detail>..."``."""
    return ":".join([source, *map(str, details)])


def names_exact_values(identity):
    """Whether the weights ``identity`` determines the values loaded."""
    return identity.split(":", 1)[0] in EXACT_SOURCES and ":" in identity


def file_identity(path):
    """A content digest of a weights file."""
    return weights_identity(
        "file", "sha256", hash_file(hashlib.sha256(), path).hexdigest()
    )


def state_dict_identity(state_dict):
    """A content digest of a state dict (names, dtypes, shapes and values).

    Uninitialized parameters of lazy modules (``nn.LazyLinear``) have no
    values yet; they enter the digest by name only.
    """
    h = hashlib.sha256()
    for key in sorted(state_dict):
        if is_lazy(state_dict[key]):
            h.update(f"{key}:uninitialized:".encode())
            continue
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)}:".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return weights_identity("state_dict", "sha256", h.hexdigest())


def module_identity(module):
    """A digest of a user's nn.Module: its class and current parameters."""
    cls = f"{type(module).__module__}.{type(module).__qualname__}"
    return weights_identity("module", cls, state_dict_identity(module.state_dict()))
