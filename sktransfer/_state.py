"""The fitted state of an estimator as plain values.

Shared by pickling (:class:`PlainPickleMixin`), skops and
:func:`sktransfer.save`: an estimator's ``_export()`` gives its weights (a
dict of tensors) and its fitted attributes (JSON values); ``_restore()``
rebuilds it from them. This module knows no estimator class: the estimators
import it, and ``_persistence`` (save/load/skops) builds on it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn
from torch.nn.parameter import is_lazy

import sktransfer

from ._device import resolve_device
from ._params import legacy_values
from .backbones._registry import get_backbone_spec

FORMAT_VERSION = 1
MIN_FORMAT_VERSION = 1
FITTED_STATE = "_sktransfer_fitted"
# What a pickle keeps of an estimator's __dict__ besides its fitted state.
_KEPT = ("_sklearn_version", "_metadata_request")


class PlainPickleMixin:
    """Pickle (and skops) support for sktransfer estimators.

    A fitted estimator pickles as its parameters plus :func:`plain_state`:
    the weights as safetensors bytes and the fitted attributes as plain
    values, like :func:`sktransfer.save`, so the pickle holds no torch or
    skorch objects (unless a parameter does), loads on a CPU-only machine, and
    skops can read it. ``_fitted_attribute`` is the attribute ``fit`` sets.
    """

    _fitted_attribute = None

    def __getstate__(self):
        state = super().__getstate__()
        if self._fitted_attribute not in self.__dict__:
            return state
        return plain_state(self, state)

    def __setstate__(self, state):
        state = dict(state)
        fitted = state.pop(FITTED_STATE, None)
        # Parameters added since the pickle was written: what it did then.
        state = {**legacy_values(self._params, state), **state}
        super().__setstate__(state)
        if fitted is not None:
            restore_plain_state(self, fitted)


def plain_state(estimator, state):
    """The pickle (and skops) state of a fitted ``estimator``.

    ``state`` is ``BaseEstimator.__getstate__``'s. Its parameters are kept as
    they are; the fitted attributes are replaced by what
    :func:`sktransfer.save` writes: plain values and the weights as
    safetensors bytes, on the CPU. Unpickling rebuilds the estimator like
    :func:`sktransfer.load` (:func:`restore_plain_state`), so a pickle holds no
    torch or skorch objects unless a parameter does, and a GPU fit loads on a
    CPU-only machine.
    """
    from safetensors.torch import save as safetensors_bytes

    name = type(estimator).__name__
    tensors, fitted = estimator._export()
    kept = {
        k: v
        for k, v in state.items()
        if k in _KEPT or k in estimator._get_param_names()
    }
    kept[FITTED_STATE] = {
        "format_version": FORMAT_VERSION,
        "sktransfer_version": sktransfer.__version__,
        "fitted": fitted,
        "weights": safetensors_bytes(cpu_tensors(tensors, name)),
    }
    return kept


def restore_plain_state(estimator, saved):
    """Rebuild the fitted attributes :func:`plain_state` stored (after the
    parameters are back in ``estimator.__dict__``). The device is the
    ``device`` parameter's, or the CPU (with a warning) when it is not
    available here."""
    from safetensors.torch import load as load_safetensors

    name = type(estimator).__name__
    version = saved.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"Cannot unpickle this {name}: it was pickled by sktransfer "
            f"{saved.get('sktransfer_version', 'of an unknown version')} in state "
            f"format {version!r}, but sktransfer {sktransfer.__version__} reads formats "
            f"{MIN_FORMAT_VERSION} to {FORMAT_VERSION}. Upgrade sktransfer: pip "
            f"install --upgrade sktransfer."
        )
    check_backbone_available(estimator.backbone, f"Cannot unpickle this {name}: it")
    tensors = load_safetensors(saved["weights"])
    device = saved_device(
        estimator.device,
        name,
        "To choose the device, save it with sktransfer.save "
        "and load it with sktransfer.load(path, device=...).",
    )
    estimator._restore(tensors, saved["fitted"], device)


def cpu_tensors(tensors, owner):
    """Contiguous CPU copies of ``tensors`` (safetensors refuses shared memory)."""
    out = {}
    for key, tensor in tensors.items():
        if is_lazy(tensor):
            raise ValueError(
                f"sktransfer.save: {owner}'s weight {key!r} is an uninitialized "
                f"lazy parameter (a lazy module that never ran); it cannot be "
                f"saved."
            )
        out[key] = tensor.detach().to("cpu", copy=True).contiguous()
    return out


def to_plain(value):
    """``value`` with numpy and torch values turned into Python ones (for JSON)."""
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def check_backbone_available(backbone, what):
    """Raise (naming ``what``) if the backbone ``backbone`` names is unknown here."""
    if isinstance(backbone, nn.Module):
        return
    try:
        get_backbone_spec(backbone)
    except (ValueError, TypeError, ImportError) as exc:
        raise type(exc)(
            f"{what} uses backbone {backbone!r}, which is not available here "
            f"({exc}) If it was added with sktransfer.register_backbone, register "
            f"it again (same name, same architecture) before loading."
        ) from exc


def saved_device(
    device, owner, advice="Pass sktransfer.load(path, device=...) to choose the device."
):
    """The ``device`` parameter resolved, or the CPU (warning) if unavailable."""
    try:
        return resolve_device(device, owner)
    except ValueError:
        warnings.warn(
            f"{owner} was saved with device={device!r}, which is not available "
            f"here; it is loaded on the CPU. {advice}",
            UserWarning,
            stacklevel=3,
        )
        return torch.device("cpu")
