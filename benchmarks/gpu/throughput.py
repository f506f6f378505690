"""GPU throughput of sktransfer: transform and fine-tuning images/s, float32
vs bfloat16, against the forward pass alone and a hand-written training loop.

For each model (ResNet-18, ResNet-50 with random weights; EfficientNet-Lite0
with its packaged ImageNet weights) at 224 px:

- ``transform``: ``PretrainedFeatureExtractor(...).transform(paths)`` on JPEG
  photos (decoded and resized in background threads), images/s;
- forward pass alone: the extractor's own ``backbone_`` on batches already
  preprocessed and on the GPU (channels-last, ``inference_mode``, autocast):
  the limit of ``transform`` for this model, batch size and precision;
- fine-tuning: ``FineTunedClassifier(...)`` epoch images/s (skorch's epoch
  ``dur``, the first epoch excluded), against a hand-written loop over the
  same modules with the same optimizer and precision, on tensors already on
  the GPU.

Ratios are taken within one run. ``--smoke`` runs tiny sizes on the CPU, to
check the script, and means nothing about speed.

    python benchmarks/gpu/throughput.py --output benchmarks/gpu
    python benchmarks/gpu/throughput.py --smoke --output /tmp/gpu-smoke
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "speed"))
from common import environment, write_photos  # noqa: E402

MODELS = (("resnet18", None), ("resnet50", None), ("efficientnet_lite0", "DEFAULT"))
FULL = {
    "device": "cuda",
    "size": 224,
    "photos": 512,
    "batch": 64,
    "train_images": 512,
    "epochs": 3,
    "reps": 3,
    "precisions": ("float32", "bfloat16"),
    "n_jobs": 8,
}
SMOKE = {
    "device": "cpu",
    "size": 32,
    "photos": 8,
    "batch": 4,
    "train_images": 8,
    "epochs": 2,
    "reps": 1,
    "precisions": ("float32", "bfloat16"),
    "n_jobs": 2,
}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def extraction(model, weights, precision, paths, cfg):
    from sktransfer import PretrainedFeatureExtractor
    from sktransfer._device import autocast
    from sktransfer._inputs import as_image_sequence

    pre = {"resize_size": cfg["size"], "crop_size": cfg["size"]}
    ext = PretrainedFeatureExtractor(
        model,
        weights=weights,
        preprocessing=pre,
        batch_size=cfg["batch"],
        device=cfg["device"],
        precision=precision,
        n_jobs=cfg["n_jobs"],
    ).fit(paths[:1])
    device = ext.device_
    seq = as_image_sequence(paths)
    layout = torch.channels_last if ext._channels_last else torch.contiguous_format
    batches = [
        torch.stack(
            [ext.preprocessing_.apply(seq[i]) for i in range(s, s + cfg["batch"])]
        )
        .contiguous(memory_format=layout)
        .to(device)
        for s in range(0, len(paths) - cfg["batch"] + 1, cfg["batch"])
    ]
    n_forward = len(batches) * cfg["batch"]

    def forward():
        with torch.inference_mode(), autocast(device, precision):
            for x in batches:
                ext.backbone_(x)
        sync(device)

    def transform():
        ext.transform(paths)
        sync(device)

    forward()  # warm-up (cuDNN autotuning, allocator)
    transform()
    rates = {"forward pass alone": [], "transform": []}
    for _ in range(cfg["reps"]):
        for name, run, n in (
            ("forward pass alone", forward, n_forward),
            ("transform", transform, len(paths)),
        ):
            start = time.perf_counter()
            run()
            rates[name].append(n / (time.perf_counter() - start))
    return rates


def fine_tuning(model, weights, precision, images, y, cfg):
    """Epoch images/s of FineTunedClassifier and of a hand-written loop."""
    from torch import nn

    from sktransfer import FineTunedClassifier
    from sktransfer._device import autocast
    from sktransfer._features import FeatureModel
    from sktransfer._inputs import as_image_sequence
    from sktransfer.backbones._load import load_backbone

    pre = {"resize_size": cfg["size"], "crop_size": cfg["size"]}
    clf = FineTunedClassifier(
        model,
        weights=weights,
        preprocessing=pre,
        batch_size=cfg["batch"],
        max_epochs=cfg["epochs"],
        augment="off",
        head_init="random",
        device=cfg["device"],
        precision=precision,
        n_jobs=cfg["n_jobs"] if cfg["device"] == "cuda" else 0,
    ).fit(images, y)
    n = len(images)
    estimator = [n / row["dur"] for row in clf.history_[1:]]

    device = torch.device(cfg["device"])
    loaded = load_backbone(model, weights)
    body = FeatureModel(loaded.model, loaded.head, None, "avg")
    seq = as_image_sequence(images)
    with torch.no_grad():
        x0 = clf.preprocessing_.apply(seq[0])[None]
        width = body.eval()(x0).shape[1]
    net = nn.Sequential(body, nn.Linear(width, len(np.unique(y))))
    net = net.to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "float16")
    X = torch.stack([clf.preprocessing_.apply(seq[i]) for i in range(n)]).to(device)
    X = X.contiguous(memory_format=torch.channels_last)
    Y = torch.as_tensor(y).to(device)
    loop = []
    for epoch in range(cfg["epochs"]):
        sync(device)
        start = time.perf_counter()
        for idx in torch.randperm(n, device=device).split(cfg["batch"]):
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, precision):
                out = net(X[idx])
            loss = nn.functional.cross_entropy(out.float(), Y[idx])
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        sync(device)
        if epoch:  # the first epoch warms up
            loop.append(n / (time.perf_counter() - start))
    return {"FineTunedClassifier": estimator, "hand-written loop": loop}


def summary(values):
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": list(values),
    }


def markdown(results):
    env = results["environment"]
    lines = [
        "# GPU throughput"
        + (" (smoke run on the CPU: means nothing)" if results["smoke"] else ""),
        "",
        f"Device: {env['gpu'] or 'CPU'}; {env['cpu']} ({env['cpu_count']} cores); "
        f"torch {env['versions']['torch']}, sktransfer {env['versions']['sktransfer']}. "
        f"{results['config']['size']} px, batch {results['config']['batch']}. "
        "Medians of images/s over the repetitions (all values in results.json).",
        "",
        "| model | precision | transform | forward pass alone | transform / forward "
        "| fine-tuning epoch | hand-written loop | fine-tuning / loop |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        t, f = r["transform"], r["forward pass alone"]
        e, h = r["FineTunedClassifier"], r["hand-written loop"]
        lines.append(
            f"| {r['model']} | {r['precision']} | {t['median']:.0f} | {f['median']:.0f} "
            f"| {t['median'] / f['median']:.2f} | {e['median']:.0f} | {h['median']:.0f} "
            f"| {e['median'] / h['median']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--output", default=str(HERE))
    args = parser.parse_args(argv)
    cfg = SMOKE if args.smoke else FULL
    if cfg["device"] == "cuda" and not torch.cuda.is_available():
        parser.error(
            "no CUDA device is visible; use --smoke to check the script on CPU"
        )
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sktransfer-gpu-") as tmp:
        paths = write_photos(Path(tmp) / "photos", cfg["photos"], "jpg")
        rng = np.random.default_rng(0)
        images = rng.integers(
            0, 256, (cfg["train_images"], cfg["size"], cfg["size"], 3), dtype=np.uint8
        )
        y = np.arange(cfg["train_images"]) % 10
        for model, weights in MODELS:
            for precision in cfg["precisions"]:
                print(f"{model} {precision} ...", flush=True)
                rates = extraction(model, weights, precision, paths, cfg)
                rates.update(fine_tuning(model, weights, precision, images, y, cfg))
                rows.append(
                    {
                        "model": model,
                        "weights": weights or "random",
                        "precision": precision,
                        **{k: summary(v) for k, v in rates.items()},
                    }
                )
    results = {
        "smoke": args.smoke,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
        "environment": environment(),
        "rows": rows,
        "seconds": time.perf_counter() - start,
    }
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "results.md").write_text(markdown(results))
    print(f"wrote {out / 'results.json'} and results.md ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
