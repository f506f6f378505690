"""Loaders for the benchmark and demo datasets used by sktransfer.

Nothing here keeps data in memory between calls and nothing touches the
network unless ``download=True`` is passed explicitly.
"""

import difflib
import gzip
import hashlib
import importlib.resources
import io
import numbers
import os
import socket
import tempfile
import threading
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.utils import (
    Bunch,
    _safe_indexing,
    check_consistent_length,
    check_random_state,
)

__all__ = [
    "fashion_mnist_published_results",
    "labels_per_class_split",
    "load_dataset",
    "load_digits_images",
    "load_fashion_mnist",
    "load_fashion_mnist_sample",
    "subsample_per_class",
]

# Module-level constants are looked up at call time, so tests (and users
# with unusual layouts) can monkeypatch them.
_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
_DEBIAN_README = Path("/usr/share/doc/dataset-fashion-mnist/README.md.gz")
_ENV_VAR = "SKTRANSFER_DATA"
_BASE_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

_SUBSET_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_ALL_FILES = _SUBSET_FILES["train"] + _SUBSET_FILES["test"]
_URLS = {name: _BASE_URL + name for name in _ALL_FILES}

# SHA-256 of the *decompressed* IDX content. The Zalando README publishes MD5s
# of its .gz files (8d4fb7e6..., 25c81989..., bef4ecab..., bb300cfd...), but
# Debian's dataset-fashion-mnist recompresses the files, so those MD5s cannot
# be checked against a local copy. The decompressed bytes are identical to
# upstream (their MD5s, f4a8712d..., 9018921c..., 8181f547..., 15d48437...,
# match the raw-file MD5s other loaders publish) and are what we hash, which
# also makes the check independent of how the server compresses the files.
_CHECKSUMS = {
    "train-images-idx3-ubyte.gz": (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
    ),
    "train-labels-idx1-ubyte.gz": (
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
    ),
}

# The sample shipped in sktransfer/data (built by
# benchmarks/make_fashion_mnist_sample.py; licence and provenance in
# sktransfer/data/README.md): SHA-256 over its arrays' names, dtypes, shapes
# and bytes, checked on every load.
_SAMPLE_PACKAGE = "sktransfer"
_SAMPLE_FILE = ("data", "fashion_mnist_sample.npz")
_SAMPLE_DIGEST = "670168360c57edab372f9728017006de7bf862153a884eb58699fb419c9720f1"
_SAMPLE_PER_CLASS = {"train": 400, "test": 200}

FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

_FASHION_MNIST_DESCR = """\
Fashion-MNIST
=============

Zalando's article images: 60,000 training and 10,000 test examples, each a
28x28 grayscale image (uint8, 0..255) labelled with one of 10 classes:
T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag,
Ankle boot. The training set has 6,000 images per class, the test set 1,000.

Home page: https://github.com/zalandoresearch/fashion-mnist (MIT licence).

Reference: Han Xiao, Kashif Rasul, Roland Vollgraf. Fashion-MNIST: a Novel
Image Dataset for Benchmarking Machine Learning Algorithms. arXiv:1708.07747.
"""

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_idx(path):
    """Read an IDX file (optionally gzip-compressed) into a numpy array.

    Parameters
    ----------
    path : str or path-like
        The file. Gzip compression is detected from the content, not the name.

    Returns
    -------
    array : ndarray
        Native byte order, shape given by the file's header.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(
                f"{path} is not a valid gzip file ({exc}); delete it and "
                "provide the file again."
            ) from exc
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path} is not an IDX file: bad magic number {raw[:4].hex()!r} "
            "(expected 0000 followed by a type code and the number of "
            "dimensions, e.g. 00000803 for uint8 images)."
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(
            f"{path} is a truncated IDX file: its header announces {ndim} "
            f"dimensions but the file has only {len(raw)} bytes."
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    expected = header_size + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"{path} is a corrupt IDX file: a {shape} array of {dtype.name} "
            f"needs {expected} bytes, the file has {len(raw)}."
        )
    data = np.frombuffer(raw, dtype, offset=header_size).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _default_data_home():
    """Folder where Fashion-MNIST is looked for when no data_home is given."""
    env = os.environ.get(_ENV_VAR)
    if env:
        return Path(env).expanduser() / "fashion-mnist"
    # Same folder as sklearn.datasets.get_data_home(), which would also
    # create it: a lookup must work with a read-only home directory.
    sklearn_home = os.environ.get("SCIKIT_LEARN_DATA", "~/scikit_learn_data")
    return Path(sklearn_home).expanduser() / "fashion-mnist"


def _has_files(folder, names):
    return all((Path(folder) / name).is_file() for name in names)


def _sha256_of_gzip_content(path):
    digest = hashlib.sha256()
    with gzip.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch_file(name, folder):
    """Download one Fashion-MNIST file into folder, verified and atomic."""
    url, expected = _URLS[name], _CHECKSUMS[name]
    folder.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=name + ".", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    for chunk in iter(lambda: response.read(1 << 20), b""):
                        out.write(chunk)
            except OSError as exc:
                raise OSError(
                    f"Could not download {url} ({exc}). Check the internet "
                    f"connection, or put {name} in {folder} yourself."
                ) from exc
        try:
            actual = _sha256_of_gzip_content(partial)
        except (OSError, EOFError, zlib.error) as exc:
            actual = f"<not a gzip file: {exc}>"
        if actual != expected:
            raise OSError(
                f"Checksum mismatch for {name} downloaded from {url}: the "
                f"SHA-256 of its decompressed content is {actual}, expected "
                f"{expected}. The partial file was deleted; try again, or "
                f"put a verified copy in {folder}."
            )
        os.replace(partial, folder / name)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def _download_reachable(timeout=3.0):
    """Whether Zalando's download server accepts a connection within ``timeout``.

    The name lookup and the connection run in a daemon thread that is waited
    for at most ``timeout`` seconds: ``getaddrinfo`` has no timeout of its own
    and can block for tens of seconds where DNS is unreachable. Returns
    ``(reachable, reason)``, ``reason`` saying why not (empty if reachable).
    """
    url = urllib.parse.urlsplit(next(iter(_URLS.values())))
    host, port = url.hostname, url.port or 80
    outcome = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append("")
        except OSError as exc:
            outcome.append(f"{host}:{port} unreachable ({exc})")

    thread = threading.Thread(target=probe, name="sktransfer-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return False, f"{host}:{port} did not answer within {timeout:g} s"
    return outcome[0] == "", outcome[0]


def _missing_data_message(subset, folders):
    looked = "\n".join(f"  - {folder}" for folder in folders)
    needed = ", ".join(_SUBSET_FILES[subset])
    return (
        f"Fashion-MNIST ({subset!r} subset) not found. Needed files: "
        f"{needed}. Looked in:\n{looked}\n"
        "Provide the data in one of these ways:\n"
        "  - on Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist\n"
        f"  - put the 4 .gz files ({', '.join(_ALL_FILES)}) from "
        f"https://github.com/zalandoresearch/fashion-mnist in {folders[0]} "
        f"(or pass data_home=..., or set {_ENV_VAR} to a folder holding a "
        "fashion-mnist/ subfolder)\n"
        "  - on a machine with internet access: "
        "load_fashion_mnist(download=True)"
    )


def load_fashion_mnist(
    *, subset="train", data_home=None, download=False, return_X_y=False
):
    """Load the Fashion-MNIST images and labels from local files.

    The folders are searched in this order: ``data_home``, then the Debian
    package folder ``/usr/share/datasets/fashion-mnist`` (``apt-get install
    dataset-fashion-mnist``). If neither holds the files and ``download=True``,
    the missing files are downloaded into ``data_home`` from Zalando's
    server and verified against SHA-256 checksums.

    Parameters
    ----------
    subset : {"train", "test"}, default="train"
        The 60,000 training images or the 10,000 test images.

    data_home : str or path-like, default=None
        Folder holding the ``*-ubyte.gz`` files. ``None`` means
        ``$SKTRANSFER_DATA/fashion-mnist`` if the ``SKTRANSFER_DATA``
        environment variable is set, else ``fashion-mnist`` inside
        scikit-learn's data home (``~/scikit_learn_data`` by default).

    download : bool, default=False
        Download the files into ``data_home`` if they are found nowhere.

    return_X_y : bool, default=False
        Return ``(images, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With ``images`` (uint8 array of shape (n_samples, 28, 28)),
        ``target`` (int64 array of shape (n_samples,), values 0..9),
        ``target_names`` (the 10 class names), ``DESCR`` and ``source``
        (the folder the files were read from).

    (images, target) : tuple of ndarray
        If ``return_X_y=True``.

    Raises
    ------
    FileNotFoundError
        If the files are found nowhere and ``download=False``; the message
        lists the folders searched and how to provide the data.

    See Also
    --------
    load_digits_images : A small dataset bundled with scikit-learn.

    Examples
    --------
    This needs the data (``apt-get install dataset-fashion-mnist``):

    >>> from sktransfer.datasets import load_fashion_mnist
    >>> data = load_fashion_mnist(subset="test")  # doctest: +SKIP
    >>> data.images.shape, data.target_names[9]  # doctest: +SKIP
    ((10000, 28, 28), 'Ankle boot')
    """
    if subset not in _SUBSET_FILES:
        raise ValueError(
            f"load_fashion_mnist: subset must be 'train' or 'test', got {subset!r}."
        )
    if data_home is None:
        data_home = _default_data_home()
    data_home = Path(data_home).expanduser()
    names = _SUBSET_FILES[subset]
    folders = [data_home, Path(_DEBIAN_DIR)]
    source = next((f for f in folders if _has_files(f, names)), None)
    if source is None and download:
        for name in names:
            if not (data_home / name).is_file():
                _fetch_file(name, data_home)
        source = data_home
    if source is None:
        raise FileNotFoundError(_missing_data_message(subset, folders))
    images, target = _read_fashion_mnist_files(source, names)
    if return_X_y:
        return images, target
    return Bunch(
        images=images,
        target=target,
        target_names=list(FASHION_MNIST_CLASSES),
        DESCR=_FASHION_MNIST_DESCR,
        source=str(source),
    )


def _read_fashion_mnist_files(folder, names):
    image_path, label_path = (Path(folder) / name for name in names)
    images, labels = _read_idx(image_path), _read_idx(label_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(
            f"{image_path} does not hold Fashion-MNIST images: expected uint8 "
            f"of shape (n, 28, 28), got {images.dtype} of shape {images.shape}."
        )
    if labels.shape != images.shape[:1]:
        raise ValueError(
            f"{label_path} holds {labels.shape} labels for {len(images)} "
            f"images in {image_path}; the two files do not belong together."
        )
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise ValueError(f"{label_path} holds labels outside 0..9.")
    return images, labels.astype(np.int64)


def load_digits_images(*, return_X_y=False):
    """Load scikit-learn's 8x8 digits as uint8 images.

    The 0..16 intensities of :func:`sklearn.datasets.load_digits` are
    rescaled to 0..255 with ``round(x * 255 / 16)``, so the images look like
    ordinary 8-bit grayscale pictures to image backbones.

    Parameters
    ----------
    return_X_y : bool, default=False
        Return ``(images, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With ``images`` (uint8 array of shape (1797, 8, 8)), ``target``
        (int64 array of shape (1797,)), ``target_names`` (``"0"`` to
        ``"9"``), ``DESCR`` and ``source`` (``"sklearn"``).

    (images, target) : tuple of ndarray
        If ``return_X_y=True``.

    Examples
    --------
    >>> from sktransfer.datasets import load_digits_images
    >>> data = load_digits_images()
    >>> data.images.shape, data.images.dtype, int(data.images.max())
    ((1797, 8, 8), dtype('uint8'), 255)
    >>> data.target_names[:3]
    ['0', '1', '2']
    """
    digits = load_digits()
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    target = digits.target.astype(np.int64)
    if return_X_y:
        return images, target
    return Bunch(
        images=images,
        target=target,
        target_names=[str(name) for name in digits.target_names],
        DESCR=digits.DESCR,
        source="sklearn",
    )


def _sample_resource():
    return importlib.resources.files(_SAMPLE_PACKAGE).joinpath(*_SAMPLE_FILE)


def _sample_digest(arrays):
    """SHA-256 over the arrays' names, dtypes, shapes and bytes (sorted names)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def load_fashion_mnist_sample(*, subset="train", return_X_y=False):
    """Load the small Fashion-MNIST sample shipped with sktransfer.

    A stratified random sample of the official files that keeps the official
    split: 400 images per class (4,000) of the 60,000 training images and 200
    per class (2,000) of the 10,000 test images. It is part of the package
    (2.6 MB, read with :mod:`importlib.resources`), so it works offline and
    without the full data set; ``sktransfer demo`` uses it when
    :func:`load_fashion_mnist` finds no files. Fashion-MNIST is MIT-licensed
    by Zalando SE (Han Xiao, Kashif Rasul, Roland Vollgraf); the licence text
    and how the sample was drawn are in the package's ``data/`` folder.

    Parameters
    ----------
    subset : {"train", "test"}, default="train"
        The 4,000 training images or the 2,000 test images.

    return_X_y : bool, default=False
        Return ``(images, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        As :func:`load_fashion_mnist`: ``images`` (uint8 array of shape
        (n_samples, 28, 28)), ``target`` (int64 array of shape (n_samples,),
        values 0..9), ``target_names``, ``DESCR`` and ``source`` (the file
        read), plus ``index``: the images' positions in the official
        ``subset`` files (sorted, so the official order is kept).

    (images, target) : tuple of ndarray
        If ``return_X_y=True``.

    See Also
    --------
    load_fashion_mnist : The full data set, from local files or a download.

    Examples
    --------
    >>> from sktransfer.datasets import load_fashion_mnist_sample
    >>> data = load_fashion_mnist_sample(subset="test")
    >>> data.images.shape, data.images.dtype, data.target_names[9]
    ((2000, 28, 28), dtype('uint8'), 'Ankle boot')
    """
    if subset not in _SAMPLE_PER_CLASS:
        raise ValueError(
            "load_fashion_mnist_sample: subset must be 'train' or 'test', got "
            f"{subset!r}."
        )
    resource = _sample_resource()
    with resource.open("rb") as f, np.load(io.BytesIO(f.read())) as npz:
        arrays = {name: npz[name] for name in npz.files}
    if _sample_digest(arrays) != _SAMPLE_DIGEST:
        raise ValueError(
            f"load_fashion_mnist_sample: {resource} is not the sample this "
            f"version of sktransfer shipped (its content SHA-256 is "
            f"{_sample_digest(arrays)}, expected {_SAMPLE_DIGEST}). Reinstall "
            "sktransfer, or rebuild the file with "
            "benchmarks/make_fashion_mnist_sample.py."
        )
    images = arrays[f"{subset}_images"]
    target = arrays[f"{subset}_target"].astype(np.int64)
    if return_X_y:
        return images, target
    n = _SAMPLE_PER_CLASS[subset]
    return Bunch(
        images=images,
        target=target,
        target_names=list(FASHION_MNIST_CLASSES),
        DESCR=_FASHION_MNIST_DESCR
        + f"\nThis is the sample shipped with sktransfer: {n} images per class "
        f"of the official {subset!r} subset ({len(target)} images).\n",
        source=str(resource),
        index=arrays[f"{subset}_index"].astype(np.int64),
    )


_LOADERS = {
    "digits": load_digits_images,
    "fashion_mnist": load_fashion_mnist,
    "fashion_mnist_sample": load_fashion_mnist_sample,
}


def load_dataset(name, **kwargs):
    """Load a dataset by name.

    Parameters
    ----------
    name : {"digits", "fashion_mnist", "fashion_mnist_sample"}
        The dataset.

    **kwargs : dict
        Passed on to the loader (:func:`load_digits_images`,
        :func:`load_fashion_mnist` or :func:`load_fashion_mnist_sample`).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch` or tuple
        What the loader returns.

    Examples
    --------
    >>> from sktransfer.datasets import load_dataset
    >>> images, target = load_dataset("digits", return_X_y=True)
    >>> images.shape
    (1797, 8, 8)
    """
    if name not in _LOADERS:
        close = difflib.get_close_matches(str(name), _LOADERS, n=2, cutoff=0.5)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"load_dataset: unknown dataset {name!r}.{hint} Available: "
            f"{', '.join(map(repr, sorted(_LOADERS)))}."
        )
    return _LOADERS[name](**kwargs)


def _check_n_per_class(n_per_class):
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, numbers.Integral):
        raise TypeError(
            "n_per_class must be a positive int, got "
            f"{type(n_per_class).__name__} {n_per_class!r}."
        )
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be a positive int, got {n_per_class}.")


def labels_per_class_split(y, n_per_class, *, random_state=None):
    """Split indices into ``n_per_class`` labelled samples per class and the rest.

    This is the usual few-shot protocol: for every class, ``n_per_class``
    samples are drawn without replacement; everything else is the rest.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels of any type.

    n_per_class : int
        Samples to draw from each class, at least 1.

    random_state : int, RandomState instance or None, default=None
        Seeds the draw; pass an int for reproducible splits.

    Returns
    -------
    train_idx : ndarray of int64
        Sorted indices, ``n_per_class * n_classes`` of them.

    rest_idx : ndarray of int64
        Sorted indices of all other samples.

    Examples
    --------
    >>> from sktransfer.datasets import labels_per_class_split
    >>> y = ["a", "b", "a", "b", "a", "b"]
    >>> train_idx, rest_idx = labels_per_class_split(y, 2, random_state=0)
    >>> len(train_idx), len(rest_idx)
    (4, 2)
    """
    _check_n_per_class(n_per_class)
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(
            f"y must be a non-empty 1-D array of labels, got shape {y.shape}."
        )
    rng = check_random_state(random_state)
    classes, y_encoded = np.unique(y, return_inverse=True)
    chosen = []
    for k, label in enumerate(classes.tolist()):
        members = np.flatnonzero(y_encoded == k)
        if len(members) < n_per_class:
            raise ValueError(
                f"Class {label!r} has {len(members)} samples, fewer than "
                f"n_per_class={n_per_class}. Lower n_per_class or drop the class."
            )
        chosen.append(rng.choice(members, n_per_class, replace=False))
    train_idx = np.sort(np.concatenate(chosen)).astype(np.int64)
    mask = np.ones(len(y), dtype=bool)
    mask[train_idx] = False
    return train_idx, np.flatnonzero(mask).astype(np.int64)


def subsample_per_class(X, y, n_per_class, *, random_state=None):
    """Keep ``n_per_class`` random samples of each class.

    Parameters
    ----------
    X : array-like, list or DataFrame of length n_samples
        The samples (images, paths, features, ...).

    y : array-like of shape (n_samples,)
        Class labels of any type.

    n_per_class : int
        Samples to keep from each class, at least 1.

    random_state : int, RandomState instance or None, default=None
        Seeds the draw; pass an int for reproducible subsets.

    Returns
    -------
    X_sub : same type as X
        The kept samples, in their original order.

    y_sub : same type as y
        Their labels.

    Examples
    --------
    >>> from sktransfer.datasets import subsample_per_class
    >>> X_sub, y_sub = subsample_per_class(
    ...     ["p0.png", "p1.png", "p2.png", "p3.png"], [0, 1, 0, 1], 1,
    ...     random_state=0)
    >>> len(X_sub), sorted(y_sub)
    (2, [0, 1])
    """
    check_consistent_length(X, y)
    idx, _ = labels_per_class_split(y, n_per_class, random_state=random_state)
    return _safe_indexing(X, idx), _safe_indexing(y, idx)


_STD_AUG = (
    "standard preprocessing (mean/std subtraction/division) and augmentation "
    "(random crops/horizontal flips)"
)
_EFTHYMIADIS_AUG = (
    "Normalization, random horizontal flip, random vertical flip, random "
    "translation, random rotation."
)
# Copy of the "Benchmark" table of the Fashion-MNIST README (upstream git
# 55506a9, shipped by Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1):
# (classifier, preprocessing, Fashion test accuracy). The README notes the
# maintainers have not verified these submitted numbers.
_README_RESULTS = [
    ("2 Conv+pooling", "None", 0.876),
    ("2 Conv+pooling", "None", 0.916),
    ("2 Conv+pooling+ELU activation (PyTorch)", "None", 0.903),
    ("2 Conv", _EFTHYMIADIS_AUG, 0.919),
    ("2 Conv <100K parameters", "None", 0.925),
    ("2 Conv ~113K parameters", "Normalization", 0.922),
    ("2 Conv+3 FC ~1.8M parameters", "Normalization", 0.932),
    ("2 Conv+3 FC ~500K parameters", "Augmentation, batch normalization", 0.934),
    ("2 Conv+pooling+BN", "None", 0.934),
    ("2 Conv+2 FC", "Random Horizontal Flips", 0.939),
    ("3 Conv+2 FC", "None", 0.907),
    ("3 Conv+pooling+BN", "None", 0.903),
    ("3 Conv+pooling+2 FC+dropout", "None", 0.926),
    ("3 Conv+BN+pooling", "None", 0.921),
    ("5 Conv+BN+pooling", "None", 0.931),
    (
        "CNN with optional shortcuts, dense-like connectivity",
        "standardization+augmentation+random erasing",
        0.947,
    ),
    ("GRU+SVM", "None", 0.888),
    ("GRU+SVM with dropout", "None", 0.897),
    ("WRN40-4 8.9M params", _STD_AUG, 0.967),
    ("DenseNet-BC 768K params", _STD_AUG, 0.954),
    ("MobileNet", "augmentation (horizontal flips)", 0.95),
    ("ResNet18", _EFTHYMIADIS_AUG, 0.949),
    ("GoogleNet with cross-entropy loss", "None", 0.937),
    ("AlexNet with Triplet loss", "None", 0.899),
    ("SqueezeNet with cyclical learning rate 200 epochs", "None", 0.9),
    ("Dual path network with wide resnet 28-10", _STD_AUG, 0.957),
    ("MLP 256-128-100", "None", 0.8833),
    ("VGG16 26M parameters", "None", 0.935),
    ("WRN-28-10", _STD_AUG, 0.959),
    ("WRN-28-10 + Random Erasing", _STD_AUG, 0.963),
    (
        "Human Performance",
        "Crowd-sourced evaluation of human (with no fashion expertise) "
        "performance. 1000 randomly sampled test images, 3 labels per image, "
        "majority labelling.",
        0.835,
    ),
    (
        "Capsule Network 8M parameters",
        "Normalization and shift at most 2 pixel and horizontal flip",
        0.936,
    ),
    ("HOG+SVM", "HOG", 0.926),
    ("XgBoost", "scaling the pixel values to mean=0.0 and var=1.0", 0.898),
    ("DENSER", "-", 0.953),
    ("Dyra-Net", "Rescale to unit interval", 0.906),
    ("Google AutoML", "24 compute hours (higher quality)", 0.939),
]
_README_HEADER = "| Classifier | Preprocessing | Fashion test accuracy"


def _parse_readme_results(text, origin):
    """(classifier, preprocessing, accuracy) rows of the README table."""
    lines = text.splitlines()
    start = next(
        (i for i, line in enumerate(lines) if line.startswith(_README_HEADER)),
        None,
    )
    if start is None:
        raise ValueError(
            f"{origin} has no benchmark table (no line starting with "
            f"{_README_HEADER!r}); it is not the Fashion-MNIST README."
        )
    rows = []
    for line in lines[start + 2 :]:  # skip the header and the |---| line
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows.append((cells[0], cells[1], float(cells[2])))
    return rows


def fashion_mnist_published_results():
    """Fashion-MNIST test accuracies published in the dataset's README.

    These are the submitted results listed in the "Benchmark" table of the
    Fashion-MNIST README (the README warns that its maintainers have not
    verified them), e.g. ``HOG+SVM`` 0.926 and ``ResNet18`` 0.949. The
    README's scikit-learn benchmark of 129 classifiers is only published on
    the project's web site, not in the README or in ``baselines.json`` (which
    holds the parameter grids only), so it is not included.

    The table is read from the Debian package's
    ``/usr/share/doc/dataset-fashion-mnist/README.md.gz`` when it is
    installed, else taken from a copy of the same table stored in this
    module; ``source`` says which.

    Returns
    -------
    results : list of dict
        One dict per table row, in the README's order, with keys ``model``,
        ``preprocessing``, ``accuracy`` (float in [0, 1]) and ``source``.

    Examples
    --------
    >>> from sktransfer.datasets import fashion_mnist_published_results
    >>> results = {r["model"]: r["accuracy"] for r in
    ...            fashion_mnist_published_results()}
    >>> results["HOG+SVM"], results["ResNet18"]
    (0.926, 0.949)
    """
    readme = Path(_DEBIAN_README)
    if readme.is_file():
        with gzip.open(readme, "rt", encoding="utf-8") as f:
            rows = _parse_readme_results(f.read(), readme)
        source = f"{readme} (benchmark table, read at call time)"
    else:
        rows = _README_RESULTS
        source = (
            "copy of the Fashion-MNIST README benchmark table (upstream git "
            "55506a9, Debian dataset-fashion-mnist 0.0~git20200523.55506a9-1) "
            "stored in sktransfer.datasets"
        )
    return [
        {"model": model, "preprocessing": prep, "accuracy": acc, "source": source}
        for model, prep, acc in rows
    ]
