"""The full transfer-vs-classical protocol on Fashion-MNIST (and sklearn digits).

Several seeds; 10 / 100 / 1000 labelled images per class and the full
training set (6000 per class) where time allows; scored on the official
10,000-image test set. Writes results.json, results.md (with the published
Fashion-MNIST figures beside ours), accuracy.png and, for the GridSearchCV
over backbone x layer with the LogME ranking (50 labels per class), logme.png.

    python benchmarks/transfer_vs_classical.py                 # the committed run
    python benchmarks/transfer_vs_classical.py --smoke --output /tmp/x   # seconds, digits
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from sktransfer._benchmark import BenchmarkConfig, run_benchmark, write_report
from sktransfer.datasets import fashion_mnist_published_results

HERE = Path(__file__).resolve().parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a seconds-long run on sklearn digits (checks the script)",
    )
    parser.add_argument("--output", default=str(HERE / "results" / "fashion_mnist"))
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--dataset",
        default="fashion_mnist",
        choices=["fashion_mnist", "fashion_mnist_sample", "digits"],
        help="fashion_mnist_sample: the sample shipped with sktransfer (sizes "
        "10, 50, 200 per class); digits: sklearn's 8x8 digits (half train, "
        "half test; sizes 5, 20, 80 per class)",
    )
    parser.add_argument(
        "--no-full",
        action="store_true",
        help="skip the full training set (6000 per class)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite results.md and accuracy.png from results.json",
    )
    args = parser.parse_args(argv)
    if args.report_only:
        report = json.loads((Path(args.output) / "results.json").read_text())
        report.pop("summary", None)
        _write(report, args.output, report["config"])
        return
    seeds = tuple(int(s) for s in args.seeds.split(","))
    if args.smoke:
        config = BenchmarkConfig(
            dataset="digits",
            sizes=(5,),
            seeds=(0,),
            image_size=32,
            finetune_sizes=(5,),
            finetune_epochs=1,
            test_size=100,
            grid_backbones=("efficientnet_lite0",),
            grid_layers=(None, "blocks.5"),
            grid_size=5,
        )
    elif args.dataset == "digits":
        config = BenchmarkConfig(
            dataset="digits",
            sizes=(5, 20, 80),
            seeds=seeds,
            image_size=args.image_size,
            test_size=None,
            finetune_sizes=(5, 20),
            finetune_epochs=8,
        )
    elif args.dataset == "fashion_mnist_sample":
        config = BenchmarkConfig(
            dataset="fashion_mnist_sample",
            sizes=(10, 50, 200),
            seeds=seeds,
            image_size=args.image_size,
            test_size=None,
            finetune_sizes=(10, 50),
            finetune_epochs=6,
        )
    else:
        sizes = (10, 100, 1000) if args.no_full else (10, 100, 1000, 6000)
        config = BenchmarkConfig(
            dataset="fashion_mnist",
            sizes=sizes,
            seeds=seeds,
            image_size=args.image_size,
            test_size=None,
            finetune_sizes=(10,),
            finetune_epochs=8,
            extra={
                "full_size_methods": ["pixels_logreg", "hog_linear_svm", "linear_probe"]
            },
        )
    start = time.perf_counter()
    report = run_benchmark(config, progress=False)
    report["wall_time"] = time.perf_counter() - start
    report["published"] = (
        [
            r
            for r in fashion_mnist_published_results()
            if r["model"]
            in (
                "HOG+SVM",
                "ResNet18",
                "MLP 256-128-100",
                "XgBoost",
                "MobileNet",
                "Human Performance",
            )
        ]
        if report["dataset"] == "fashion_mnist"
        else []
    )
    _write(report, args.output, asdict(config))


def _write(report, output, config):
    title = (
        f"{report['dataset']}: transfer ({config['backbone']}, "
        f"{config['image_size']} px) vs classical baselines"
    )
    table = write_report(report, output, title)
    if report["published"]:
        lines = [
            "",
            "## Published Fashion-MNIST results (full training set)",
            "",
            "From the benchmark table of the Fashion-MNIST README "
            f"({report['published'][0]['source']}):",
            "",
            "| model | preprocessing | accuracy |",
            "|---|---|---:|",
        ]
        lines += [
            f"| {r['model']} | {r['preprocessing']} | {r['accuracy']:.3f} |"
            for r in report["published"]
        ]
        with open(Path(output) / "results.md", "a") as f:
            f.write("\n".join(lines) + "\n")
    print(table)
    print(f"wall time {report['wall_time']:.0f} s")


if __name__ == "__main__":
    main()
