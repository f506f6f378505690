"""Speed of sktransfer against the hardware limit, hand-written loops and peers.

One run measures, side by side, each as a ratio to a reference timed in the
same run (medians over interleaved repetitions; see README.md):

1. throughput  - extractor.transform on JPEG/PNG files vs the forward pass
                 alone, a hand-written loop, embetter and img2vec-pytorch;
2. cache_grid  - GridSearchCV over a logistic regression on a frozen backbone,
                 with and without the feature cache;
2b. grid_limit - the same search with the cache against its limit: one
                 extraction of each image plus the heads' fits;
3. linear_probe - FineTunedClassifier(freeze="backbone"): features once per
                 fit vs once per epoch;
4. finetune_epoch - FineTunedClassifier's training images/s vs hand-written
   torch loops (the fastest settings found, and NCHW);
5. memory      - peak RSS transforming 1,000 vs 10,000 image files.

    python benchmarks/speed/run.py                    # the committed run (~10 min)
    python benchmarks/speed/run.py --smoke --output /tmp/speed   # seconds
"""

from __future__ import annotations

import os

# libgomp's spin-waiting makes a 2-thread forward pass 3x slower whenever the
# machine is shared (measured); passive waiting applies to every contender
# alike. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    environment,
    interleaved,
    labelled_images,
    summary,
    write_photos,
    write_report,
)
from report import markdown

from sktransfer._testing import save_images

HERE = Path(__file__).resolve().parent
SECTIONS = (
    "throughput",
    "cache_grid",
    "grid_limit",
    "linear_probe",
    "finetune_epoch",
    "memory",
)


@dataclass
class Config:
    models: tuple = (("efficientnet_lite0", "DEFAULT"), ("resnet18", None))
    formats: tuple = ("jpg", "png")
    n_images: int = 48
    photo_size: tuple = (500, 375)
    preprocessing: dict | None = None  # the weights' own: 224 px
    reps: int = 7
    peers: bool = True
    grid_images: int = 120
    grid_preprocessing: dict | None = None
    grid_C: tuple = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
    folds: int = 5
    grid_cached_runs: int = 3
    grid_uncached_runs: int = 1
    limit_images: int = 96
    limit_folds: tuple = (3, 5)
    limit_reps: int = 5
    limit_warmup: bool = True
    small: dict = field(default_factory=lambda: {"resize_size": 112, "crop_size": 112})
    probe_images: int = 96
    probe_epochs: int = 10
    probe_reps: int = 3
    finetune_images: int = 256
    finetune_size: dict = field(
        default_factory=lambda: {"resize_size": 64, "crop_size": 64}
    )
    finetune_batch: int = 64
    finetune_epochs: int = 4
    finetune_reps: int = 3
    memory_sizes: tuple = (1000, 10000)
    memory_preprocessing: dict = field(
        default_factory=lambda: {"resize_size": 32, "crop_size": 32}
    )


SMOKE = Config(
    models=(("resnet18", None),),
    formats=("jpg", "png"),
    n_images=8,
    photo_size=(64, 48),
    preprocessing={"resize_size": 32, "crop_size": 32},
    reps=1,
    grid_images=24,
    grid_preprocessing={"resize_size": 32, "crop_size": 32},
    grid_C=(0.1, 10.0),
    folds=2,
    grid_cached_runs=1,
    limit_images=12,
    limit_folds=(2, 3),
    limit_reps=1,
    limit_warmup=False,
    small={"resize_size": 32, "crop_size": 32},
    probe_images=16,
    probe_epochs=2,
    probe_reps=1,
    finetune_images=16,
    finetune_size={"resize_size": 32, "crop_size": 32},
    finetune_batch=8,
    finetune_epochs=2,
    finetune_reps=1,
    memory_sizes=(40, 80),
)


# -- 1. throughput -------------------------------------------------------------
def throughput(cfg, tmp):
    import torch
    from sklearn.base import clone

    from sktransfer import PretrainedFeatureExtractor, _inputs
    from sktransfer._inputs import as_image_sequence

    rows = []
    for model_name, weights in cfg.models:
        for fmt in cfg.formats:
            paths = write_photos(
                tmp / f"photos_{fmt}", cfg.n_images, fmt, size=cfg.photo_size
            )
            ext = PretrainedFeatureExtractor(
                model_name,
                weights=weights,
                preprocessing=cfg.preprocessing,
                batch_size=16,
                device="cpu",
            ).fit(paths[:1])
            ext1 = clone(ext).set_params(n_jobs=1).fit(paths[:1])
            model, pre = ext.backbone_, ext.preprocessing_
            seq = as_image_sequence(paths)
            fmt_cl = (
                torch.channels_last if ext._channels_last else torch.contiguous_format
            )
            inputs = [
                torch.stack(
                    [pre.apply(seq[i]) for i in range(s, min(s + 16, len(seq)))]
                ).contiguous(memory_format=fmt_cl)
                for s in range(0, len(seq), 16)
            ]

            def forward(model=model, inputs=inputs):
                with torch.inference_mode():
                    for x in inputs:
                        model(x)

            contenders = {
                "forward pass only": forward,
                "sktransfer transform": lambda ext=ext, p=paths: ext.transform(p),
                "sktransfer transform, n_jobs=1": lambda e=ext1, p=paths: e.transform(
                    p
                ),
                "hand-written loop": hand_written_extraction(
                    model, pre, paths, ext._channels_last
                ),
            }
            if fmt == "png" and _inputs._imagecodecs() is not None:
                contenders["sktransfer transform, Pillow decoding"] = (
                    lambda ext=ext, p=paths: _without_imagecodecs(ext.transform, p)
                )
            if cfg.peers and model_name == "resnet18" and fmt == "jpg":
                contenders.update(peer_contenders(paths, tmp))
            for run in contenders.values():  # warm-up
                run()
            seconds = interleaved(contenders, cfg.reps)
            ref = seconds["forward pass only"]
            for name, secs in seconds.items():
                rows.append(
                    {
                        "model": model_name,
                        "format": fmt,
                        "contender": name,
                        "images": len(paths),
                        "images_per_second": summary([len(paths) / s for s in secs]),
                        "ratio_to_forward": summary([r / s for r, s in zip(ref, secs)]),
                    }
                )
    return {
        "photo_size": list(cfg.photo_size),
        "batch_size": 16,
        "reps": cfg.reps,
        "rows": rows,
    }


def _without_imagecodecs(function, *args):
    """Run ``function`` with sktransfer decoding PNG files by Pillow, as it
    does when the optional imagecodecs is not installed."""
    from sktransfer import _inputs

    found = _inputs._imagecodecs
    _inputs._imagecodecs = lambda: None
    try:
        return function(*args)
    finally:
        _inputs._imagecodecs = found


def hand_written_extraction(model, pre, paths, channels_last):
    """What a user writes: PIL + torchvision transforms, then the model, batch by
    batch in one thread (same preprocessing, model, batch size and layout)."""
    import torch
    from PIL import Image
    from torchvision.transforms import InterpolationMode, v2

    transform = v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize(
                pre.resize_size,
                interpolation=InterpolationMode(pre.interpolation),
                antialias=True,
            ),
            v2.CenterCrop(pre.crop_size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(pre.mean), list(pre.std)),
        ]
    )

    def run():
        out = []
        with torch.inference_mode():
            for s in range(0, len(paths), 16):
                x = torch.stack(
                    [transform(Image.open(p).convert("RGB")) for p in paths[s : s + 16]]
                )
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                out.append(model(x).numpy())
        return np.concatenate(out)

    return run


def peer_contenders(paths, tmp):
    """embetter's TimmEncoder and img2vec-pytorch, resnet18 with random weights."""
    from unittest import mock

    from PIL import Image

    contenders = {}
    try:
        import embetter.vision._torchvis as embetter_timm
        from embetter.vision import ImageLoader, TimmEncoder
    except ImportError:
        pass
    else:
        create = embetter_timm.timm.create_model

        def offline(name, **kwargs):  # TimmEncoder asks for pretrained=True
            return create(name, **{**kwargs, "pretrained": False})

        with mock.patch.object(embetter_timm.timm, "create_model", offline):
            encoder = TimmEncoder(name="resnet18")
        loader = ImageLoader(convert="RGB")
        contenders["embetter TimmEncoder (resnet18)"] = lambda: encoder.transform(
            loader.transform(paths)
        )
    try:
        from img2vec_pytorch import Img2Vec
    except ImportError:
        pass
    else:
        from sktransfer._testing import save_torchvision_checkpoint

        # Random resnet18 weights where torchvision's hub cache expects
        # ResNet18_Weights.DEFAULT, which Img2Vec loads (TORCH_HOME is private).
        save_torchvision_checkpoint("resnet18")
        img2vec = Img2Vec(cuda=False, model="resnet")

        def run_img2vec():
            return np.concatenate(
                [
                    img2vec.get_vec(
                        [Image.open(p).convert("RGB") for p in paths[s : s + 16]]
                    )
                    for s in range(0, len(paths), 16)
                ]
            )

        contenders["img2vec-pytorch (resnet18)"] = run_img2vec
    return contenders


# -- 2. feature cache in a grid search -------------------------------------------
def cache_grid(cfg, tmp):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from threadpoolctl import threadpool_limits

    from sktransfer import FeatureCache, PretrainedFeatureExtractor

    images, y, source = labelled_images(cfg.grid_images)
    paths = save_images(tmp / "grid", images)
    grid = {"logisticregression__C": list(cfg.grid_C)}

    def search(cache):
        pipe = make_pipeline(
            PretrainedFeatureExtractor(
                "efficientnet_lite0",
                preprocessing=cfg.grid_preprocessing,
                device="cpu",
                cache=cache,
            ),
            LogisticRegression(max_iter=1000),
        )
        search = GridSearchCV(pipe, grid, cv=cfg.folds)
        start = time.perf_counter()
        with threadpool_limits(1, user_api="blas"):
            search.fit(paths, y)
        return time.perf_counter() - start, search

    cached, uncached, caches = [], [], []
    order = (
        ["cached"]
        + ["uncached"] * cfg.grid_uncached_runs
        + ["cached"] * (cfg.grid_cached_runs - 1)
    )
    for arm in order:
        if arm == "cached":
            cache = FeatureCache()  # cold: the first extraction is timed too
            seconds, found = search(cache)
            cached.append((seconds, found))
            caches.append(cache)
        else:
            uncached.append(search(None))
    scores = [s.cv_results_["mean_test_score"] for _, s in cached + uncached]
    t_cached = summary([s for s, _ in cached])
    t_uncached = summary([s for s, _ in uncached])
    return {
        "data": f"{len(paths)} {source} PNG files",
        "folds": cfg.folds,
        "C": list(cfg.grid_C),
        "fits": len(cfg.grid_C) * cfg.folds + 1,
        "seconds_with_cache": t_cached,
        "seconds_without_cache": t_uncached,
        "speedup": t_uncached["median"] / t_cached["median"],
        "identical_mean_test_scores": all(np.array_equal(s, scores[0]) for s in scores),
        "mean_test_score": scores[0].tolist(),
        "cache_hits": caches[0].hits,
        "cache_misses": caches[0].misses,
    }


# -- 2b. a cached grid search against its limit ----------------------------------
def grid_limit(cfg, tmp):
    """GridSearchCV(extractor + StandardScaler + LogisticRegression) over C,
    with a cold FeatureCache, against its limit measured in the same
    repetition: one extraction of each image (a fresh extractor's fit +
    transform) plus the same search over the heads on those features."""
    from unittest import mock

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    from sktransfer import FeatureCache, PretrainedFeatureExtractor

    model, weights = "resnet18", None  # random weights: offline, same speed
    paths = write_photos(
        tmp / "limit_photos", cfg.limit_images, "jpg", size=cfg.photo_size
    )
    # Labels: which sample photo each file was cropped from, two classes.
    y = np.array([(i % 8) % 2 for i in range(len(paths))])
    grid = {"logisticregression__C": list(cfg.grid_C)}

    def extractor(cache):
        return PretrainedFeatureExtractor(
            model,
            weights=weights,
            preprocessing=cfg.preprocessing,
            device="cpu",
            cache=cache,
        )

    def head():
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))

    def timed(function):
        start = time.perf_counter()
        with threadpool_limits(1, user_api="blas"):
            out = function()
        return time.perf_counter() - start, out

    rows = []
    for folds in cfg.limit_folds:
        cv = StratifiedKFold(folds)
        found = {}

        def search(cache, found=found, cv=cv):
            pipe = make_pipeline(
                extractor(cache), StandardScaler(), LogisticRegression(max_iter=1000)
            )
            return GridSearchCV(pipe, grid, cv=cv).fit(paths, y)

        def cached(found=found):
            cache = FeatureCache()  # cold: the one extraction is timed too
            found["cached"] = search(cache)
            found["cache"] = (cache.hits, cache.misses)

        def cached_building(found=found):
            # The behaviour before: every fit builds the network (and loads
            # its weights) even when the cache holds every feature.
            with mock.patch.object(
                PretrainedFeatureExtractor, "_known_recipe", return_value=None
            ):
                found["building"] = search(FeatureCache())

        def limit(found=found, cv=cv):
            seconds, features = timed(
                lambda: extractor(None).fit(paths).transform(paths)
            )
            found["extraction_seconds"] = found.get("extraction_seconds", []) + [
                seconds
            ]
            heads = GridSearchCV(head(), grid, cv=cv)
            seconds, found["limit"] = timed(lambda: heads.fit(features, y))
            found["heads_seconds"] = found.get("heads_seconds", []) + [seconds]

        def one_blas_thread(function):
            return lambda: timed(function)

        seconds = interleaved(
            {
                "cached": one_blas_thread(cached),
                "cached, network built in every fit": one_blas_thread(cached_building),
                "limit": one_blas_thread(limit),
            },
            cfg.limit_reps,
            warmup=cfg.limit_warmup,
        )
        t_uncached, uncached = timed(lambda: search(None))
        n = len(seconds["limit"])
        to_limit = [seconds["limit"][i] / seconds["cached"][i] for i in range(n)]
        before = [
            seconds["limit"][i] / seconds["cached, network built in every fit"][i]
            for i in range(n)
        ]
        scores = [
            found[k].cv_results_["mean_test_score"]
            for k in ("cached", "building", "limit")
        ]
        rows.append(
            {
                "folds": folds,
                "fits": len(cfg.grid_C) * folds + 1,
                "seconds_without_cache": t_uncached,
                "seconds": {k: summary(v) for k, v in seconds.items()},
                # The timed repetitions only (not the untimed warm-up).
                "extraction_seconds": summary(found["extraction_seconds"][-n:]),
                "heads_seconds": summary(found["heads_seconds"][-n:]),
                "warmup": cfg.limit_warmup,
                "speedup_with_cache": t_uncached / statistics.median(seconds["cached"]),
                "speedup_at_the_limit": t_uncached
                / statistics.median(seconds["limit"]),
                "ratio_to_limit": summary(to_limit),
                "ratio_to_limit_network_built_in_every_fit": summary(before),
                "identical_mean_test_scores_cached_uncached": bool(
                    np.array_equal(scores[0], uncached.cv_results_["mean_test_score"])
                ),
                "identical_mean_test_scores_cached_limit": bool(
                    np.array_equal(scores[0], scores[2])
                ),
                "mean_test_score": scores[0].tolist(),
                "cache_hits_misses": list(found["cache"]),
            }
        )
    return {
        "model": f"{model} (random weights)",
        "data": f"{len(paths)} JPEG photos of {cfg.photo_size[0]} x {cfg.photo_size[1]} px",
        "preprocessing": cfg.preprocessing or "the weights' own (224 px crop)",
        "C": list(cfg.grid_C),
        "rows": rows,
    }


# -- 3. linear probe: features once per fit ------------------------------------
def linear_probe(cfg, tmp):
    from sktransfer import FineTunedClassifier

    images, y, source = labelled_images(cfg.probe_images)
    params = dict(
        freeze="backbone",
        augment="off",
        max_epochs=cfg.probe_epochs,
        batch_size=32,
        preprocessing=cfg.small,
        device="cpu",
        random_state=0,
    )
    fitted = {}

    def fit(name, **extra):
        fitted[name] = FineTunedClassifier("efficientnet_lite0", **params, **extra).fit(
            images, y
        )

    seconds = interleaved(
        {
            "features once per fit": lambda: fit("once"),
            "features every epoch": lambda: fit("every", train_transform=lambda x: x),
        },
        cfg.probe_reps,
    )
    once, every = fitted["once"], fitted["every"]
    proba = np.abs(once.predict_proba(images) - every.predict_proba(images)).max()
    return {
        "data": f"{len(images)} {source} images at {cfg.small['crop_size']} px",
        "epochs": cfg.probe_epochs,
        "seconds_once_per_fit": summary(seconds["features once per fit"]),
        "seconds_every_epoch": summary(seconds["features every epoch"]),
        "speedup": summary(
            [
                e / o
                for e, o in zip(
                    seconds["features every epoch"], seconds["features once per fit"]
                )
            ]
        ),
        "same_predictions": bool((once.predict(images) == every.predict(images)).all()),
        "max_abs_proba_difference": float(proba),
    }


# -- 4. a fine-tuning epoch vs a hand-written loop ------------------------------
def finetune_epoch(cfg, tmp):
    import torch
    from torch import nn

    from sktransfer import FineTunedClassifier
    from sktransfer._features import FeatureModel
    from sktransfer._inputs import as_image_sequence
    from sktransfer.backbones._load import load_backbone

    images, y, source = labelled_images(cfg.finetune_images)
    n_classes = len(np.unique(y))
    size, batch = cfg.finetune_size, cfg.finetune_batch
    # The estimator with its defaults (LP-FT head, BatchNorm statistics fixed,
    # flip augmentation, channels-last, AdamW + warmup-cosine); only the image
    # size, batch size and a fixed number of epochs are set.
    params = dict(
        max_epochs=cfg.finetune_epochs,
        batch_size=batch,
        preprocessing=size,
        device="cpu",
        random_state=0,
    )
    # The same data, preprocessed once as the estimator does it.
    loaded = load_backbone("efficientnet_lite0", "DEFAULT", preprocessing=size)
    seq = as_image_sequence(images)
    X = torch.stack([loaded.preprocessing.apply(seq[i]) for i in range(len(seq))])
    Y = torch.as_tensor(np.searchsorted(np.unique(y), y))
    names = {
        "estimator": "FineTunedClassifier (defaults)",
        "best": "hand-written loop, channels-last, BatchNorm fixed, no augmentation",
        "nchw": "hand-written loop, NCHW (the layout of sktransfer 0.1.0)",
    }
    epochs = {name: [] for name in names}

    def estimator():
        clf = FineTunedClassifier("efficientnet_lite0", **params).fit(images, y)
        epochs["estimator"].append([h["dur"] for h in clf.history_])

    def hand_loop(channels_last):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            loaded = load_backbone("efficientnet_lite0", "DEFAULT", preprocessing=size)
            body = FeatureModel(loaded.model, loaded.head, None, "avg")
            model = nn.Sequential(body, nn.Linear(body(X[:1]).shape[1], n_classes))
            if channels_last:  # batches are converted as they come
                model = model.to(memory_format=torch.channels_last)
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
            loss_fn = nn.CrossEntropyLoss()
            data = torch.utils.data.DataLoader(
                torch.utils.data.TensorDataset(X, Y),
                batch_size=batch,
                shuffle=True,
            )
            durations = []
            for _ in range(cfg.finetune_epochs):
                start = time.perf_counter()
                model.train()
                if channels_last:
                    for m in model.modules():
                        if isinstance(m, nn.modules.batchnorm._BatchNorm):
                            m.eval()
                for xb, yb in data:
                    if channels_last:
                        xb = xb.contiguous(memory_format=torch.channels_last)
                    optimizer.zero_grad()
                    loss_fn(model(xb), yb).backward()
                    optimizer.step()
                durations.append(time.perf_counter() - start)
        epochs["best" if channels_last else "nchw"].append(durations)

    interleaved(
        {
            "estimator": estimator,
            "best": lambda: hand_loop(True),
            "nchw": lambda: hand_loop(False),
        },
        cfg.finetune_reps,
    )
    # Steady state: the first epoch of each run also warms up (and, for the
    # estimator, resizes every image once); later epochs are compared.
    skip = 1 if cfg.finetune_epochs > 1 else 0

    def rate(name):
        return [len(images) / d for run in epochs[name] for d in run[skip:]]

    def ratios(name):
        return [
            statistics.median(b[skip:]) / statistics.median(e[skip:])
            for e, b in zip(epochs[name], epochs["best"])
        ]

    return {
        "data": f"{len(images)} {source} images at {size['crop_size']} px, "
        f"batch {batch}, AdamW, {cfg.finetune_epochs} epochs",
        "names": names,
        "images_per_second": {k: summary(rate(k)) for k in names},
        "first_epoch_seconds": {k: [run[0] for run in v] for k, v in epochs.items()},
        "ratio_to_best": {k: summary(ratios(k)) for k in names if k != "best"},
    }


# -- 5. peak memory ---------------------------------------------------------------
def memory(cfg, tmp):
    if not Path("/proc/self/status").exists():
        return {"skipped": "needs Linux's /proc to read resident memory"}
    images, _, source = labelled_images(max(cfg.memory_sizes))
    if len(images) < max(cfg.memory_sizes):  # digits: 1797 images, tiled
        reps = -(-max(cfg.memory_sizes) // len(images))
        images = np.concatenate([np.roll(images, k, axis=1) for k in range(reps)])
    folder = tmp / "memory"
    save_images(folder, images[: max(cfg.memory_sizes)])
    rows = []
    for n in cfg.memory_sizes:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-child",
                str(folder),
                str(n),
                json.dumps(cfg.memory_preprocessing),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "data": f"{source} PNG files",
        "model": "resnet18 (random weights)",
        "preprocessing": cfg.memory_preprocessing,
        "rows": rows,
    }


def memory_child(folder, n, preprocessing):
    """Run in a fresh process: resident memory around transforming n files."""
    from sktransfer import PretrainedFeatureExtractor

    paths = sorted(str(p) for p in Path(folder).glob("*.png"))[:n]
    ext = PretrainedFeatureExtractor(
        "resnet18", weights=None, device="cpu", preprocessing=preprocessing
    ).fit(paths[:1])
    ext.transform(paths[:64])  # warm-up: allocator pools, kernels
    before = _rss("VmRSS")
    reset = _reset_peak_rss()
    start = time.perf_counter()
    features = ext.transform(paths)
    seconds = time.perf_counter() - start
    peak = _rss("VmHWM")
    print(
        json.dumps(
            {
                "images": n,
                "rss_before_mb": before,
                "peak_rss_during_mb": peak,
                "growth_mb": peak - before,
                "peak_reset": reset,
                "output_mb": features.nbytes / 2**20,
                "seconds": seconds,
            }
        )
    )


def _rss(field):
    """VmRSS (now) or VmHWM (peak) of this process in MiB, from /proc (Linux).

    Not ``ru_maxrss``: it keeps the peak of the parent process this one was
    forked from, which hides everything smaller.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise OSError(f"no {field} in /proc/self/status")


def _reset_peak_rss():
    """Make VmHWM start again from the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: checks the script in seconds"
    )
    parser.add_argument("--output", default=str(HERE))
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections of {SECTIONS}",
    )
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        folder, n, pre = args.memory_child
        return memory_child(folder, int(n), json.loads(pre))
    cfg = SMOKE if args.smoke else Config()
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {SECTIONS}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sktransfer-speed-") as tmp:
        # Nothing reads or writes the user's torch hub cache.
        os.environ["TORCH_HOME"] = str(Path(tmp) / "torch_home")
        results = {
            "smoke": args.smoke,
            "config": asdict(cfg),
            "environment": environment(),
        }
        for name in sections:
            t = time.perf_counter()
            print(f"[{name}] ...", flush=True)
            results[name] = globals()[name](cfg, Path(tmp))
            results[name]["section_seconds"] = time.perf_counter() - t
            print(f"[{name}] {results[name]['section_seconds']:.0f} s", flush=True)
    results["environment"]["load_average_at_end"] = list(os.getloadavg())
    previous = Path(args.output) / "results.json"
    if set(sections) != set(SECTIONS) and previous.exists() and not args.smoke:
        # --only reruns some sections; keep the others from the last full run.
        kept = json.loads(previous.read_text())
        results = {**kept, **{k: v for k, v in results.items() if k in sections}}
        results["rerun"] = {"sections": sections, "environment": environment()}
    results["total_seconds"] = time.perf_counter() - start
    write_report(results, args.output, markdown(results))
    print(
        f"wrote {Path(args.output) / 'results.json'} and results.md "
        f"({results['total_seconds']:.0f} s)"
    )


if __name__ == "__main__":
    main()
