"""The benchmark scripts run (no timing or accuracy is checked: see benchmarks/)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_speed_benchmark_smoke_writes_json_and_markdown(tmp_path):
    script = ROOT / "benchmarks" / "speed" / "run.py"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [sys.executable, str(script), "--smoke", "--output", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=600,
        env=env,
    )
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["smoke"] is True
    for section in (
        "throughput",
        "cache_grid",
        "grid_limit",
        "linear_probe",
        "finetune_epoch",
        "memory",
    ):
        assert section in report
    contenders = {row["contender"] for row in report["throughput"]["rows"]}
    assert {"forward pass only", "sktransfer transform"} <= contenders
    assert [row["images"] for row in report["memory"]["rows"]] == [40, 80]
    assert (tmp_path / "results.md").read_text().startswith("# Speed benchmarks")


def test_logme_benchmark_smoke_writes_json_and_markdown(tmp_path):
    # Digits only: Fashion-MNIST needs the Debian dataset-fashion-mnist package.
    script = ROOT / "benchmarks" / "logme" / "run.py"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [
            sys.executable,
            str(script),
            "--smoke",
            "--datasets",
            "digits",
            "--output",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        timeout=600,
        env=env,
    )
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["smoke"] is True
    (digits,) = report["datasets"]
    assert len(digits["rows"]) == 2
    assert [row["logme_rank"] for row in digits["rows"]] == [1, 2]
    assert set(digits["agreement"]) == {"cv_accuracy", "test_accuracy", "cv_vs_test"}
    assert (tmp_path / "results.md").read_text().startswith("# LogME vs linear probe")


def test_finetune_recipe_benchmark_smoke_writes_json_and_markdown(tmp_path):
    script = ROOT / "benchmarks" / "finetune_recipe" / "run.py"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [sys.executable, str(script), "--smoke", "--output", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=600,
        env=env,
    )
    report = json.loads((tmp_path / "results.json").read_text())
    (row,) = report["rows"]
    assert row["dataset"] == "digits" and row["n_per_class"] == 3
    for key in ("probe_c1", "probe_cv", "finetune"):
        assert 0 <= row[key] <= 1
    table = (tmp_path / "results.md").read_text()
    assert table.startswith("# FineTunedClassifier defaults vs the linear probe")


def test_multilabel_benchmark_smoke_writes_json_and_markdown(tmp_path):
    # Synthetic items: the full run needs the Debian dataset-fashion-mnist package.
    script = ROOT / "benchmarks" / "multilabel" / "run.py"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, str(script), "--smoke", "--output", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=600,
        env=env,
    )
    report = json.loads((tmp_path / "results.json").read_text())
    (row,) = report["rows"]
    for method in ("probe", "finetune"):
        assert 0 <= row[method]["f1_samples"] <= 1
        assert 0 <= row[method]["hamming_loss"] <= 1
    assert (tmp_path / "results.md").read_text().startswith("# Multi-label")


def test_tta_benchmark_smoke_writes_json_and_markdown(tmp_path):
    script = ROOT / "benchmarks" / "tta" / "run.py"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, str(script), "--smoke", "--output", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=600,
        env=env,
    )
    report = json.loads((tmp_path / "results.json").read_text())
    (row,) = report["rows"]
    for key in ("tta=None", "tta=flip", "tta=6", "tta=10"):
        assert 0 <= row[key] <= 1
    assert (tmp_path / "results.md").read_text().startswith("# Test-time augmentation")


def test_finetune_recipe_grid_smoke_writes_rows_and_counts_cache_hits(tmp_path):
    script = ROOT / "benchmarks" / "finetune_recipe" / "grid.py"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    args = [sys.executable, str(script), "--smoke", "--output", str(tmp_path)]
    args += ["--cache", str(tmp_path / "cache")]
    subprocess.run(args, check=True, capture_output=True, timeout=600, env=env)
    (row,) = json.loads((tmp_path / "grid.json").read_text())["rows"]
    assert row["dataset"] == "digits" and row["n_per_class"] == 3
    assert 0 <= row["grid_best"] <= 1
    assert row["n_candidates"] == len(row["candidates"]) == 4
    # 30 training images x 2 layers computed once, read back by the other
    # folds and grid points.
    assert row["search_cache_misses"] >= 60
    assert row["search_cache_hits"] > row["search_cache_misses"]


def test_benchmark_summary_matches_the_committed_json(tmp_path):
    script = ROOT / "benchmarks" / "results" / "summary.py"
    out = tmp_path / "README.md"
    subprocess.run(
        [sys.executable, str(script), "--output", str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    committed = ROOT / "benchmarks" / "results" / "README.md"
    assert out.read_text() == committed.read_text()
