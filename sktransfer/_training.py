"""Transfer-learning machinery used by the fine-tuning estimators.

The network (backbone body + new head), the split of the body into blocks,
freezing (parameters and BatchNorm statistics), discriminative learning
rates, schedules, and everything that knows skorch: the ``NeuralNet`` built
for a fine-tuner (:func:`make_net`), its callbacks, the training call and the
collate function. Best weights, checkpoints and interruption are in
``_checkpoint``, the other module that knows skorch.
"""

from __future__ import annotations

import contextlib
import json
import math

import numpy as np
import torch
from skorch.callbacks import Callback
from torch import nn
from torch.utils.data import default_collate

from ._accelerate import accelerated_net_class
from ._amp import MixedPrecisionNet, loader_params
from ._checkpoint import TrainingState
from ._sample_weight import unpack


class TransferNet(nn.Module):
    """``head(body(x))``: a pretrained body and a new linear head.

    ``frozen`` holds the names of body blocks that are not trained: their
    parameters get no gradient and they stay in eval mode (BatchNorm keeps its
    running statistics, dropout is off) even while the net trains. With
    ``precomputed=True`` the input is already ``body(x)`` (used by the linear
    probe, which computes the frozen body once per fit). With
    ``freeze_bn=True`` every BatchNorm layer keeps its running statistics
    (eval mode) while its affine parameters train. With
    ``channels_last=True`` image batches are made channels-last, the memory
    format the convolutions of the body (converted by the caller) run
    fastest in on CPUs.
    """

    def __init__(self, body, head, blocks, *, freeze_bn=False, channels_last=False):
        super().__init__()
        self.body = body
        self.head = head
        self.blocks = blocks  # list of (name, [param names]) input -> output
        self.frozen = set()
        self.precomputed = False
        self.freeze_bn = freeze_bn
        self.channels_last = channels_last

    def forward(self, x):
        if not self.precomputed:
            if self.channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            x = self.body(x)
        return self.head(x)

    def set_frozen(self, names):
        """Freeze the body blocks in ``names``; unfreeze the others."""
        self.frozen = set(names)
        params = dict(self.body.named_parameters())
        for block, param_names in self.blocks:
            for p in param_names:
                params[p].requires_grad_(block not in self.frozen)
        self.train(self.training)

    def train(self, mode=True):
        super().train(mode)
        if mode:
            for name in self._frozen_modules():
                self.body.get_submodule(name).eval()
            if self.frozen and len(self.frozen) == len(self.blocks):
                self.body.eval()  # linear probe: the whole body is inference-only
            if self.freeze_bn:
                for module in self.body.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
        return self

    def _frozen_modules(self):
        return [name for name, _ in self.blocks if name in self.frozen and name]


def split_blocks(body):
    """Ordered blocks of ``body`` (input to output) and their parameter names.

    Starts from the top-level children holding parameters and repeatedly
    expands the child holding more than half of all parameters (ResNet's
    ``layer4``, EfficientNet's ``features``, ViT's ``encoder.layers``) into its
    own children. Parameters owned directly by a container (a ViT class token)
    join the first block.

    Returns
    -------
    blocks : list of (str, list of str)
    """

    def count(module):
        return sum(p.numel() for p in module.parameters())

    total = count(body)
    entries = [(n, m) for n, m in body.named_children() if count(m)]
    changed = True
    while changed and total:
        changed = False
        for i, (name, module) in enumerate(entries):
            kids = [(f"{name}.{n}", m) for n, m in module.named_children() if count(m)]
            if count(module) > total / 2 and len(kids) > 1:
                entries[i : i + 1] = kids
                changed = True
                break
    blocks = []
    assigned = set()
    for name, module in entries:
        names = [f"{name}.{p}" for p, _ in module.named_parameters()]
        blocks.append((name, names))
        assigned.update(names)
    loose = [n for n, _ in body.named_parameters() if n not in assigned]
    if loose:
        if blocks:
            blocks[0] = (blocks[0][0], loose + blocks[0][1])
        else:
            blocks = [("", loose)]
    return blocks


# Training length when max_epochs="auto": this many epochs, and at least
# MIN_STEPS optimizer steps (10 images per class of 10 classes make 4 batches
# an epoch: counted in epochs, the head would see only 20 updates).
AUTO_EPOCHS = 5
MIN_STEPS = 150


def training_epochs(max_epochs, n_train, batch_size):
    """The number of epochs a fit runs (``max_epochs`` unless "auto")."""
    if max_epochs != "auto":
        return int(max_epochs)
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    return max(AUTO_EPOCHS, math.ceil(MIN_STEPS / steps_per_epoch))


def frozen_blocks(blocks, freeze, epoch, freeze_epochs):
    """Names of the blocks frozen at ``epoch`` (0-based) for strategy ``freeze``."""
    names = [name for name, _ in blocks]
    if freeze == "none":
        return []
    if freeze == "backbone":
        return names
    if freeze == "staged":
        return names if epoch < freeze_epochs else []
    k = int(freeze)  # the last k blocks are trained
    return names[: max(len(names) - k, 0)]


def param_groups(net, lr, backbone_lr_ratio, layer_decay):
    """skorch ``optimizer__param_groups``: one learning rate per body block.

    The head trains at ``lr``; body block ``i`` counted from the top (0 = the
    last block) at ``lr * backbone_lr_ratio * layer_decay**i``.
    """
    groups = []
    decay = 1.0 if layer_decay is None else layer_decay
    for depth, (_, names) in enumerate(reversed(net.blocks)):
        block_lr = lr * backbone_lr_ratio * decay**depth
        for name in names:
            groups.append((f"body.{name}", {"lr": block_lr}))
    return groups


class FreezeSchedule(Callback):
    """Applies the freezing strategy at the start of every epoch."""

    def __init__(self, freeze, freeze_epochs):
        self.freeze = freeze
        self.freeze_epochs = freeze_epochs

    def on_epoch_begin(self, net, **kwargs):
        epoch = len(net.history) - 1
        module = net.module_
        module.set_frozen(
            frozen_blocks(module.blocks, self.freeze, epoch, self.freeze_epochs)
        )


class RecordLR(Callback):
    """Records the head's learning rate at the end of each epoch as ``lr``."""

    def on_epoch_end(self, net, **kwargs):
        net.history.record("lr", float(net.optimizer_.param_groups[-1]["lr"]))


def warmup_cosine(total_steps, warmup):
    """LambdaLR factor: linear warmup over ``warmup`` of the steps, then cosine."""
    warm = max(1, round(total_steps * warmup)) if warmup > 0 else 0

    def factor(step):
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def schedule_callback(schedule, total_steps, warmup):
    """The skorch LRScheduler for ``schedule``, stepped every batch (or None)."""
    from skorch.callbacks import LRScheduler

    if schedule == "constant":
        return None
    if schedule == "onecycle":
        # OneCycleLR divides by zero when the warmup ends at step 0
        # (pct_start * total_steps == 1); with at most one warmup step, start
        # at the peak instead.
        pct_start = max(warmup, 1e-3)
        if pct_start * total_steps <= 1:
            pct_start = 0.5 / total_steps
        return LRScheduler(
            policy=_OneCycle,
            step_every="batch",
            total_steps=total_steps,
            pct_start=pct_start,
            last_epoch=-1,
        )
    # last_epoch=-1: skorch would otherwise start the scheduler at the epoch
    # count of the history, which is wrong for per-batch steps when a run
    # resumes from a checkpoint (the scheduler's own state is restored then).
    return LRScheduler(
        policy=torch.optim.lr_scheduler.LambdaLR,
        step_every="batch",
        lr_lambda=warmup_cosine(total_steps, warmup),
        last_epoch=-1,
    )


class _OneCycle(torch.optim.lr_scheduler.OneCycleLR):
    """OneCycleLR whose peak is each param group's own learning rate."""

    def __init__(self, optimizer, total_steps, pct_start, last_epoch=-1):
        max_lr = [group["lr"] for group in optimizer.param_groups]
        super().__init__(
            optimizer,
            max_lr=max_lr,
            total_steps=total_steps,
            pct_start=pct_start,
            last_epoch=last_epoch,
        )

    def step(self, epoch=None):
        # skorch may step once more than total_steps after the last batch.
        if self.last_epoch + 1 < self.total_steps:
            super().step()


# -- the skorch net of a fine-tuner ----------------------------------------------
def make_net(estimator, module, criterion, n_train, valid_ds, state):
    """The skorch ``NeuralNet`` training ``module`` with ``estimator``'s
    parameters (``lr``, ``schedule``, ``early_stopping``, ``net_params``, ...).

    ``state`` (a :class:`~sktransfer._checkpoint.TrainingState`) is the last
    of sktransfer's callbacks; the user's callbacks from ``net_params`` come
    after it.
    """
    from skorch.callbacks import EarlyStopping
    from skorch.helper import predefined_split

    est = estimator
    epochs = training_epochs(est.max_epochs, n_train, est.batch_size)
    steps = epochs * int(np.ceil(n_train / est.batch_size))
    callbacks = [
        ("freeze", FreezeSchedule(est.freeze, est.freeze_epochs)),
        ("record_lr", RecordLR()),
    ]
    schedule = schedule_callback(est.schedule, steps, est.warmup)
    if schedule is not None:
        callbacks.append(("lr_schedule", schedule))
    if valid_ds is not None:
        callbacks.append(("valid_score", ValidScore(est._score_name, est._valid_score)))
        callbacks.append(
            (
                "early_stopping",
                EarlyStopping(
                    monitor="valid_loss",
                    patience=est.n_iter_no_change,
                    load_best=True,
                    sink=print if est.verbose else _silent,
                ),
            )
        )
    callbacks.append(("training_state", state))
    params = dict(
        module=module,
        criterion=criterion,
        optimizer=torch.optim.AdamW,
        lr=est.lr,
        optimizer__weight_decay=est.weight_decay,
        optimizer__param_groups=param_groups(
            module, est.lr, est.backbone_lr_ratio, est.layer_decay
        ),
        max_epochs=epochs,
        batch_size=est.batch_size,
        device=str(est.device_),
        train_split=predefined_split(valid_ds) if valid_ds is not None else None,
        iterator_train__shuffle=True,
        iterator_train__collate_fn=collate,
        iterator_valid__collate_fn=collate,
        callbacks=callbacks,
        verbose=int(est.verbose),
    )
    extra = dict(est.net_params or {})
    if "warm_start" in extra:
        raise ValueError(
            f"{type(est).__name__}: net_params['warm_start'] has no effect (fit "
            f"builds a new skorch net); use the parameter warm_start=True to "
            f"continue training the fitted network."
        )
    # The user's callbacks run after sktransfer's (freezing, schedule,
    # early stopping), which they must not replace.
    user_callbacks = extra.pop("callbacks", None) or []
    if not isinstance(user_callbacks, (list, tuple)):
        raise ValueError(
            f"{type(est).__name__}: net_params['callbacks'] must be a list of "
            f"skorch callbacks (or (name, callback) pairs), got {user_callbacks!r}."
        )
    callbacks.extend(user_callbacks)
    params.update(loader_params(est.n_jobs, est.device_))
    params.update(extra)
    if est.compile:
        module.compile()  # in place: state dict keys unchanged
    accelerator = getattr(est, "_accelerator", None)
    if accelerator is not None:
        params["device"] = None  # the accelerator places module and batches
        return accelerated_net_class()(**params, accelerator=accelerator)
    return MixedPrecisionNet(**params, precision=est.precision)


def restored_net(estimator, module, criterion, history):
    """The net of a loaded fine-tuner: initialised, with its saved history,
    not trained."""
    from skorch.history import History

    net = make_net(estimator, module, criterion, 1, None, TrainingState())
    net.initialize()
    net.history = History(history)
    return net


@contextlib.contextmanager
def seeded_training(seed, device):
    """Seed torch for a training run; the global torch state is restored after."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def train(net, train_ds, resume):
    """Train ``net`` from scratch, or from the checkpoint ``resume`` on.

    ``TrainingState`` restores the checkpoint's states when training begins;
    the history is restored here, before skorch's callbacks read it.
    """
    from skorch.history import History

    net.initialize()
    epochs = net.max_epochs
    if resume is not None:
        net.history = History(json.loads(resume["history"]))
        epochs = 0 if resume["finished"] else max(epochs - resume["epoch"], 0)
    net.partial_fit(train_ds, y=None, epochs=epochs)


class ValidScore(Callback):
    """Records accuracy (or R^2) on the validation set after each epoch,
    weighted by the sample weights when the targets carry them."""

    def __init__(self, name, score):
        self.name = name
        self.score = score

    def on_epoch_end(self, net, dataset_valid=None, **kwargs):
        if dataset_valid is None:
            return
        preds, targets, weights = [], [], []
        with torch.no_grad():
            for batch in net.get_iterator(dataset_valid, training=False):
                preds.append(net.evaluation_step(batch, training=False).cpu())
                y, w = unpack(batch[1])
                targets.append(y)
                weights.append(w)
        w = None if weights[0] is None else torch.cat(weights)
        score = self.score(torch.cat(preds), torch.cat(targets), w)
        net.history.record(self.name, score)


def collate(batch):
    """torch's default collate, with a clear error for images of unequal size."""
    shapes = {tuple(x.shape) for x, _ in batch}
    if len(shapes) > 1:
        raise ValueError(
            f"Images in X have different sizes after preprocessing "
            f"({sorted(shapes)[:3]}); set preprocessing={{'resize_size': S, "
            f"'crop_size': S}} so that every image gets the same size."
        )
    return default_collate(batch)


def _silent(*args, **kwargs):
    return None
