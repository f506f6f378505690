"""The ``sktransfer`` command: ``sktransfer demo`` and ``sktransfer backbones``."""

from __future__ import annotations

import argparse
import sys
import time


def _ints(text):
    return tuple(int(t) for t in text.split(",") if t)


def _parser():
    parser = argparse.ArgumentParser(
        prog="sktransfer",
        description="Pretrained deep backbones as scikit-learn estimators.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="compare transfer learning with classical baselines on real data",
        description=(
            "Train classical baselines (raw pixels + logistic regression, HOG + "
            "linear SVM, RBF SVC), a linear probe (PretrainedFeatureExtractor + "
            "LogisticRegression) and fine-tuning (FineTunedClassifier) on the same "
            "n-labels-per-class subsets; print a table, write results.json, "
            "results.md and accuracy.png. Defaults finish in about 10 minutes on "
            "2 CPU cores."
        ),
    )
    demo.add_argument(
        "--dataset",
        default="auto",
        choices=["auto", "fashion_mnist", "digits"],
        help="auto: Fashion-MNIST when installed, else sklearn digits",
    )
    demo.add_argument(
        "--backbone",
        default="efficientnet_lite0",
        help="any name from `sktransfer backbones` (default: the "
        "offline ImageNet EfficientNet-Lite0)",
    )
    demo.add_argument(
        "--image-size",
        type=int,
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
        type=_ints,
        default=(0, 1, 2),
        help="seeds, one labelled subset each (default 0,1,2)",
    )
    demo.add_argument(
        "--test-size",
        type=int,
        default=2000,
        help="test images (stratified from the official test set; 0: all)",
    )
    demo.add_argument(
        "--finetune-sizes",
        type=_ints,
        default=(10, 50),
        help="labels-per-class sizes at which to fine-tune "
        "(default 10,50; fine-tuning is the slow part)",
    )
    demo.add_argument(
        "--finetune-epochs", type=int, default=6, help="fine-tuning epochs (default 6)"
    )
    demo.add_argument(
        "--methods",
        default=None,
        help="comma-separated subset of pixels_logreg, "
        "hog_linear_svm, pixels_rbf_svc, linear_probe, fine_tune",
    )
    demo.add_argument(
        "--output",
        default="sktransfer-demo",
        help="folder for results.json, results.md, accuracy.png",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    lst = sub.add_parser("backbones", help="list the backbone names")
    lst.add_argument(
        "--source", default=None, choices=["registered", "torchvision", "timm"]
    )
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == "backbones":
        from .backbones import list_backbones

        print("\n".join(list_backbones(args.source)))
        return 0
    return _demo(args)


def _demo(args):
    from ._benchmark import BenchmarkConfig, run_benchmark, write_report

    config = BenchmarkConfig(
        dataset=args.dataset,
        backbone=args.backbone,
        image_size=args.image_size or None,
        sizes=args.sizes,
        seeds=args.seeds,
        test_size=args.test_size or None,
        finetune_sizes=args.finetune_sizes,
        finetune_epochs=args.finetune_epochs,
    )
    if args.methods:
        config.methods = tuple(m.strip() for m in args.methods.split(","))
    start = time.perf_counter()
    report = run_benchmark(config, progress=not args.quiet)
    report["wall_time"] = time.perf_counter() - start
    title = (
        f"sktransfer demo: {report['dataset']}, backbone {config.backbone}, "
        f"{len(config.seeds)} seed(s)"
    )
    table = write_report(report, args.output, title)
    print()
    print(table)
    print(
        f"\nWrote {args.output}/results.json, results.md and accuracy.png "
        f"in {report['wall_time']:.0f} s."
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
