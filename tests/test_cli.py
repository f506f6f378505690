"""`sktransfer demo` and the benchmark script, end to end on tiny settings."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sktransfer.cli import main

pytest.importorskip("skimage")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]


def _demo_args(out):
    return [
        "demo",
        "--dataset",
        "digits",
        "--sizes",
        "3",
        "--seeds",
        "0",
        "--test-size",
        "30",
        "--image-size",
        "32",
        "--finetune-sizes",
        "3",
        "--finetune-epochs",
        "1",
        "--output",
        str(out),
        "--quiet",
    ]


def test_demo_writes_table_json_and_plot(tmp_path, capsys):
    assert main(_demo_args(tmp_path)) == 0
    printed = capsys.readouterr().out
    assert "Data: scikit-learn digits" in printed
    assert "| labels/class | method |" in printed
    report = json.loads((tmp_path / "results.json").read_text())
    methods = {r["method"] for r in report["results"]}
    assert methods == {
        "pixels_logreg",
        "hog_linear_svm",
        "pixels_rbf_svc",
        "linear_probe",
        "fine_tune",
    }
    for r in report["results"]:
        assert r["n_train"] == 30 and r["n_test"] == 30
        assert 0.0 <= r["accuracy"] <= 1.0
    assert report["environment"]["versions"]["sktransfer"]
    png = (tmp_path / "accuracy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 3 |" in (tmp_path / "results.md").read_text()


def test_demo_falls_back_to_digits_without_fashion_mnist(tmp_path, monkeypatch, capsys):
    from sktransfer import datasets

    monkeypatch.setattr(datasets, "_DEBIAN_DIR", tmp_path / "nowhere")
    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path / "empty"))
    args = _demo_args(tmp_path / "out")
    args[args.index("--dataset") + 1] = "auto"
    args += ["--methods", "pixels_logreg"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Fashion-MNIST is not available here" in out
    assert "apt-get install dataset-fashion-mnist" in out
    assert (
        json.loads((tmp_path / "out" / "results.json").read_text())["dataset"]
        == "digits"
    )


def test_backbones_command_lists_names(capsys):
    assert main(["backbones"]) == 0
    names = capsys.readouterr().out.split()
    assert "resnet18" in names and "efficientnet_lite0" in names


def test_benchmark_script_smoke(tmp_path):
    script = ROOT / "benchmarks" / "transfer_vs_classical.py"
    subprocess.run(
        [sys.executable, str(script), "--smoke", "--output", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["dataset"] == "digits" and report["results"]
