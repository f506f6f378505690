"""Best weights, interruption and resumable checkpoints of a fine-tuning run.

:class:`TrainingState` is the last of sktransfer's skorch callbacks. It keeps
an in-memory copy of the best epoch's weights (so that Ctrl-C leaves a usable
estimator), and with ``checkpoint_dir`` writes after every epoch what is needed
to continue the run exactly: the module, optimizer, learning-rate scheduler
and early-stopping states, the history and the torch random state. Only state
dicts, tensors and plain values are saved (``torch.save``), and checkpoints are
read back with ``torch.load(weights_only=True)``, which runs no code.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback
from torch import nn

from ._files import atomic_write
from ._params import legacy_values, names
from ._state import to_plain
from .backbones._weights import file_identity, module_identity, state_dict_identity

CHECKPOINT_FORMAT = 1
CHECKPOINT_FILE = "checkpoint.pt"


class TrainingState(Callback):
    """Tracks the best epoch, writes checkpoints and resumes from one.

    Parameters
    ----------
    monitor : str
        History key whose minimum defines the best epoch (``"train_loss"``,
        or ``"valid_loss"`` with early stopping).
    keep_best : bool
        Keep a CPU copy of the best epoch's weights (not needed when skorch's
        ``EarlyStopping`` keeps them).
    path : Path or None
        Checkpoint file written after every epoch, or None.
    identity : dict or None
        ``{"config": ..., "data": ...}`` stored in the checkpoint to recognise
        the run it belongs to.
    resume : dict or None
        A checkpoint (as read by :func:`read_checkpoint`) restored when
        training begins.
    """

    def __init__(
        self,
        monitor="train_loss",
        keep_best=True,
        path=None,
        identity=None,
        resume=None,
    ):
        self.monitor = monitor
        self.keep_best = keep_best
        self.path = path
        self.identity = identity
        self.resume = resume

    def initialize(self):
        self.best_epoch_ = None
        self.best_score_ = math.inf
        self.best_state_ = None
        self.saved_epoch_ = 0
        return self

    # -- callback hooks -------------------------------------------------
    def on_train_begin(self, net, **kwargs):
        if self.resume is not None:
            self._restore(net, self.resume)
            self.resume = None  # restored once; a later fit starts afresh

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        score = row.get(self.monitor)
        if score is not None and score < self.best_score_:
            self.best_score_ = float(score)
            self.best_epoch_ = int(row["epoch"])
            if self.keep_best:
                self.best_state_ = _cpu_copy(net.module_.state_dict())
        if self.path is not None:
            self._save(net)

    def on_train_end(self, net, **kwargs):
        # Early stopping ends an epoch by raising KeyboardInterrupt before
        # this callback saw it: record the finished run (with the best
        # weights EarlyStopping has just restored).
        if self.path is not None and stopped_early(net):
            self._save(net, finished=True)

    # -- checkpoints ----------------------------------------------------
    def _save(self, net, finished=False):
        completed = completed_epochs(net.history)
        callbacks = dict(net.callbacks_)
        schedule = callbacks.get("lr_schedule")
        scheduler = getattr(schedule, "lr_scheduler_", None)
        es = callbacks.get("early_stopping")
        state = {
            "format": CHECKPOINT_FORMAT,
            "identity": json.dumps(self.identity, sort_keys=True),
            "epoch": completed,
            "finished": bool(finished or completed >= net.max_epochs),
            "module": net.module_.state_dict(),
            "optimizer": net.optimizer_.state_dict(),
            "lr_scheduler": scheduler.state_dict() if scheduler is not None else None,
            "history": json.dumps(to_plain(list(net.history[:completed]))),
            "early_stopping": _early_stopping_state(es),
            "best": {
                "epoch": self.best_epoch_,
                "score": self.best_score_,
                "state": self.best_state_,
            },
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": _cuda_rng_state(net),
        }
        atomic_write(self.path, lambda tmp: torch.save(state, tmp))
        self.saved_epoch_ = completed

    def _restore(self, net, ckpt):
        net.module_.load_state_dict(ckpt["module"])
        net.optimizer_.load_state_dict(ckpt["optimizer"])
        callbacks = dict(net.callbacks_)
        scheduler = getattr(callbacks.get("lr_schedule"), "lr_scheduler_", None)
        if scheduler is not None and ckpt["lr_scheduler"] is not None:
            scheduler.load_state_dict(ckpt["lr_scheduler"])
        es = callbacks.get("early_stopping")
        if es is not None and ckpt["early_stopping"] is not None:
            for key, value in ckpt["early_stopping"].items():
                setattr(es, key, value)
        best = ckpt["best"]
        self.best_epoch_, self.best_score_ = best["epoch"], best["score"]
        self.best_state_ = best["state"]
        self.saved_epoch_ = ckpt["epoch"]
        torch.set_rng_state(ckpt["rng_cpu"])
        device = torch.device(net.device)
        if ckpt["rng_cuda"] is not None and device.type == "cuda":
            torch.cuda.set_rng_state(ckpt["rng_cuda"], device)


def completed_epochs(history):
    """Number of history rows of epochs that ran to their end."""
    return sum(1 for row in history if "train_loss" in row)


def stopped_early(net):
    """Whether skorch's EarlyStopping ended the training."""
    es = dict(net.callbacks_).get("early_stopping")
    return es is not None and getattr(es, "misses_", 0) >= es.patience


def read_checkpoint(checkpoint_dir, identity, owner, params=()):
    """The checkpoint in ``checkpoint_dir`` if it belongs to this run, else None.

    A checkpoint of another configuration, or one that cannot be read, is
    ignored with a warning (it is overwritten by the new run). ``params``
    (the estimator's parameter table) gives the legacy values of parameters
    an older checkpoint does not name.
    """
    import warnings

    path = Path(checkpoint_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        saved = json.loads(ckpt["identity"])
        if ckpt["format"] != CHECKPOINT_FORMAT:
            raise ValueError(
                f"checkpoint format {ckpt['format']}, this sktransfer "
                f"reads format {CHECKPOINT_FORMAT}"
            )
    except Exception as exc:  # unreadable, truncated, not ours
        warnings.warn(
            f"{owner}: cannot read the checkpoint {str(path)!r} "
            f"({type(exc).__name__}: {exc}); training starts from scratch and "
            f"overwrites it.",
            UserWarning,
            stacklevel=4,
        )
        return None
    differences = _differences(saved, identity, params)
    if differences:
        warnings.warn(
            f"{owner}: the checkpoint {str(path)!r} belongs to another "
            f"training run ({differences}); it is ignored, training starts "
            f"from scratch and overwrites it. Use another checkpoint_dir to "
            f"keep it.",
            UserWarning,
            stacklevel=4,
        )
        return None
    return ckpt


def run_identity(params, data, y, classes=None, exclude=()):
    """What makes a training run resumable: its parameters and its data.

    ``params`` are ``get_params(deep=False)`` (those in ``exclude``, which do
    not change what training computes, left out) in a canonical JSON form, a
    weights file by its content. The data digest
    covers the number of samples, every target and the content of up to 16
    evenly spaced images (all of a tensor).
    """
    weights = params.get("weights")
    if isinstance(weights, (str, os.PathLike)) and Path(weights).is_file():
        params = {**params, "weights": file_identity(weights)}  # its content
    config = {k: _canonical(v) for k, v in sorted(params.items()) if k not in exclude}
    h = hashlib.sha256()
    y = np.ascontiguousarray(y)
    h.update(f"{len(data)}:{y.dtype.str}:{y.shape}:".encode())
    h.update(y.tobytes())
    h.update(_classes_text(classes).encode())
    if isinstance(data, torch.Tensor):
        h.update(data.contiguous().numpy().tobytes())
    else:
        n = len(data)
        for i in sorted(set(np.linspace(0, n - 1, min(n, 16)).astype(int).tolist())):
            h.update(data.key(i).encode())
    return {"config": config, "data": h.hexdigest()}


def _classes_text(classes):
    """``repr(list(classes))`` as NumPy 2 writes it, under any NumPy.

    NumPy 2 writes a scalar ``np.int64(3)`` where NumPy 1 wrote ``3``; spelled
    out here so that a checkpoint's identity does not change with NumPy.
    """
    if classes is None:
        return "None"

    def one(c):
        if isinstance(c, np.bool_):
            return f"np.{bool(c)}_"
        if isinstance(c, (np.str_, np.bytes_)):
            return f"np.{type(c).__name__}({c.item()!r})"
        if isinstance(c, np.generic):
            return f"np.{type(c).__name__}({c!s})"
        return repr(c)

    return "[" + ", ".join(one(c) for c in list(classes)) + "]"


def _differences(saved, identity, params=()):
    parts = []
    old, new = saved.get("config", {}), identity["config"]
    # A checkpoint written before a parameter existed ran with its legacy value.
    legacy = legacy_values(params, old)
    old = {**{k: _canonical(v) for k, v in legacy.items() if k in new}, **old}
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        parts.append("other parameters: " + ", ".join(changed))
    if saved.get("data") != identity["data"]:
        parts.append("other training data")
    return "; ".join(parts)


def _canonical(value):
    """A JSON value standing for ``value`` in a run's identity."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else repr(float(value))
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [_canonical(v) for v in value]]
    if isinstance(value, Mapping):
        if value and all(isinstance(v, torch.Tensor) for v in value.values()):
            return state_dict_identity(value)
        items = [[_canonical(k), _canonical(v)] for k, v in value.items()]
        return ["dict", sorted(items, key=json.dumps)]
    if isinstance(value, nn.Module):
        return module_identity(value)
    if isinstance(value, os.PathLike):
        return ["path", os.fspath(value)]
    if isinstance(value, np.random.RandomState):
        digest = hashlib.sha256(repr(value.get_state()).encode()).hexdigest()
        return ["RandomState", digest]
    name = f"{type(value).__module__}.{type(value).__qualname__}"
    if hasattr(value, "get_params"):  # skorch callbacks, sklearn objects
        return [name, _canonical(value.get_params(deep=False))]
    code = getattr(value, "__code__", None)
    if code is not None:  # a function: its name and its code
        digest = hashlib.sha256(code.co_code + repr(code.co_consts).encode())
        return [f"{value.__module__}.{value.__qualname__}", digest.hexdigest()]
    return [name, repr(value)]


def _cpu_copy(state_dict):
    return {k: v.detach().to("cpu", copy=True) for k, v in state_dict.items()}


def _early_stopping_state(es):
    if es is None:
        return None
    weights = getattr(es, "best_model_weights_", None)
    return {
        "misses_": int(es.misses_),
        "dynamic_threshold_": float(es.dynamic_threshold_),
        "best_epoch_": int(es.best_epoch_),
        "best_model_weights_": None if weights is None else _cpu_copy(weights),
    }


def _cuda_rng_state(net):
    device = torch.device(net.device)
    if device.type != "cuda":
        return None
    return torch.cuda.get_rng_state(device)


def training_state(estimator, data, y_train, has_valid):
    """The TrainingState callback of a fine-tuner's fit: best weights, and the
    checkpoint to write and to resume from when ``checkpoint_dir`` is set."""
    monitor = "valid_loss" if has_valid else "train_loss"
    # With early stopping, skorch's EarlyStopping keeps the best weights.
    if estimator.checkpoint_dir is None:
        return TrainingState(monitor, keep_best=not has_valid)
    identity = run_identity(
        estimator.get_params(deep=False),
        data,
        y_train,
        getattr(estimator, "classes_", None),
        exclude=names(estimator._params, affects_training=False),
    )
    resume = read_checkpoint(
        estimator.checkpoint_dir,
        identity,
        type(estimator).__name__,
        estimator._params,
    )
    return TrainingState(
        monitor,
        keep_best=not has_valid,
        path=Path(estimator.checkpoint_dir) / CHECKPOINT_FILE,
        identity=identity,
        resume=resume,
    )


def after_interruption(net, state, owner, checkpoint_dir):
    """After Ctrl-C (KeyboardInterrupt, which skorch catches), keep the best
    completed epoch's weights and warn; re-raise if no epoch ended."""
    import warnings

    completed = completed_epochs(net.history)
    if completed >= net.max_epochs or stopped_early(net):
        return
    if completed == 0:
        raise KeyboardInterrupt
    when = (
        f"after epoch {completed}"
        if len(net.history) == completed
        else f"during epoch {completed + 1}"
    )
    del net.history[completed:]  # the unfinished epoch, if any
    es = dict(net.callbacks_).get("early_stopping")
    if es is not None:  # its on_train_end restored its best weights
        best, monitor = int(es.best_epoch_), "valid_loss"
    else:
        best, monitor = state.best_epoch_, state.monitor
        if state.best_state_ is not None:
            net.module_.load_state_dict(state.best_state_)
    if best is None:  # no finite loss yet
        kept = "keeps the current weights"
    else:
        score = net.history[best - 1][monitor]
        kept = (
            f"keeps the weights of epoch {best}, the best so far "
            f"({monitor}={score:.4g})"
        )
    resume = (
        f" Call fit again to resume from the checkpoint in {str(checkpoint_dir)!r}."
        if checkpoint_dir
        else ""
    )
    warnings.warn(
        f"{owner}: training was interrupted (KeyboardInterrupt) {when} "
        f"of {net.max_epochs}; the fitted estimator {kept}.{resume}",
        UserWarning,
        stacklevel=5,  # fit's caller: after_interruption < _train < _fit < fit
    )
