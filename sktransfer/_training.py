"""Transfer-learning machinery used by the fine-tuning estimators.

The network (backbone body + new head), the split of the body into blocks,
freezing (parameters and BatchNorm statistics), discriminative learning
rates, schedules and the skorch callbacks that drive them.
"""

from __future__ import annotations

import math

import torch
from skorch.callbacks import Callback
from torch import nn

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


class TransferNet(nn.Module):
    """``head(body(x))``: a pretrained body and a new linear head.

    ``frozen`` holds the names of body blocks that are not trained: their
    parameters get no gradient and they stay in eval mode (BatchNorm keeps its
    running statistics, dropout is off) even while the net trains. With
    ``precomputed=True`` the input is already ``body(x)`` (used by the linear
    probe, which computes the frozen body once per fit).
    """

    def __init__(self, body, head, blocks):
        super().__init__()
        self.body = body
        self.head = head
        self.blocks = blocks  # list of (name, [param names]) input -> output
        self.frozen = set()
        self.precomputed = False

    def forward(self, x):
        if not self.precomputed:
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
