"""`sktransfer demo` and the benchmark script, end to end on tiny settings."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sktransfer.cli import main

pytest.importorskip("skimage")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]


def _demo_args(out, dataset="digits"):
    return [
        "demo",
        "--dataset",
        dataset,
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
        "--grid-backbones",
        "efficientnet_lite0,not_registered_backbone",
        "--grid-layers",
        "None,blocks.5",
        "--grid-size",
        "3",
        "--output",
        str(out),
        "--quiet",
    ]


def test_demo_writes_tables_json_and_plots(tmp_path, capsys):
    assert main(_demo_args(tmp_path)) == 0
    printed = capsys.readouterr().out
    assert "Data: scikit-learn digits" in printed
    assert "| labels/class | method |" in printed
    assert "## Which backbone? GridSearchCV over backbone x layer vs LogME" in printed
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
    grid = report["grid"]
    assert grid["backbones"] == ["efficientnet_lite0"]
    assert grid["skipped_backbones"] == ["not_registered_backbone"]
    assert grid["n_train"] == 30 and grid["n_test"] == 30
    candidates = grid["candidates"]
    assert {c["layer"] for c in candidates} == {None, "blocks.5"}
    assert [c["logme_rank"] for c in candidates] == [1, 2]  # sorted by LogME
    assert candidates[0]["logme"] >= candidates[1]["logme"]
    assert sorted(c["cv_rank"] for c in candidates) in ([1, 2], [1, 1])
    # Lite0's pooled head input has 1280 features, its blocks.5 192 channels.
    assert {c["layer"]: c["n_features"] for c in candidates} == {
        None: 1280,
        "blocks.5": 192,
    }
    for c in candidates:
        assert 0.0 <= c["test_accuracy"] <= 1.0 and 0.0 <= c["cv_accuracy_mean"] <= 1
    best = max(candidates, key=lambda c: c["logme"])
    assert grid["best_by_logme"] == {
        "backbone": best["backbone"],
        "layer": best["layer"],
    }
    for name in ("accuracy.png", "logme.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "results.md").read_text()
    assert "| 3 |" in md
    assert "| efficientnet_lite0 | blocks.5 | 192 |" in md
    assert "Not registered in this installation, so not compared: " in md
    assert "Wrote results.json, results.md, accuracy.png, logme.png" in printed


@pytest.fixture
def fresh_machine(tmp_path, monkeypatch):
    """No Debian package, an empty data home, and no network."""
    from sktransfer import datasets

    monkeypatch.setattr(datasets, "_DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path / "empty"))
    probes = []

    def unreachable(timeout=3.0):
        probes.append(timeout)
        return False, "test: no network"

    monkeypatch.setattr(datasets, "_download_reachable", unreachable)
    return probes


def _classical_only(args):
    return args + ["--methods", "pixels_logreg"]


def test_demo_uses_the_shipped_sample_on_a_fresh_machine(
    tmp_path, fresh_machine, capsys
):
    args = _classical_only(_demo_args(tmp_path / "out", dataset="auto"))
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "The full Fashion-MNIST is not installed here (no files in " in out
    assert str(tmp_path / "no-debian") in out
    assert "cannot be downloaded (test: no network)" in out
    assert "Data: the Fashion-MNIST sample shipped with sktransfer (4000 train" in out
    assert "apt-get install dataset-fashion-mnist" in out
    assert fresh_machine == [3.0]  # the probe ran, with a short deadline
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report["dataset"] == "fashion_mnist_sample"
    assert report["grid"] is None
    assert not (tmp_path / "out" / "logme.png").exists()
    assert {r["n_test"] for r in report["results"]} == {30}


def test_demo_download_no_does_not_probe(tmp_path, fresh_machine, capsys):
    args = _classical_only(_demo_args(tmp_path / "out", dataset="auto"))
    assert main(args + ["--download", "no"]) == 0
    assert fresh_machine == []
    assert "Data: the Fashion-MNIST sample shipped" in capsys.readouterr().out


def test_demo_full_fashion_mnist_missing_is_an_error(tmp_path, fresh_machine, capsys):
    args = _classical_only(_demo_args(tmp_path / "out", dataset="fashion_mnist"))
    assert main(args) == 1  # the message (with what to do), no traceback
    err = capsys.readouterr().err
    assert err.startswith("sktransfer demo: error: ") and "Traceback" not in err
    assert re.search(r"(?s)not found.*no download: test", err)


def test_demo_downloads_when_the_server_answers(tmp_path, fresh_machine, monkeypatch):
    """auto + a reachable server: the full data set is downloaded (here from
    file:// URLs, checksums of the fake files) and used."""
    import gzip
    import hashlib
    import struct

    import numpy as np

    from sktransfer import datasets

    served = tmp_path / "server"
    served.mkdir()
    rng = np.random.default_rng(0)
    for subset in ("train", "test"):
        images = rng.integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
        labels = np.arange(40, dtype=np.uint8) % 10
        for array, name in zip((images, labels), datasets._SUBSET_FILES[subset]):
            header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
            header += struct.pack(f">{array.ndim}I", *array.shape)
            (served / name).write_bytes(gzip.compress(header + array.tobytes()))
    for name in datasets._ALL_FILES:
        monkeypatch.setitem(datasets._URLS, name, (served / name).as_uri())
        digest = hashlib.sha256(gzip.decompress((served / name).read_bytes()))
        monkeypatch.setitem(datasets._CHECKSUMS, name, digest.hexdigest())
    monkeypatch.setattr(datasets, "_download_reachable", lambda timeout: (True, ""))
    args = _classical_only(_demo_args(tmp_path / "out", dataset="auto"))
    assert main(args) == 0
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report["dataset"] == "fashion_mnist"
    assert sorted(p.name for p in (tmp_path / "empty" / "fashion-mnist").iterdir()) == (
        sorted(datasets._ALL_FILES)
    )


def test_demo_smoke_option_runs_everything(tmp_path, capsys):
    assert main(["demo", "--smoke", "--quiet", "--output", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["config"]["sizes"] == [5] and report["config"]["image_size"] == 32
    assert len(report["grid"]["candidates"]) == 2
    assert {r["method"] for r in report["results"]} >= {"linear_probe", "fine_tune"}


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


def test_version_and_python_dash_m():
    import sktransfer

    out = subprocess.run(
        [sys.executable, "-m", "sktransfer", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert out.strip() == f"sktransfer {sktransfer.__version__}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backbone", "nope"], "argument --backbone: Unknown backbone 'nope'."),
        (["--image-size", "-5"], "argument --image-size: -5 is not >= 0"),
        (["--methods", "bogus"], "argument --methods: unknown method(s) ['bogus']"),
        (["--sizes", "0"], "argument --sizes: 0 is not >= 1"),
        (["--seeds", "x"], "argument --seeds: 'x' is not an integer"),
        (["--grid-size", "0"], "argument --grid-size: 0 is not >= 1"),
        (["--finetune-epochs", "0"], "argument --finetune-epochs: 0 is not >= 1"),
        (["--device", "gpu0"], "argument --device: device must be 'auto', 'cpu'"),
        (["--device", "cuda:7"], "argument --device: device 'cuda:7' is not available"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("sktransfer demo: error: ") and message in err


def test_errors_while_running_exit_1_with_one_line(tmp_path, capsys, monkeypatch):
    import sktransfer._benchmark as benchmark

    def unavailable(*args, **kwargs):
        raise OSError("Cannot download the weights (offline)")

    monkeypatch.setattr(benchmark, "run_benchmark", unavailable)
    assert main(_demo_args(tmp_path)) == 1
    err = capsys.readouterr().err
    assert err == "sktransfer demo: error: Cannot download the weights (offline)\n"


# -- sktransfer extract ------------------------------------------------------------
def test_extract_writes_parquet_of_a_folder(tmp_path, capsys):
    pq = pytest.importorskip("pyarrow.parquet")
    from PIL import Image

    (tmp_path / "images" / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = ["a.png", "b.jpg", "sub/c.png"]
    for name in names:
        pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "images" / name)
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    out = tmp_path / "features.parquet"
    argv = ["extract", str(tmp_path / "images"), "-o", str(out), "--batch-size", "2"]
    assert main(argv + ["--device", "cpu", "--quiet"]) == 0
    assert f"Wrote 3 rows to {out}" in capsys.readouterr().out
    table = pq.read_table(out)
    assert table.shape == (3, 1 + 1280)  # path + Lite0's pooled features
    assert [Path(p).name for p in table.column("path").to_pylist()] == [
        "a.png",
        "b.jpg",
        "c.png",
    ]
    assert pq.ParquetFile(out).num_row_groups == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch-size", "0"], "argument --batch-size: 0 is not >= 1"),
        (["--engine", "spark"], "argument --engine: invalid choice: 'spark'"),
        (["--backbone", "resnet_18"], "argument --backbone:"),
    ],
)
def test_extract_bad_arguments_exit_2_in_one_line(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(["extract", str(tmp_path)] + args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_extract_missing_folder_and_empty_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["extract", str(tmp_path / "nope")])
    assert exc.value.code == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["extract", str(tmp_path), "-o", str(tmp_path / "o.parquet")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sktransfer extract: error: no image file under")


def test_demo_device_reaches_the_benchmark_config(monkeypatch, tmp_path):
    from sktransfer import _benchmark

    seen = {}

    def fake_run(config, log, progress):
        seen["device"] = config.device
        raise SystemExit(0)

    monkeypatch.setattr(_benchmark, "run_benchmark", fake_run)
    with pytest.raises(SystemExit):
        main(["demo", "--device", "cpu", "--output", str(tmp_path)])
    assert seen["device"] == "cpu"
