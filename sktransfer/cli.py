"""The ``sktransfer`` command: ``sktransfer demo``, ``sktransfer backbones`` and
``sktransfer extract``."""

from __future__ import annotations

import argparse
import sys
import time


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad argument reported in one line (exit code 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _int_at_least(low, text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value} is not >= {low}")
    return value


def _positive(text):
    return _int_at_least(1, text)


def _non_negative(text):
    return _int_at_least(0, text)


def _ints(text):
    values = tuple(_positive(t) for t in text.split(",") if t.strip())
    if not values:
        raise argparse.ArgumentTypeError("expected comma-separated integers >= 1")
    return values


def _seeds(text):
    values = tuple(_non_negative(t) for t in text.split(",") if t.strip())
    if not values:
        raise argparse.ArgumentTypeError("expected comma-separated integers >= 0")
    return values


def _backbone(text):
    from .backbones._registry import get_backbone_spec

    try:
        get_backbone_spec(text)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _methods(text):
    from ._benchmark import METHOD_LABELS

    methods = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in methods if m not in METHOD_LABELS]
    if unknown or not methods:
        raise argparse.ArgumentTypeError(
            f"unknown method(s) {unknown}; choose from {', '.join(METHOD_LABELS)}"
        )
    return methods


def _epochs(text):
    return text if text == "auto" else _positive(text)


def _names(text):
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _layers(text):
    return tuple(None if t == "None" else t for t in _names(text))


def _device(text):
    """A device this machine has ("auto" always); else a bad argument (exit 2)."""
    from ._device import resolve_device

    try:
        resolve_device(text, "--device")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("--device: ", "")) from None
    return text


def _folder(text):
    from pathlib import Path

    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder")
    return text


def _parser():
    from . import __version__

    parser = _Parser(
        prog="sktransfer",
        description="Pretrained deep backbones as scikit-learn estimators.",
    )
    parser.add_argument(
        "--version", action="version", version=f"sktransfer {__version__}"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="compare transfer learning with classical baselines on real data",
        description=(
            "Train classical baselines (raw pixels + logistic regression, HOG + "
            "linear SVM, RBF SVC), a linear probe (PretrainedFeatureExtractor + "
            "LogisticRegression) and fine-tuning (FineTunedClassifier) on the same "
            "n-labels-per-class subsets; then a cached GridSearchCV over backbone "
            "x layer and the LogME ranking of the same candidates. Prints the "
            "tables, writes results.json, results.md, accuracy.png and logme.png. "
            "Data: the full Fashion-MNIST when installed (or downloadable), else "
            "the Fashion-MNIST sample shipped with sktransfer. Defaults finish in "
            "under 10 minutes on 2 CPU cores."
        ),
    )
    demo.add_argument(
        "--dataset",
        default="auto",
        choices=["auto", "fashion_mnist", "fashion_mnist_sample", "digits"],
        help="auto: the full Fashion-MNIST when installed or downloadable, else "
        "the sample shipped with sktransfer (4,000 train / 2,000 test images); "
        "digits: scikit-learn's 8x8 digits",
    )
    demo.add_argument(
        "--download",
        default="auto",
        choices=["auto", "yes", "no"],
        help="download the full Fashion-MNIST when it is not installed: auto "
        "(default) only if the server answers within 3 s, yes, or no",
    )
    demo.add_argument(
        "--backbone",
        type=_backbone,
        default="efficientnet_lite0",
        help="any name from `sktransfer backbones` (default: the "
        "offline ImageNet EfficientNet-Lite0)",
    )
    demo.add_argument(
        "--image-size",
        type=_non_negative,
        default=112,
        help="images are resized to this many pixels for the "
        "backbone (0: the weights' own preprocessing, 224 for "
        "Lite0); default 112",
    )
    demo.add_argument(
        "--sizes",
        type=_ints,
        default=(10, 50, 200),
        help="labels per class, comma-separated (default 10,50,200)",
    )
    demo.add_argument(
        "--seeds",
        type=_seeds,
        default=(0, 1, 2),
        help="seeds, one labelled subset each (default 0,1,2)",
    )
    demo.add_argument(
        "--test-size",
        type=_non_negative,
        default=2000,
        help="test images (stratified from the official test set; 0: all; "
        "default 2000)",
    )
    demo.add_argument(
        "--finetune-sizes",
        type=_ints,
        default=(10, 50),
        help="labels-per-class sizes at which to fine-tune (default 10,50; "
        "fine-tuning is the slow part: about a minute per fit at 112 px on 2 "
        "CPU cores)",
    )
    demo.add_argument(
        "--finetune-epochs",
        type=_epochs,
        default="auto",
        help="fine-tuning epochs (default: auto, FineTunedClassifier's own: "
        "5 epochs and at least 150 optimizer steps)",
    )
    demo.add_argument(
        "--finetune-seeds",
        type=_seeds,
        default=(0,),
        help="seeds at which to fine-tune, comma-separated (default 0; the "
        "other methods run at every seed)",
    )
    demo.add_argument(
        "--methods",
        type=_methods,
        default=None,
        help="comma-separated subset of pixels_logreg, "
        "hog_linear_svm, pixels_rbf_svc, linear_probe, fine_tune, backbone_grid "
        "(default: all of them)",
    )
    demo.add_argument(
        "--grid-backbones",
        type=_names,
        default=None,
        help="backbones of the GridSearchCV / LogME comparison, comma-separated "
        "(default efficientnet_lite0,efficientnet_lite1,efficientnet_lite2; "
        "names not registered are skipped)",
    )
    demo.add_argument(
        "--grid-layers",
        type=_layers,
        default=None,
        help="layers of the comparison, comma-separated, None for the pooled "
        "pre-classifier features (default None,blocks.5)",
    )
    demo.add_argument(
        "--grid-size",
        type=_positive,
        default=None,
        help="labels per class of the comparison (default 50)",
    )
    demo.add_argument(
        "--grid-test-size",
        type=_non_negative,
        default=1000,
        help="test images scoring each candidate of the comparison (a "
        "stratified subset of the test set; 0: all; default 1000)",
    )
    demo.add_argument(
        "--output",
        default="sktransfer-demo",
        help="folder for results.json, results.md, accuracy.png, logme.png "
        "(default sktransfer-demo)",
    )
    demo.add_argument(
        "--device",
        type=_device,
        default="auto",
        help="where the networks run: cpu, cuda, cuda:N, mps or auto (default: "
        "the best available)",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.add_argument(
        "--smoke",
        action="store_true",
        help="a seconds-long check of the whole demo (5 labels per class, one "
        "seed, 100 test images, 32 px, one fine-tuning epoch, Lite0 x 2 layers); "
        "the figures mean nothing",
    )
    _add_extract(sub)
    lst = sub.add_parser("backbones", help="list the backbone names")
    lst.add_argument(
        "--source",
        default=None,
        choices=["registered", "torchvision", "timm"],
        help="list only the backbones of this source (default: registered "
        "and torchvision)",
    )
    return parser


def _add_extract(sub):
    from ._batch_extract import ENGINES

    ext = sub.add_parser(
        "extract",
        help="features of a folder of images -> Parquet",
        description=(
            "Run a pretrained backbone over every image file under FOLDER "
            "(recursively: .png .jpg .jpeg .bmp .gif .tif .tiff .webp) and write "
            "a path column and one float32 column per feature to Parquet, one "
            "batch at a time (memory bounded by the batch, not the folder)."
        ),
    )
    ext.add_argument("folder", type=_folder, metavar="FOLDER", help="image folder")
    ext.add_argument(
        "-o",
        "--output",
        default="features.parquet",
        help="Parquet file (engine local) or folder of Parquet files (dask, "
        "ray); default features.parquet",
    )
    ext.add_argument(
        "--backbone",
        type=_backbone,
        default="efficientnet_lite0",
        help="any name from `sktransfer backbones` (default: the offline "
        "ImageNet EfficientNet-Lite0)",
    )
    ext.add_argument(
        "--layer",
        default=None,
        help="layer whose pooled output are the features (default: the "
        "backbone's pre-classifier features)",
    )
    ext.add_argument(
        "--batch-size",
        type=_positive,
        default=256,
        help="images per batch, decoded and written together (default 256)",
    )
    ext.add_argument(
        "--engine",
        default="local",
        choices=ENGINES,
        help="local (this process, default), dask (a local cluster of "
        "--workers processes) or ray (a local Ray Data actor pool of --workers)",
    )
    ext.add_argument(
        "--workers",
        type=_positive,
        default=2,
        help="worker processes for dask and ray (default 2)",
    )
    ext.add_argument(
        "--device",
        type=_device,
        default="auto",
        help="cpu, cuda, cuda:N, mps or auto (default: the best available)",
    )
    ext.add_argument("--quiet", action="store_true", help="no progress bar")


_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _extract(args):
    from pathlib import Path

    from ._batch_extract import extract_to_parquet
    from ._extractor import PretrainedFeatureExtractor

    paths = sorted(
        str(p)
        for p in Path(args.folder).rglob("*")
        if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file()
    )
    if not paths:
        raise ValueError(
            f"no image file under {args.folder!r} (looked for "
            f"{', '.join(sorted(_IMAGE_SUFFIXES))})"
        )
    extractor = PretrainedFeatureExtractor(
        args.backbone, layer=args.layer, device=args.device, on_error="warn"
    )
    start = time.perf_counter()
    options = {"batch_size": args.batch_size, "progress": not args.quiet}
    if args.engine == "dask":
        from .distributed import require_backend

        distributed = require_backend("dask")
        with (
            distributed.LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            n = extract_to_parquet(
                paths, args.output, extractor, engine="dask", client=client, **options
            )
    else:
        n = extract_to_parquet(
            paths,
            args.output,
            extractor,
            engine=args.engine,
            n_workers=args.workers,
            **options,
        )
    seconds = time.perf_counter() - start
    print(
        f"Wrote {n} rows to {args.output} in {seconds:.1f} s ({n / seconds:.0f} images/s)."
    )
    return 0


def main(argv=None):
    """The ``sktransfer`` command. Bad arguments exit with code 2, errors
    while running (weights or data not available, ...) with code 1; both
    print one line, not a traceback."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "backbones":
            from .backbones import list_backbones

            print("\n".join(list_backbones(args.source)))
            return 0
        if args.command == "extract":
            return _extract(args)
        return _demo(args)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        print(f"sktransfer {args.command}: error: {exc}", file=sys.stderr)
        return 1


def _demo(args):
    from ._benchmark import BenchmarkConfig, run_benchmark, write_report

    config = BenchmarkConfig(
        dataset=args.dataset,
        download=args.download,
        backbone=args.backbone,
        image_size=args.image_size or None,
        sizes=args.sizes,
        seeds=args.seeds,
        test_size=args.test_size or None,
        finetune_sizes=args.finetune_sizes,
        finetune_epochs=args.finetune_epochs,
        finetune_seeds=args.finetune_seeds,
        grid_test_size=args.grid_test_size or None,
        device=args.device,
    )
    if args.methods:
        config.methods = args.methods
    for name in ("grid_backbones", "grid_layers", "grid_size"):
        if getattr(args, name) is not None:
            setattr(config, name, getattr(args, name))
    if args.smoke:
        config.sizes, config.seeds, config.test_size = (5,), (0,), 100
        config.image_size, config.finetune_sizes, config.finetune_epochs = 32, (5,), 1
        config.grid_test_size = None
        config.grid_backbones, config.grid_layers = (
            ("efficientnet_lite0",),
            (
                None,
                "blocks.5",
            ),
        )
        config.grid_size = 5
    start = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - start:5.0f} s] {message}", flush=True)

    report = run_benchmark(config, log=log, progress=not args.quiet)
    report["wall_time"] = time.perf_counter() - start
    title = (
        f"sktransfer demo: {report['dataset']}, backbone {config.backbone}, "
        f"{len(config.seeds)} seed(s)"
    )
    table = write_report(report, args.output, title)
    print()
    print(table)
    written = "results.json, results.md, accuracy.png" + (
        ", logme.png" if report.get("grid") else ""
    )
    print(f"\nWrote {written} to {args.output}/ in {report['wall_time']:.0f} s.")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
