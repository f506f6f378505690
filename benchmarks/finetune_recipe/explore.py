"""Which fine-tuning recipe never loses to the linear probe? (issue: LP-FT)

A measurement script, not a test: for n labelled Fashion-MNIST images per
class and several seeds it trains, on the same subsets and the same fixed test
images,

- ``probe``: the linear probe the fine-tuner must not lose to
  (frozen ImageNet features -> StandardScaler -> LogisticRegression),
- ``lpft-*``: LP-FT (Kumar et al., ICLR 2022): the head starts at the probe's
  own solution (the scaler folded into the linear layer), then the whole
  network is fine-tuned with a small learning rate for a number of optimizer
  steps (not epochs), BatchNorm statistics frozen or not, light augmentation.

The network, preprocessing and features are sktransfer's (``load_backbone`` +
``FeatureModel``); the training loop is a plain torch loop so that recipes can
be compared before one becomes the estimator's default.

    python benchmarks/finetune_recipe/explore.py --sizes 10 100 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from torch import nn

from sktransfer._features import FeatureModel
from sktransfer.backbones._load import load_backbone
from sktransfer.datasets import labels_per_class_split, load_fashion_mnist

HERE = Path(__file__).parent


def to_input(images, size):
    """uint8 (N, 28, 28) -> normalised (N, 3, size, size), Lite0's mean=std=0.5."""
    x = torch.from_numpy(images).float().div_(255).unsqueeze(1)
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    x = x.clamp_(0, 1).sub_(0.5).div_(0.5).expand(-1, 3, -1, -1)
    return x.contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def features(body, x, batch=256):
    body.eval()
    return torch.cat([body(x[i : i + batch]) for i in range(0, len(x), batch)]).numpy()


def probe_head(Ftr, ytr, n_classes, C=1.0):
    with threadpool_limits(1):
        scaler = StandardScaler().fit(Ftr)
        clf = LogisticRegression(max_iter=2000, C=C).fit(scaler.transform(Ftr), ytr)
    head = nn.Linear(Ftr.shape[1], n_classes)
    W = clf.coef_ / scaler.scale_
    b = clf.intercept_ - W @ scaler.mean_
    if n_classes == 2:  # sklearn's binary head has one row
        W, b = np.vstack([-W / 2, W / 2]), np.array([-b[0] / 2, b[0] / 2])
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(W).float())
        head.bias.copy_(torch.from_numpy(b).float())
    return head, scaler, clf


def augment(x, pad, rng):
    """Random horizontal flip and a random shift of up to ``pad`` pixels."""
    flip = torch.rand(len(x)) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if pad:
        h, w = x.shape[2:]
        padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
        i, j = rng.integers(0, 2 * pad + 1, size=2)
        x = padded[:, :, i : i + h, j : j + w]
    return x.contiguous(memory_format=torch.channels_last)


def set_bn_eval(module):
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def fine_tune(body, head, xtr, ytr, *, steps, lr, head_lr, batch, bn, pad, wd, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = nn.Sequential(body, head)
    params = [
        {"params": body.parameters(), "lr": lr},
        {"params": head.parameters(), "lr": head_lr},
    ]
    opt = torch.optim.AdamW(params, weight_decay=wd)
    warm = max(1, steps // 10)

    def factor(step):
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    y = torch.as_tensor(ytr)
    n = len(xtr)
    order, pos = torch.randperm(n), 0
    for _ in range(steps):
        if pos + batch > n:
            order, pos = torch.randperm(n), 0
        idx = order[pos : pos + min(batch, n)]
        pos += len(idx)
        net.train()
        if bn == "eval":
            set_bn_eval(net)
        loss = F.cross_entropy(net(augment(xtr[idx], pad, rng)), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    return net


@torch.no_grad()
def accuracy(net, x, y, batch=256):
    net.eval()
    pred = torch.cat([net(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])
    return float((pred.numpy() == y).mean())


RECIPES = {
    # name: fine_tune kwargs (steps is a function of the number of images n)
    "lpft-bn-eval": dict(lr=1e-4, head_lr=1e-4, bn="eval", wd=0.01),
    "lpft-bn-train": dict(lr=1e-4, head_lr=1e-4, bn="train", wd=0.01),
    "lpft-lr3e-4": dict(lr=3e-4, head_lr=3e-4, bn="eval", wd=0.01),
    "lpft-lr3e-5": dict(lr=3e-5, head_lr=3e-5, bn="eval", wd=0.01),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES))
    parser.add_argument("--min-steps", type=int, default=150)
    parser.add_argument("--epochs", type=float, default=5.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", default=str(HERE / "results.json"))
    args = parser.parse_args()
    torch.set_num_threads(2)

    data = load_fashion_mnist()
    Xtr_all, ytr_all = data.images, data.target
    test = load_fashion_mnist(subset="test")
    te_idx = labels_per_class_split(test.target, args.test_per_class, random_state=0)[0]
    xte = to_input(test.images[te_idx], args.image_size)
    yte = test.target[te_idx]
    loaded = load_backbone("efficientnet_lite0", "DEFAULT")
    base = FeatureModel(loaded.model, loaded.head, None, "avg").eval()
    base = base.to(memory_format=torch.channels_last)
    rows = []
    out = Path(args.output)
    for n_per_class in args.sizes:
        for seed in args.seeds:
            idx = labels_per_class_split(ytr_all, n_per_class, random_state=seed)[0]
            xtr, ytr = to_input(Xtr_all[idx], args.image_size), ytr_all[idx]
            t0 = time.perf_counter()
            Ftr, Fte = features(base, xtr), features(base, xte)
            head, scaler, clf = probe_head(Ftr, ytr, 10)
            probe_acc = float(clf.score(scaler.transform(Fte), yte))
            probe_time = time.perf_counter() - t0
            row = {
                "n_per_class": n_per_class,
                "seed": seed,
                "image_size": args.image_size,
                "probe": probe_acc,
                "probe_time": probe_time,
            }
            steps = max(
                args.min_steps, math.ceil(args.epochs * len(idx) / args.batch_size)
            )
            for name in args.recipes:
                t0 = time.perf_counter()
                net = fine_tune(
                    copy.deepcopy(base),
                    copy.deepcopy(head),
                    xtr,
                    ytr,
                    steps=steps,
                    batch=args.batch_size,
                    pad=max(1, args.image_size // 14),
                    seed=seed,
                    **RECIPES[name],
                )
                row[name] = accuracy(net, xte, yte)
                row[name + "_time"] = time.perf_counter() - t0
            row["steps"] = steps
            rows.append(row)
            print(json.dumps(row), flush=True)
            out.write_text(
                json.dumps(
                    {
                        "args": vars(args),
                        "torch": torch.__version__,
                        "machine": platform.processor() or platform.machine(),
                        "rows": rows,
                    },
                    indent=1,
                )
            )


if __name__ == "__main__":
    main()
