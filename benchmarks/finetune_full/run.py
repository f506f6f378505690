"""Fine-tune on all 60,000 Fashion-MNIST training images; score on the official
10,000 test images after every epoch.

FineTunedClassifier("efficientnet_lite0") with its default recipe (LP-FT),
images upsampled to --image-size px, --epochs epochs (default: the estimator's
"auto", 5 epochs at this size) of --batch-size. Writes history.json (per epoch:
train loss, learning rate, seconds, test accuracy; rewritten after each epoch),
history.png and result.md to --output.

    python benchmarks/finetune_full/run.py
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback

from sktransfer import FineTunedClassifier
from sktransfer.datasets import load_fashion_mnist

HERE = Path(__file__).parent


class TestAccuracy(Callback):
    """Test accuracy after each epoch, with the estimator's own inference path
    (its preprocessing and batching) on the net being trained."""

    def __init__(self, estimator, X, y, path):
        self.estimator, self.X, self.y, self.path = estimator, X, y, path
        self.start = time.perf_counter()

    def on_epoch_end(self, net, **kwargs):
        est = self.estimator
        start = time.perf_counter()
        data = est._input_spec.read(est, self.X, reset=False)
        logits, _ = est._infer(net.module_, data)
        net.module_.train()
        acc = float((logits.argmax(1) == self.y).mean())
        net.history.record("test_acc", acc)
        net.history.record("test_s", time.perf_counter() - start)
        elapsed = time.perf_counter() - self.start
        print(f"epoch {len(net.history)}: test accuracy {acc:.4f}, {elapsed:.0f} s")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = {"elapsed_s": elapsed, "history": net.history.to_list()}
        self.path.write_text(json.dumps(partial, indent=1, default=float))


def _epochs(text):
    return text if text == "auto" else int(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=_epochs, default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--train-size", type=int, default=None, help="for a quick try")
    parser.add_argument("--output", default=str(HERE / "results"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    train, test = load_fashion_mnist(), load_fashion_mnist(subset="test")
    Xtr, ytr = train.images, train.target
    if args.train_size:
        Xtr, ytr = Xtr[: args.train_size], ytr[: args.train_size]
    prep = {"resize_size": args.image_size, "crop_size": args.image_size}
    clf = FineTunedClassifier(
        "efficientnet_lite0",
        preprocessing=prep,
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        random_state=0,
        verbose=1,
    )
    out = Path(args.output)
    scorer = TestAccuracy(clf, test.images, test.target, out / "partial.json")
    clf.set_params(net_params={"callbacks": [scorer]})
    start = time.perf_counter()
    scorer.start = start
    clf.fit(Xtr, ytr)
    wall = time.perf_counter() - start
    history = clf.history_
    report = {
        "args": vars(args),
        "n_train": len(ytr),
        "n_test": len(test.target),
        "wall_s": wall,
        "final_test_accuracy": history[-1]["test_acc"],
        "history": history,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
    }
    (out / "history.json").write_text(json.dumps(report, indent=1, default=float))
    lines = [
        f"# Fine-tuning EfficientNet-Lite0 on all {len(ytr)} Fashion-MNIST images",
        "",
        f"{args.image_size} px, batch {args.batch_size}, {len(history)} epochs, "
        f"default recipe (LP-FT). Wall time {wall / 60:.1f} min (fit, including "
        f"the per-epoch test scoring) on 2 CPU cores.",
        "",
        "| epoch | train loss | lr at end | epoch s | test accuracy (10,000) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for h in history:
        lines.append(
            f"| {h['epoch']} | {h['train_loss']:.4f} | {h['lr']:.2e} | "
            f"{h['dur']:.0f} | {h['test_acc']:.4f} |"
        )
    (out / "result.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["test_acc"] for h in history], "o-", label="test accuracy")
    ax.axhline(0.949, ls="--", c="gray", label="published ResNet18 (0.949)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_xticks(epochs)
    ax2 = ax.twinx()
    ax2.plot(epochs, [h["train_loss"] for h in history], "s:", c="C1")
    ax2.set_ylabel("train loss", color="C1")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "history.png", dpi=120)
    print(np.round([h["test_acc"] for h in history], 4), f"{wall:.0f} s")


if __name__ == "__main__":
    main()
