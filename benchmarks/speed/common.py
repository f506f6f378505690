"""Helpers of the speed benchmarks: machine and versions, test images, timing
(interleaved repetitions, medians of ratios), and the JSON/Markdown report."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from importlib import metadata
from pathlib import Path

import numpy as np

PACKAGES = (
    "sktransfer",
    "torch",
    "torchvision",
    "timm",
    "scikit-learn",
    "skorch",
    "numpy",
    "pillow",
    "imagecodecs",
    "embetter",
    "img2vec_pytorch",
)


def environment():
    """Hardware, versions and the settings that change CPU timings."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [
                line.split(":", 1)[1].strip()
                for line in f
                if line.startswith("model name")
            ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "load_average_at_start": list(os.getloadavg()),
    }


def write_photos(folder, n, fmt, size=(500, 375), seed=0):
    """``n`` distinct colour photos of ``size`` (ImageNet's typical 500 x 375):
    random crops of scikit-image's sample photos, saved as JPEG (quality 90)
    or PNG. Returns their paths."""
    import skimage.data as data
    from PIL import Image

    photos = [
        data.astronaut(),
        data.coffee(),
        data.chelsea(),
        data.rocket(),
        data.immunohistochemistry(),
        data.hubble_deep_field(),
        data.stereo_motorcycle()[0],
        data.retina(),
    ]
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        s = rng.uniform(0.6, 1.0)
        ch, cw = int(h * s), int(w * s)
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        image = Image.fromarray(photo[y : y + ch, x : x + cw]).resize(
            size, Image.BILINEAR
        )
        path = folder / f"{i:05d}.{fmt}"
        image.save(path, **({"quality": 90} if fmt == "jpg" else {}))
        paths.append(str(path))
    return paths


def labelled_images(n):
    """``n`` small labelled grayscale images: Fashion-MNIST test images (28 x
    28) when installed, else scikit-learn's digits (8 x 8, scaled to 0-255)."""
    try:
        from sktransfer.datasets import load_fashion_mnist

        d = load_fashion_mnist(subset="test")
        return d.images[:n], np.asarray(d.target[:n]), "fashion_mnist"
    except FileNotFoundError:
        from sklearn.datasets import load_digits

        d = load_digits()
        images = (d.images[:n] * 255 / 16).round().astype(np.uint8)
        return images, d.target[:n], "digits"


def interleaved(contenders, reps, warmup=False):
    """Seconds of each contender, run in turn ``reps`` times.

    The order rotates every repetition, so that a slow spell of a shared
    machine hits every contender alike; ratios are taken within a repetition.
    With ``warmup``, each contender first runs once untimed, so that the
    first timed one does not alone pay for cold file and import caches.
    """
    names = list(contenders)
    if warmup:
        for name in names:
            contenders[name]()
    seconds = {name: [] for name in names}
    for r in range(reps):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            contenders[name]()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def summary(values):
    values = [float(v) for v in values]
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": values,
    }


def write_report(results, output, markdown):
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (output / "results.md").write_text(markdown)
