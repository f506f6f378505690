"""LogME validation: does LogME rank backbones x layers as a linear probe does?

For each data set (Fashion-MNIST and scikit-learn's digits) and each
candidate (3 pretrained EfficientNet-Lite backbones x 6 layers), on one
labelled subset per class:

- LogME of the training subset's features, from ``sktransfer.rank_backbones``
  (features cached in one shared ``FeatureCache``);
- the linear probe (``StandardScaler`` + ``LogisticRegression(max_iter=1000)``)
  on the same cached features: 5-fold stratified cross-validated accuracy on
  the training subset, and the accuracy on a held-out, disjoint test set of
  the probe fitted on the whole training subset;
- Kendall's tau between LogME and each probe accuracy over the candidates,
  with the reference measured in the same run: the tau between the probe's
  own CV accuracy and its test accuracy (how well the expensive selection
  by cross-validation predicts the test ranking);
- the time LogME took vs the probe's cross-validation on the same features
  (both with one BLAS thread).

Usage::

    python benchmarks/logme/run.py                 # writes results.json/.md here
    python benchmarks/logme/run.py --smoke --output /tmp/logme   # seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


@dataclass
class Config:
    datasets: tuple = ("fashion_mnist", "digits")
    backbones: tuple = (
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
    )
    # From shallow to pooled pre-logits, so that the candidates differ.
    layers: tuple = ("blocks.2", "blocks.3", "blocks.4", "blocks.5", "blocks.6", None)
    n_per_class: int = 50
    test_per_class: int = 100
    image_size: int = 64
    cv: int = 5
    seed: int = 0
    batch_size: int = 32


SMOKE = Config(
    backbones=("efficientnet_lite0",),
    layers=("blocks.3", None),
    n_per_class=4,
    test_per_class=3,
    cv=2,
)


# -- data -------------------------------------------------------------------
def load(name, config, log):
    """Training subset and a disjoint, stratified test set."""
    from sktransfer.datasets import (
        load_digits_images,
        load_fashion_mnist,
        subsample_per_class,
    )

    if name == "fashion_mnist":
        X, y = load_fashion_mnist(subset="train", return_X_y=True)
        X_test, y_test = load_fashion_mnist(subset="test", return_X_y=True)
        source = "official train set (subset) / official test set (subset)"
    elif name == "digits":
        X, y = load_digits_images(return_X_y=True)
        X_test = y_test = None
        source = "sklearn digits: train subset, test from the other images"
    else:
        raise ValueError(f"unknown data set {name!r}")
    index = np.arange(len(y))
    train, _ = subsample_per_class(
        index, y, config.n_per_class, random_state=config.seed
    )
    if X_test is None:  # test images from the rest of the same set
        rest = np.setdiff1d(index, train)
        X_test, y_test = X[rest], y[rest]
    test_index = np.arange(len(y_test))
    test, _ = subsample_per_class(
        test_index, y_test, config.test_per_class, random_state=config.seed + 1
    )
    log(
        f"{name}: {len(train)} training and {len(test)} test images "
        f"{X.shape[1:]} ({source})"
    )
    return X[train], y[train], X_test[test], y_test[test], source


# -- one data set -----------------------------------------------------------
def run_dataset(name, config, log):
    from scipy.stats import kendalltau
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    from sktransfer import FeatureCache, PretrainedFeatureExtractor, rank_backbones

    start = time.perf_counter()
    X, y, X_test, y_test, source = load(name, config, log)
    preprocessing = {"resize_size": config.image_size, "crop_size": config.image_size}
    shared = {
        "preprocessing": preprocessing,
        "device": "cpu",
        "batch_size": config.batch_size,
    }
    candidates = [
        {"backbone": b, "layer": layer}
        for b in config.backbones
        for layer in config.layers
    ]
    cache = FeatureCache()
    # numpy/scipy/sklearn on one BLAS thread (torch uses its own MKL threads).
    with threadpool_limits(limits=1, user_api="blas"):
        ranking = rank_backbones(X, y, candidates, cache=cache, verbose=1, **shared)
    rank_time = time.perf_counter() - start
    rows = []
    for i, params in enumerate(ranking["params"]):
        extractor = PretrainedFeatureExtractor(**params, cache=cache, **shared)
        hits = cache.hits
        t0 = time.perf_counter()
        F = extractor.fit(X).transform(X)
        train_from_cache = cache.hits - hits
        cached_time = time.perf_counter() - t0
        t0 = time.perf_counter()
        F_test = extractor.transform(X_test)
        test_extract_time = time.perf_counter() - t0
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        folds = StratifiedKFold(config.cv, shuffle=True, random_state=config.seed)
        with threadpool_limits(limits=1, user_api="blas"):
            t0 = time.perf_counter()
            cv_scores = cross_val_score(probe, F, y, cv=folds)
            cv_time = time.perf_counter() - t0
            t0 = time.perf_counter()
            test_accuracy = probe.fit(F, y).score(F_test, y_test)
            fit_time = time.perf_counter() - t0
        rows.append(
            {
                "backbone": ranking["backbone"][i],
                "layer": ranking["layer"][i],
                "n_features": ranking["n_features"][i],
                "logme": ranking["logme"][i],
                "logme_rank": ranking["rank"][i],
                "cv_accuracy": float(np.mean(cv_scores)),
                "cv_accuracy_sd": float(np.std(cv_scores)),
                "test_accuracy": float(test_accuracy),
                "extract_time": ranking["extract_time"][i],
                "logme_time": ranking["score_time"][i],
                "probe_cv_time": cv_time,
                "probe_fit_test_time": fit_time,
                "train_features_from_cache": int(train_from_cache),
                "train_features_cached_time": cached_time,
                "test_extract_time": test_extract_time,
            }
        )
        log(
            f"  {rows[-1]['backbone']} {rows[-1]['layer']}: LogME "
            f"{rows[-1]['logme']:.4f} ({rows[-1]['logme_time']:.3f} s), probe CV "
            f"{rows[-1]['cv_accuracy']:.3f} ({cv_time:.2f} s), test "
            f"{test_accuracy:.3f}"
        )
    for key, rank_key in (("cv_accuracy", "cv_rank"), ("test_accuracy", "test_rank")):
        values = np.array([row[key] for row in rows])
        for row, value in zip(rows, values):
            row[rank_key] = int(1 + np.sum(values > value))
    logme = [row["logme"] for row in rows]
    agreement = {}
    for key in ("cv_accuracy", "test_accuracy"):
        accuracy = [row[key] for row in rows]
        tau = kendalltau(logme, accuracy)
        best = int(np.argmax(accuracy))
        agreement[key] = {
            "kendall_tau": float(tau.statistic),
            "p_value": float(tau.pvalue),
            # rows are in LogME order: row 0 is LogME's choice
            "accuracy_of_logme_choice": accuracy[0],
            "best_accuracy": accuracy[best],
            "best_candidate": f"{rows[best]['backbone']} {rows[best]['layer']}",
        }
    # The reference: selecting by the probe's cross-validated accuracy.
    cv_accuracy = [row["cv_accuracy"] for row in rows]
    test_accuracy = [row["test_accuracy"] for row in rows]
    tau = kendalltau(cv_accuracy, test_accuracy)
    agreement["cv_vs_test"] = {
        "kendall_tau": float(tau.statistic),
        "p_value": float(tau.pvalue),
        "test_accuracy_of_cv_choice": test_accuracy[int(np.argmax(cv_accuracy))],
    }
    logme_total = sum(row["logme_time"] for row in rows)
    cv_total = sum(row["probe_cv_time"] for row in rows)
    return {
        "dataset": name,
        "source": source,
        "n_train": len(y),
        "n_test": len(y_test),
        "n_classes": len(np.unique(y)),
        "rows": rows,
        "agreement": agreement,
        "logme_time_total": logme_total,
        "probe_cv_time_total": cv_total,
        "probe_cv_over_logme": cv_total / logme_total if logme_total else None,
        "rank_backbones_time": rank_time,
        "wall_time": time.perf_counter() - start,
    }


# -- report -----------------------------------------------------------------
def environment():
    import scipy
    import sklearn
    import timm
    import torch

    import sktransfer

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory = None
    try:
        commit = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    try:  # uncommitted changes of the package the run used
        dirty = subprocess.run(
            ["git", "-C", str(HERE.parents[1]), "status", "--porcelain", "sktransfer"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
        dirty = sorted(line[3:] for line in dirty if line.strip())
    except (OSError, subprocess.CalledProcessError):
        dirty = None
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gib": round(memory, 1) if memory else None,
        "gpu": None,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "sktransfer": sktransfer.__version__,
        "git_commit": commit,
        "uncommitted_package_files": dirty,
        "load_average_at_start": list(os.getloadavg()),
    }


def markdown(report):
    config = report["config"]
    env = report["environment"]
    lines = [
        "# LogME vs linear probe: ranking backbones x layers",
        "",
        f"{'Smoke run (tiny sizes, not a result). ' if report['smoke'] else ''}"
        f"Written by `benchmarks/logme/run.py`"
        f"{' --smoke' if report['smoke'] else ''}; every number below was "
        f"measured in this one run.",
        "",
        f"- Candidates: {', '.join(config['backbones'])} (ImageNet weights, "
        f"offline) x layers {', '.join(map(str, config['layers']))} (None: pooled "
        f"pre-logits), average-pooled; images resized to "
        f"{config['image_size']} x {config['image_size']} px (each backbone's own normalisation: mean = std = 0.5, bicubic).",
        f"- Subsets: {config['n_per_class']} training images per class (seed "
        f"{config['seed']}) and {config['test_per_class']} test images per class, "
        f"disjoint.",
        "- LogME: `sktransfer.rank_backbones` on the training subset (one shared "
        "`FeatureCache`). Probe: `StandardScaler` + `LogisticRegression(max_iter="
        f"1000)` on the same cached features, {config['cv']}-fold stratified CV "
        "accuracy on the training subset, and test accuracy of the probe fitted "
        "on the whole subset. Times of LogME and of the probe with one BLAS thread.",
        f"- Machine: {env['cpu']}, {env['cpu_count']} CPU cores, "
        f"{env['memory_gib']} GiB, no GPU; shared with other jobs (load average "
        f"{env['load_average_at_start'][0]:.1f} at start, "
        f"{env['load_average_at_end'][0]:.1f} at end), so times are indicative. "
        f"Python {env['python']}, torch {env['torch']} ({env['torch_threads']} "
        f"threads), timm {env['timm']}, numpy {env['numpy']}, scipy "
        f"{env['scipy']}, scikit-learn {env['scikit-learn']}, sktransfer "
        f"{env['sktransfer']} (commit {str(env['git_commit'])[:7]}"
        f"{', plus uncommitted changes in ' if env['uncommitted_package_files'] else ''}"
        f"{', '.join(env['uncommitted_package_files'] or [])}).",
        f"- Total wall time: {report['wall_time']:.0f} s.",
        "",
        "## Agreement (Kendall's tau between LogME and probe accuracy)",
        "",
        "| data set | candidates | LogME vs CV acc.: tau (p) "
        "| LogME vs test acc.: tau (p) | reference, CV acc. vs test acc.: tau (p) "
        "| test acc. of LogME's choice | of CV's choice "
        "| best test acc. (candidate) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for ds in report["datasets"]:
        cv, test = ds["agreement"]["cv_accuracy"], ds["agreement"]["test_accuracy"]
        ref = ds["agreement"]["cv_vs_test"]
        lines.append(
            f"| {ds['dataset']} | {len(ds['rows'])} | {cv['kendall_tau']:.3f} "
            f"({cv['p_value']:.3g}) | {test['kendall_tau']:.3f} "
            f"({test['p_value']:.3g}) | {ref['kendall_tau']:.3f} "
            f"({ref['p_value']:.3g}) | {test['accuracy_of_logme_choice']:.3f} | "
            f"{ref['test_accuracy_of_cv_choice']:.3f} | "
            f"{test['best_accuracy']:.3f} ({test['best_candidate']}) |"
        )
    lines += [
        "",
        "## Cost (same cached features)",
        "",
        "| data set | LogME, all candidates (s) | probe CV, all candidates (s) "
        "| ratio | rank_backbones incl. extraction (s) | data set wall (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for ds in report["datasets"]:
        ratio = ds["probe_cv_over_logme"]
        lines.append(
            f"| {ds['dataset']} | {ds['logme_time_total']:.2f} | "
            f"{ds['probe_cv_time_total']:.2f} | "
            f"{f'{ratio:.1f}x' if ratio else '-'} | "
            f"{ds['rank_backbones_time']:.1f} | {ds['wall_time']:.1f} |"
        )
    for ds in report["datasets"]:
        lines += [
            "",
            f"## {ds['dataset']}: {ds['n_train']} training / {ds['n_test']} test "
            f"images, {ds['n_classes']} classes ({ds['source']})",
            "",
            "| backbone | layer | features | LogME | LogME rank | CV acc. (sd) "
            "| CV rank | test acc. | test rank | extraction s | LogME s "
            "| probe CV s |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in ds["rows"]:
            lines.append(
                f"| {row['backbone']} | {row['layer']} | {row['n_features']} | "
                f"{row['logme']:.4f} | {row['logme_rank']} | "
                f"{row['cv_accuracy']:.3f} ({row['cv_accuracy_sd']:.3f}) | "
                f"{row['cv_rank']} | {row['test_accuracy']:.3f} | "
                f"{row['test_rank']} | {row['extract_time']:.1f} | "
                f"{row['logme_time']:.3f} | {row['probe_cv_time']:.2f} |"
            )
    lines += [
        "",
        "Extraction s: fitting the extractor and transforming the training subset "
        "inside `rank_backbones` (features computed, then cached). LogME s: "
        "`logme_score` on those features. Probe CV s: "
        "`cross_val_score` of the probe on the same features.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: checks the script in a minute"
    )
    parser.add_argument(
        "--output", default=str(HERE), help="folder for results.json and results.md"
    )
    parser.add_argument(
        "--datasets", nargs="+", default=None, choices=("fashion_mnist", "digits")
    )
    args = parser.parse_args(argv)
    config = SMOKE if args.smoke else Config()
    if args.datasets:
        config.datasets = tuple(args.datasets)

    def log(message):
        print(message, flush=True)

    start = time.perf_counter()
    env = environment()
    log(f"{env['cpu']}, {env['cpu_count']} cores, load {env['load_average_at_start']}")
    datasets = [run_dataset(name, config, log) for name in config.datasets]
    env["load_average_at_end"] = list(os.getloadavg())
    report = {
        "smoke": args.smoke,
        "config": asdict(config),
        "environment": env,
        "datasets": datasets,
        "wall_time": time.perf_counter() - start,
    }
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    (output / "results.md").write_text(markdown(report))
    log(
        f"wrote {output / 'results.json'} and results.md in {report['wall_time']:.0f} s"
    )
    return report


if __name__ == "__main__":
    sys.exit(main() and 0)
