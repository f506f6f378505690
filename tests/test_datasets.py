import gzip
import hashlib
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from sktransfer import datasets
from sktransfer.datasets import (
    fashion_mnist_published_results,
    labels_per_class_split,
    load_dataset,
    load_digits_images,
    load_fashion_mnist,
    load_fashion_mnist_sample,
    subsample_per_class,
)

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_README = Path("/usr/share/doc/dataset-fashion-mnist/README.md.gz")


def idx_bytes(array, type_code=0x08):
    """Serialize an array in IDX format (big-endian)."""
    dtype = datasets._IDX_DTYPES[type_code]
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.asarray(array, dtype=dtype).tobytes()


def write_fake_fashion(folder, subset="train", n=20, seed=0):
    """Write a tiny gzip'd Fashion-MNIST subset; return (images, labels)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10
    image_name, label_name = datasets._SUBSET_FILES[subset]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / image_name).write_bytes(gzip.compress(idx_bytes(images)))
    (folder / label_name).write_bytes(gzip.compress(idx_bytes(labels)))
    return images, labels


@pytest.fixture
def no_debian(monkeypatch, tmp_path):
    """Pretend the Debian package is not installed."""
    monkeypatch.setattr(datasets, "_DEBIAN_DIR", tmp_path / "no-debian")


# -- IDX parsing ------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_uint8_round_trip(tmp_path, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(array)
    path = tmp_path / "a.idx"
    path.write_bytes(gzip.compress(data) if compress else data)
    result = datasets._read_idx(path)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, array)
    result[0, 0, 0] = 7  # a writable copy, not a view of the file's bytes


def test_read_idx_big_endian_types(tmp_path):
    ints = np.array([[1, -2], [70000, -70000]], dtype=np.int32)
    floats = np.array([0.5, -1.25, 3.0])
    (tmp_path / "i").write_bytes(idx_bytes(ints, 0x0C))
    (tmp_path / "f").write_bytes(idx_bytes(floats, 0x0E))
    np.testing.assert_array_equal(datasets._read_idx(tmp_path / "i"), ints)
    np.testing.assert_array_equal(datasets._read_idx(tmp_path / "f"), floats)
    assert datasets._read_idx(tmp_path / "i").dtype.isnative


def test_read_idx_bad_magic(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(b"\x12\x34\x08\x01" + b"\x00" * 8))
    expected = r"bad\.gz is not an IDX file: bad magic number '12340801'"
    with pytest.raises(ValueError, match=expected):
        datasets._read_idx(path)


def test_read_idx_unknown_type_code(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x00\x00\x42\x01" + struct.pack(">I", 0))
    with pytest.raises(ValueError, match="bad magic number '00004201'"):
        datasets._read_idx(path)


def test_read_idx_wrong_size(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(idx_bytes(np.zeros((3, 2), np.uint8))[:-1])
    expected = (
        r"corrupt IDX file: a \(3, 2\) array of uint8 needs 18 bytes, "
        "the file has 17"
    )
    with pytest.raises(ValueError, match=expected):
        datasets._read_idx(path)


def test_read_idx_truncated_header(tmp_path):
    path = tmp_path / "hdr"
    path.write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 5)
    expected = "truncated IDX file: its header announces 3 dimensions"
    with pytest.raises(ValueError, match=expected):
        datasets._read_idx(path)


def test_read_idx_corrupt_gzip(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(100, np.uint8)))[:-10])
    with pytest.raises(ValueError, match=r"broken\.gz is not a valid gzip file"):
        datasets._read_idx(path)


# -- load_fashion_mnist: lookup ---------------------------------------------


@pytest.mark.parametrize("subset", ["train", "test"])
def test_load_from_data_home(tmp_path, no_debian, subset):
    images, labels = write_fake_fashion(tmp_path / "fm", subset=subset)
    data = load_fashion_mnist(subset=subset, data_home=tmp_path / "fm")
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_array_equal(data.target, labels)
    assert data.images.dtype == np.uint8
    assert data.target.dtype == np.int64
    assert data.target_names == datasets.FASHION_MNIST_CLASSES
    assert data.target_names[0] == "T-shirt/top"
    assert data.target_names[9] == "Ankle boot"
    assert data.source == str(tmp_path / "fm")
    assert "Fashion-MNIST" in data.DESCR
    X, y = load_fashion_mnist(subset=subset, data_home=tmp_path / "fm", return_X_y=True)
    np.testing.assert_array_equal(X, images)
    np.testing.assert_array_equal(y, labels)


def test_env_var_sets_data_home(tmp_path, monkeypatch, no_debian):
    images, _ = write_fake_fashion(tmp_path / "root" / "fashion-mnist")
    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path / "root"))
    data = load_fashion_mnist()
    assert data.source == str(tmp_path / "root" / "fashion-mnist")
    np.testing.assert_array_equal(data.images, images)


def test_default_data_home_is_sklearn_data_home(tmp_path, monkeypatch, no_debian):
    monkeypatch.delenv("SKTRANSFER_DATA", raising=False)
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "skl"))
    write_fake_fashion(tmp_path / "skl" / "fashion-mnist")
    assert load_fashion_mnist().source == str(tmp_path / "skl" / "fashion-mnist")


def test_data_home_argument_beats_env_var(tmp_path, monkeypatch, no_debian):
    write_fake_fashion(tmp_path / "root" / "fashion-mnist", seed=1)
    images, _ = write_fake_fashion(tmp_path / "arg", seed=2)
    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path / "root"))
    data = load_fashion_mnist(data_home=tmp_path / "arg")
    assert data.source == str(tmp_path / "arg")
    np.testing.assert_array_equal(data.images, images)


def test_debian_folder_is_second(tmp_path, monkeypatch):
    images, _ = write_fake_fashion(tmp_path / "debian", subset="test")
    monkeypatch.setattr(datasets, "_DEBIAN_DIR", tmp_path / "debian")

    def no_fetch(name, folder):
        raise AssertionError("nothing should be downloaded")

    monkeypatch.setattr(datasets, "_fetch_file", no_fetch)
    data = load_fashion_mnist(
        subset="test", data_home=tmp_path / "empty", download=True
    )
    assert data.source == str(tmp_path / "debian")
    np.testing.assert_array_equal(data.images, images)
    assert not (tmp_path / "empty").exists()


def test_missing_data_message(tmp_path, no_debian):
    with pytest.raises(FileNotFoundError) as excinfo:
        load_fashion_mnist(subset="test", data_home=tmp_path / "home")
    message = str(excinfo.value)
    assert "Fashion-MNIST ('test' subset) not found" in message
    assert "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz" in message
    assert f"  - {tmp_path / 'home'}\n" in message
    assert f"  - {tmp_path / 'no-debian'}\n" in message
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert "put the 4 .gz files (train-images-idx3-ubyte.gz" in message
    assert "load_fashion_mnist(download=True)" in message
    assert not (tmp_path / "home").exists()


def test_only_one_subset_present_is_not_found(tmp_path, no_debian):
    write_fake_fashion(tmp_path, subset="train")
    with pytest.raises(FileNotFoundError, match=r"\('test' subset\) not found"):
        load_fashion_mnist(subset="test", data_home=tmp_path)


def test_bad_subset():
    expected = r"subset must be 'train' or 'test', got 'valid'"
    with pytest.raises(ValueError, match=expected):
        load_fashion_mnist(subset="valid")


def test_mismatched_files(tmp_path, no_debian):
    write_fake_fashion(tmp_path, n=20)
    labels = np.zeros(5, np.uint8)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(labels)))
    with pytest.raises(ValueError, match=r"holds \(5,\) labels for 20 images"):
        load_fashion_mnist(data_home=tmp_path)


def test_wrong_image_shape(tmp_path, no_debian):
    write_fake_fashion(tmp_path)
    images = np.zeros((20, 8, 8), np.uint8)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(images)))
    expected = r"expected uint8 of shape \(n, 28, 28\), got uint8 of shape \(20, 8, 8\)"
    with pytest.raises(ValueError, match=expected):
        load_fashion_mnist(data_home=tmp_path)


# -- load_fashion_mnist: download -------------------------------------------


@pytest.fixture
def fake_server(tmp_path, monkeypatch):
    """Serve a fake 'test' subset from file:// URLs with matching checksums."""
    served = tmp_path / "server"
    images, labels = write_fake_fashion(served, subset="test", n=30)
    for name in datasets._SUBSET_FILES["test"]:
        monkeypatch.setitem(datasets._URLS, name, (served / name).as_uri())
        digest = hashlib.sha256(gzip.decompress((served / name).read_bytes()))
        monkeypatch.setitem(datasets._CHECKSUMS, name, digest.hexdigest())
    return images, labels


def test_download_good_checksum(tmp_path, no_debian, fake_server):
    images, labels = fake_server
    home = tmp_path / "home" / "nested"
    data = load_fashion_mnist(subset="test", data_home=home, download=True)
    assert data.source == str(home)
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_array_equal(data.target, labels)
    expected = sorted(datasets._SUBSET_FILES["test"])
    assert sorted(p.name for p in home.iterdir()) == expected


def test_download_skips_files_already_present(
    tmp_path, no_debian, fake_server, monkeypatch
):
    home = tmp_path / "home"
    load_fashion_mnist(subset="test", data_home=home, download=True)
    (home / "t10k-labels-idx1-ubyte.gz").unlink()
    fetched = []
    real_fetch = datasets._fetch_file

    def recording_fetch(name, folder):
        fetched.append(name)
        real_fetch(name, folder)

    monkeypatch.setattr(datasets, "_fetch_file", recording_fetch)
    load_fashion_mnist(subset="test", data_home=home, download=True)
    assert fetched == ["t10k-labels-idx1-ubyte.gz"]


def test_download_bad_checksum_deletes_partial(
    tmp_path, no_debian, fake_server, monkeypatch
):
    monkeypatch.setitem(datasets._CHECKSUMS, "t10k-images-idx3-ubyte.gz", "0" * 64)
    home = tmp_path / "home"
    expected = (
        r"Checksum mismatch for t10k-images-idx3-ubyte\.gz downloaded from "
        r"file://.*expected 0{64}\. The partial file was deleted"
    )
    with pytest.raises(OSError, match=expected):
        load_fashion_mnist(subset="test", data_home=home, download=True)
    assert list(home.iterdir()) == []


def test_download_not_gzip(tmp_path, no_debian, fake_server, monkeypatch):
    html = tmp_path / "error.html"
    html.write_text("<html>Access denied</html>")
    monkeypatch.setitem(datasets._URLS, "t10k-images-idx3-ubyte.gz", html.as_uri())
    home = tmp_path / "home"
    with pytest.raises(OSError, match="decompressed content is <not a gzip file"):
        load_fashion_mnist(subset="test", data_home=home, download=True)
    assert list(home.iterdir()) == []


def test_download_unreachable(tmp_path, no_debian, monkeypatch):
    missing = (tmp_path / "nowhere.gz").as_uri()
    monkeypatch.setitem(datasets._URLS, "train-images-idx3-ubyte.gz", missing)
    home = tmp_path / "home"
    expected = (
        r"Could not download file://.*nowhere\.gz.*"
        r"put train-images-idx3-ubyte\.gz in"
    )
    with pytest.raises(OSError, match=expected):
        load_fashion_mnist(data_home=home, download=True)
    assert list(home.iterdir()) == []


def test_checksum_table_covers_urls():
    assert set(datasets._URLS) == set(datasets._CHECKSUMS) == set(datasets._ALL_FILES)
    assert all(re.fullmatch("[0-9a-f]{64}", h) for h in datasets._CHECKSUMS.values())
    for url in datasets._URLS.values():
        assert url.startswith("http://fashion-mnist.s3-website")


# -- can a download succeed? (the demo asks before trying) ------------------


def _serve_at(monkeypatch, port):
    url = f"http://127.0.0.1:{port}/t10k-images-idx3-ubyte.gz"
    monkeypatch.setattr(datasets, "_URLS", {"t10k-images-idx3-ubyte.gz": url})


def test_download_reachable_when_the_server_accepts(monkeypatch):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        _serve_at(monkeypatch, server.getsockname()[1])
        assert datasets._download_reachable(timeout=10.0) == (True, "")


def test_download_unreachable_when_the_port_is_closed(monkeypatch):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    _serve_at(monkeypatch, port)  # closed now: connection refused
    reachable, reason = datasets._download_reachable(timeout=10.0)
    assert not reachable
    assert reason.startswith(f"127.0.0.1:{port} unreachable (")


def test_download_probe_gives_up_at_its_deadline(monkeypatch):
    """A lookup or connection that never returns (no DNS, dropped packets)
    does not hang the caller: the probe answers at its deadline."""
    import threading

    release = threading.Event()

    def blocked(address, timeout=None):
        release.wait()  # set at teardown; without the deadline, a hang
        raise OSError("released")

    monkeypatch.setattr(datasets.socket, "create_connection", blocked)
    try:
        reachable, reason = datasets._download_reachable(timeout=0.2)
    finally:
        release.set()
    assert not reachable
    assert reason == (
        "fashion-mnist.s3-website.eu-central-1.amazonaws.com:80 did not answer "
        "within 0.2 s"
    )


# -- the real Debian files --------------------------------------------------


needs_debian = pytest.mark.skipif(
    not DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is not installed"
)


@needs_debian
@pytest.mark.parametrize("subset, n", [("train", 60000), ("test", 10000)])
def test_real_debian_files(tmp_path, subset, n):
    data = load_fashion_mnist(subset=subset, data_home=tmp_path)
    assert data.source == str(DEBIAN_DIR)
    assert data.images.shape == (n, 28, 28)
    assert data.images.dtype == np.uint8
    assert data.target.shape == (n,)
    np.testing.assert_array_equal(np.bincount(data.target), [n // 10] * 10)
    assert data.images.max() == 255


@needs_debian
def test_real_debian_files_match_checksums():
    for name, expected in datasets._CHECKSUMS.items():
        assert datasets._sha256_of_gzip_content(DEBIAN_DIR / name) == expected, name


# -- digits -----------------------------------------------------------------


def test_load_digits_images():
    from sklearn.datasets import load_digits

    digits = load_digits()
    data = load_digits_images()
    assert data.images.shape == (1797, 8, 8)
    assert data.images.dtype == np.uint8
    assert data.source == "sklearn"
    assert data.target_names == [str(i) for i in range(10)]
    assert data.target.dtype == np.int64
    np.testing.assert_array_equal(data.target, digits.target)
    # 0 -> 0, 8 -> round(127.5) = 128, 16 -> 255; the mapping is monotone.
    pairs = set(zip(digits.images.ravel().tolist(), data.images.ravel().tolist()))
    mapping = dict(pairs)
    assert len(mapping) == len(pairs)  # one output per input level
    assert mapping[0.0] == 0 and mapping[16.0] == 255 and mapping[1.0] == 16
    for level, value in mapping.items():
        assert value == int(np.floor(level * 255 / 16 + 0.5))
    X, y = load_digits_images(return_X_y=True)
    np.testing.assert_array_equal(X, data.images)
    np.testing.assert_array_equal(y, data.target)


# -- load_dataset -----------------------------------------------------------


def test_load_dataset_dispatch(tmp_path, no_debian):
    X, _ = load_dataset("digits", return_X_y=True)
    assert X.shape == (1797, 8, 8)
    images, _ = write_fake_fashion(tmp_path)
    data = load_dataset("fashion_mnist", data_home=tmp_path)
    np.testing.assert_array_equal(data.images, images)


def test_load_dataset_unknown_name():
    expected = (
        r"unknown dataset 'fashion-mnist'\. Did you mean 'fashion_mnist' or "
        r"'fashion_mnist_sample'\? Available: 'digits', 'fashion_mnist', "
        r"'fashion_mnist_sample'\."
    )
    with pytest.raises(ValueError, match=expected):
        load_dataset("fashion-mnist")
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar10'\. Available:"):
        load_dataset("cifar10")


# -- the shipped Fashion-MNIST sample ----------------------------------------

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("subset, per_class", [("train", 400), ("test", 200)])
def test_sample_shapes_dtypes_and_balance(subset, per_class, no_debian):
    data = load_fashion_mnist_sample(subset=subset)
    n = 10 * per_class
    assert data.images.shape == (n, 28, 28) and data.images.dtype == np.uint8
    assert data.target.shape == (n,) and data.target.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(data.target), [per_class] * 10)
    assert data.target_names == datasets.FASHION_MNIST_CLASSES
    official_size = {"train": 60000, "test": 10000}[subset]
    assert data.index.dtype == np.int64
    assert np.all(np.diff(data.index) > 0)  # sorted, no repeats: official order
    assert 0 <= data.index[0] and data.index[-1] < official_size
    assert data.source.endswith("fashion_mnist_sample.npz")
    assert f"{per_class} images per class of the official {subset!r}" in data.DESCR
    # Real photographs of articles, not noise: full 0..255 range, dark background.
    assert data.images.max() == 255 and np.median(data.images) == 0
    X, y = load_fashion_mnist_sample(subset=subset, return_X_y=True)
    np.testing.assert_array_equal(X, data.images)
    np.testing.assert_array_equal(y, data.target)


def test_sample_is_deterministic_and_split_is_official():
    first, again = load_fashion_mnist_sample(), load_fashion_mnist_sample()
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.index, again.index)
    test = load_fashion_mnist_sample(subset="test")
    # Train and test come from different official files; no image repeats
    # across them (Fashion-MNIST has no exact train/test duplicates here).
    train_rows = {img.tobytes() for img in first.images}
    assert not any(img.tobytes() in train_rows for img in test.images)


def test_sample_via_load_dataset():
    images, target = load_dataset(
        "fashion_mnist_sample", subset="test", return_X_y=True
    )
    assert images.shape == (2000, 28, 28) and target.shape == (2000,)


def test_sample_bad_subset():
    with pytest.raises(
        ValueError,
        match=r"load_fashion_mnist_sample: subset must be 'train' or 'test', got 'all'",
    ):
        load_fashion_mnist_sample(subset="all")


def test_sample_checksum_is_checked(monkeypatch):
    monkeypatch.setattr(datasets, "_SAMPLE_DIGEST", "0" * 64)
    expected = (
        r"load_fashion_mnist_sample: .*fashion_mnist_sample\.npz is not the sample "
        r"this version of sktransfer shipped \(its content SHA-256 is [0-9a-f]{64}, "
        r"expected 0{64}\)\. Reinstall sktransfer"
    )
    with pytest.raises(ValueError, match=expected):
        load_fashion_mnist_sample()


def test_sample_licence_and_attribution_ship_beside_it():
    import importlib.resources

    folder = importlib.resources.files("sktransfer").joinpath("data")
    licence = folder.joinpath("LICENSE").read_text(encoding="utf-8")
    assert "The MIT License" in licence and "Zalando SE" in licence
    readme = folder.joinpath("README.md").read_text(encoding="utf-8")
    for needed in ("Han Xiao", "Kashif Rasul", "Roland Vollgraf", "arXiv:1708.07747"):
        assert needed in readme
    assert datasets._SAMPLE_DIGEST in readme


def test_sample_loads_from_a_wheel(tmp_path):
    """Built into a wheel and imported from the zip (no source tree, no files
    on disk), the sample is found through importlib.resources."""
    import shutil
    import subprocess
    import sys
    import zipfile

    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "sktransfer",
        src / "sktransfer",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("sktransfer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("fashion_mnist_sample.npz", "LICENSE", "README.md"):
        assert f"sktransfer/data/{name}" in names
    code = (
        "import sktransfer, sktransfer.datasets as d; "
        f"assert sktransfer.__file__.startswith({str(wheel)!r}), sktransfer.__file__; "
        "b = d.load_fashion_mnist_sample(subset='test'); "
        "print(b.images.shape, b.source)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,  # not the source tree: python -c puts the cwd first
        check=True,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(wheel)},
        timeout=120,
    ).stdout
    assert out.startswith("(2000, 28, 28) ") and str(wheel) in out


@needs_debian
@pytest.mark.parametrize("subset", ["train", "test"])
def test_sample_is_a_subset_of_the_official_files(subset):
    official = load_fashion_mnist(subset=subset)
    sample = load_fashion_mnist_sample(subset=subset)
    np.testing.assert_array_equal(sample.images, official.images[sample.index])
    np.testing.assert_array_equal(sample.target, official.target[sample.index])


@needs_debian
def test_sample_builder_reproduces_the_shipped_sample(tmp_path):
    import importlib.util

    path = ROOT / "benchmarks" / "make_fashion_mnist_sample.py"
    spec = importlib.util.spec_from_file_location("make_fashion_mnist_sample", path)
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    arrays = builder.sample_arrays()
    assert datasets._sample_digest(arrays) == datasets._SAMPLE_DIGEST
    builder.write_npz(tmp_path / "s.npz", arrays)
    shipped = datasets._sample_resource().read_bytes()
    assert (tmp_path / "s.npz").read_bytes() == shipped


# -- labels_per_class_split / subsample_per_class ---------------------------


def test_labels_per_class_split_counts():
    y = np.repeat(["cat", "dog", "emu"], [10, 7, 5])
    train_idx, rest_idx = labels_per_class_split(y, 3, random_state=0)
    assert train_idx.dtype == np.int64 and rest_idx.dtype == np.int64
    labels, counts = np.unique(y[train_idx], return_counts=True)
    assert labels.tolist() == ["cat", "dog", "emu"]
    assert counts.tolist() == [3, 3, 3]
    assert np.all(np.diff(train_idx) > 0) and np.all(np.diff(rest_idx) > 0)
    everything = np.sort(np.concatenate([train_idx, rest_idx]))
    np.testing.assert_array_equal(everything, np.arange(len(y)))
    _, rest_counts = np.unique(y[rest_idx], return_counts=True)
    assert rest_counts.tolist() == [7, 4, 2]


def test_labels_per_class_split_all_samples_of_smallest_class():
    y = [0, 0, 1, 1, 1]
    train_idx, rest_idx = labels_per_class_split(y, 2, random_state=0)
    assert {0, 1} <= set(train_idx.tolist())
    assert len(rest_idx) == 1 and y[rest_idx[0]] == 1


def test_labels_per_class_split_seeds():
    y = np.arange(1000) % 4
    first = labels_per_class_split(y, 5, random_state=42)
    again = labels_per_class_split(y, 5, random_state=42)
    other = labels_per_class_split(y, 5, random_state=43)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])
    rng = np.random.RandomState(42)
    from_rng = labels_per_class_split(y, 5, random_state=rng)
    np.testing.assert_array_equal(from_rng[0], first[0])


def test_labels_per_class_split_too_few_samples():
    y = ["a"] * 5 + ["b"] * 2
    expected = r"Class 'b' has 2 samples, fewer than n_per_class=3"
    with pytest.raises(ValueError, match=expected):
        labels_per_class_split(y, 3)


@pytest.mark.parametrize("bad", [2.0, "2", True, None])
def test_labels_per_class_split_n_type(bad):
    with pytest.raises(TypeError, match=r"n_per_class must be a positive int, got \w+"):
        labels_per_class_split([0, 1, 0, 1], bad)


@pytest.mark.parametrize("bad", [0, -1])
def test_labels_per_class_split_n_value(bad):
    expected = f"n_per_class must be a positive int, got {bad}"
    with pytest.raises(ValueError, match=expected):
        labels_per_class_split([0, 1, 0, 1], bad)


def test_labels_per_class_split_numpy_int_and_bad_y():
    train_idx, _ = labels_per_class_split([0, 1, 0, 1], np.int64(1), random_state=0)
    assert len(train_idx) == 2
    expected = r"non-empty 1-D array of labels, got shape \(2, 2\)"
    with pytest.raises(ValueError, match=expected):
        labels_per_class_split([[0, 1], [0, 1]], 1)
    with pytest.raises(ValueError, match=r"got shape \(0,\)"):
        labels_per_class_split([], 1)


def test_subsample_per_class_array_and_list():
    X = np.arange(40).reshape(20, 2)
    y = np.arange(20) % 4
    X_sub, y_sub = subsample_per_class(X, y, 2, random_state=0)
    idx, _ = labels_per_class_split(y, 2, random_state=0)
    np.testing.assert_array_equal(X_sub, X[idx])
    np.testing.assert_array_equal(y_sub, y[idx])
    paths = [f"img{i}.png" for i in range(20)]
    paths_sub, y_list_sub = subsample_per_class(paths, y.tolist(), 2, random_state=0)
    assert isinstance(paths_sub, list) and isinstance(y_list_sub, list)
    assert paths_sub == [paths[i] for i in idx]
    assert y_list_sub == y[idx].tolist()


def test_subsample_per_class_inconsistent_lengths():
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        subsample_per_class([1, 2, 3], [0, 1], 1)


# -- published results ------------------------------------------------------


def _by_model(results):
    return {r["model"]: r["accuracy"] for r in results}


def test_published_results_fallback_table(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "_DEBIAN_README", tmp_path / "absent.md.gz")
    results = fashion_mnist_published_results()
    assert _by_model(results)["HOG+SVM"] == 0.926
    assert _by_model(results)["ResNet18"] == 0.949
    assert len(results) == 37
    keys = {"model", "preprocessing", "accuracy", "source"}
    assert all(set(r) == keys for r in results)
    assert all(0 < r["accuracy"] <= 1 for r in results)
    assert "stored in sktransfer.datasets" in results[0]["source"]


def test_published_results_read_from_readme(tmp_path, monkeypatch):
    readme = tmp_path / "README.md.gz"
    text = (
        "# Title\n\n"
        "| Classifier | Preprocessing | Fashion test accuracy | MNIST test accuracy |\n"
        "| --- | --- | --- | --- |\n"
        "|Net A | None | 0.5 | - |\n"
        "|Net B| Flips|  0.75| 0.9 | \n"
        "\nafter the table | 0.1 |\n"
    )
    readme.write_bytes(gzip.compress(text.encode()))
    monkeypatch.setattr(datasets, "_DEBIAN_README", readme)
    results = fashion_mnist_published_results()
    assert [(r["model"], r["preprocessing"], r["accuracy"]) for r in results] == [
        ("Net A", "None", 0.5),
        ("Net B", "Flips", 0.75),
    ]
    assert results[0]["source"].startswith(str(readme))


def test_published_results_readme_without_table(tmp_path, monkeypatch):
    readme = tmp_path / "README.md.gz"
    readme.write_bytes(gzip.compress(b"# nothing here\n"))
    monkeypatch.setattr(datasets, "_DEBIAN_README", readme)
    with pytest.raises(ValueError, match=r"README\.md\.gz has no benchmark table"):
        fashion_mnist_published_results()


@pytest.mark.skipif(
    not DEBIAN_README.is_file(), reason="dataset-fashion-mnist is not installed"
)
def test_published_results_real_readme_matches_stored_copy():
    results = fashion_mnist_published_results()
    assert results[0]["source"].startswith(str(DEBIAN_README))
    rows = [(r["model"], r["preprocessing"], r["accuracy"]) for r in results]
    assert rows == datasets._README_RESULTS
