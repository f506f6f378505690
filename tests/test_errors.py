"""Every bad input and parameter, for every estimator: the error and its words.

One table (``CASES``): each case says which estimators it applies to
(E = PretrainedFeatureExtractor, C = FineTunedClassifier, R =
FineTunedRegressor), the parameters, ``X`` and ``y``, and the exception and
message expected. ``Predict(X)`` means: fit on good images, then
``transform``/``predict`` ``X``. docs/user_guide.md ("Errors") lists the same
cases.
"""

from __future__ import annotations

import io
import os
import re
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.exceptions import NotFittedError

from sktransfer import (
    FineTunedClassifier,
    FineTunedRegressor,
    PretrainedFeatureExtractor,
    WeightsUnavailableError,
)
from sktransfer._testing import TinyConvNet, TinyMLP

PRE8 = {"resize_size": 8, "crop_size": 8}
GOOD = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
Y4 = np.array([0, 1, 0, 1])
NAMES = {
    "E": "PretrainedFeatureExtractor",
    "C": "FineTunedClassifier",
    "R": "FineTunedRegressor",
}


def _seeded(cls, **kwargs):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return cls(**kwargs)


def make(kind, **params):
    backbone = params.pop("backbone", None)
    backbone = _seeded(TinyConvNet) if backbone is None else backbone
    params = {"preprocessing": PRE8, "device": "cpu", **params}
    if kind == "E":
        return PretrainedFeatureExtractor(backbone, **params)
    cls = FineTunedClassifier if kind == "C" else FineTunedRegressor
    return cls(
        backbone, **{"max_epochs": 1, "batch_size": 4, "augment": "off", **params}
    )


class Files:
    """Stands for a list of image paths, made in the test's tmp_path."""

    def __init__(self, *names):
        self.names = names


class Tmp:
    """Stands for a path in the test's tmp_path (created by ``_files``)."""

    def __init__(self, name):
        self.name = name


class PILFiles:
    """Stands for a list of PIL images opened (lazily) from files in tmp_path."""

    def __init__(self, *names):
        self.names = names


class Predict:
    """Fit on good data (``fit_X``), then transform / predict ``X``."""

    def __init__(self, X, fit_X=GOOD, fit=True):
        self.X, self.fit_X, self.fit = X, fit_X, fit


class _RunsCode:
    """Unpickling this creates the folder ``marker``: a stand-in for malware."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _files(tmp):
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(
            tmp / f"good{i}.png"
        )
    (tmp / "notes.png").write_text("this is not an image")
    jpeg = tmp / "truncated.jpg"
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(jpeg, quality=95)
    jpeg.write_bytes(jpeg.read_bytes()[:300])
    _crafted_files(tmp)
    other = _seeded(TinyMLP).state_dict()
    good = _seeded(TinyConvNet).state_dict()
    torch.save(_RunsCode(str(tmp / "code_ran")), tmp / "payload.pt")
    torch.save(
        {"state_dict": good, "epoch": _RunsCode(str(tmp / "code_ran"))},
        tmp / "checkpoint.pt",
    )
    torch.save(
        {k: v for k, v in other.items() if not k.startswith("body")},
        tmp / "other_architecture.pt",
    )


def _crafted_files(tmp):
    """Files the fuzzing of tests/test_fuzz_inputs.py found PIL failing on."""

    def chunk(tag, data):
        crc = struct.pack(">I", zlib.crc32(tag + data))
        return struct.pack(">I", len(data)) + tag + data + crc

    def png_header(width, height):
        ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 16))
            + chunk(b"IEND", b"")
        )

    # Over twice PIL.Image.MAX_IMAGE_PIXELS (PIL raises DecompressionBombError,
    # no ValueError), and between the limit and twice it (PIL only warns, and
    # decodes: a JPEG header of this size made a 1.4 GB image).
    (tmp / "bomb.png").write_bytes(png_header(20_000, 20_000))
    (tmp / "large.png").write_bytes(png_header(10_000, 10_000))
    # A TIFF whose StripOffsets and StripByteCounts are typed RATIONAL: PIL
    # raises a TypeError while decoding.
    buffer = io.BytesIO()
    Image.new("L", (11, 9), 7).save(buffer, "TIFF")
    data = bytearray(buffer.getvalue())
    ifd = struct.unpack_from("<I", data, 4)[0]
    for k in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * k
        if struct.unpack_from("<H", data, entry)[0] in (273, 279):
            struct.pack_into("<H", data, entry + 2, 5)
    (tmp / "rational.tif").write_bytes(bytes(data))
    # A JPEG cut in the middle of its pixels: PIL opens it, fails at load.
    noise = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "JPEG", quality=95)
    (tmp / "half.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def _resolve(value, tmp):
    if isinstance(value, Files):
        return [str(tmp / n) for n in value.names]
    if isinstance(value, PILFiles):
        return [Image.open(tmp / n) for n in value.names]
    if isinstance(value, Tmp):
        return tmp / value.name
    if isinstance(value, dict):
        return {k: _resolve(v, tmp) for k, v in value.items()}
    return value


NAN = np.full((4, 8, 8, 3), np.nan)
SIZES = [np.zeros((8, 8, 3), np.uint8), np.zeros((10, 12, 3), np.uint8)] * 2
NO_CROP = {"preprocessing": {"resize_size": None, "crop_size": None}}

# case, estimators, parameters, X, y, exception, message (regex, after the
# estimator's name where the message starts with it: "{name}")
CASES = [
    # -- files
    (
        "missing image file",
        "ECR",
        {},
        Files("good0.png", "missing.png", "good1.png", "good2.png"),
        Y4,
        FileNotFoundError,
        r"X\[1\]: no such image file: '.*missing\.png'",
    ),
    (
        "not an image file",
        "ECR",
        {},
        Files("good0.png", "good1.png", "notes.png", "good2.png"),
        Y4,
        ValueError,
        r"X\[2\]: cannot read image file '.*notes\.png' \(cannot "
        r"identify image file",
    ),
    (
        "truncated image file",
        "ECR",
        {},
        Files("good0.png", "truncated.jpg", "good1.png", "good2.png"),
        Y4,
        ValueError,
        r"X\[1\]: cannot read image file '.*truncated\.jpg' "
        r"\((Truncated File Read|image file is truncated)",
    ),
    (
        "truncated image file read by a DataLoader worker",
        "C",
        {"net_params": {"iterator_train__num_workers": 1}},
        Files("good0.png", "truncated.jpg", "good1.png", "good2.png"),
        Y4,
        ValueError,
        r"X\[1\]: cannot read image file '.*truncated\.jpg'",
    ),
    (
        "truncated image file at predict",
        "ECR",
        {},
        Predict(Files("good0.png", "truncated.jpg")),
        Y4,
        ValueError,
        r"X\[1\]: cannot read image file '.*truncated\.jpg'",
    ),
    (
        "image file declaring more than twice PIL's pixel limit",
        "ECR",
        {},
        Files("good0.png", "bomb.png", "good1.png", "good2.png"),
        Y4,
        ValueError,
        r"X\[1\]: image file '.*bomb\.png' declares 400000000 pixels, more than "
        r"PIL.Image.MAX_IMAGE_PIXELS \(89478485\); it may be a decompression bomb "
        r"\(a small file that decodes to an enormous image\). If the image is "
        r"genuine, raise the limit",
    ),
    (
        "image file declaring more than PIL's pixel limit",
        "ECR",
        {},
        Files("good0.png", "large.png", "good1.png", "good2.png"),
        Y4,
        ValueError,
        r"X\[1\]: image file '.*large\.png' declares 10000 x 10000 = 100000000 "
        r"pixels, more than PIL.Image.MAX_IMAGE_PIXELS \(89478485\); it may be a "
        r"decompression bomb",
    ),
    (
        "damaged file PIL fails on with another error",
        "ECR",
        {},
        Files("good0.png", "rational.tif", "good1.png", "good2.png"),
        Y4,
        ValueError,
        r"X\[1\]: cannot read image file '.*rational\.tif' \(TypeError: "
        r"'IFDRational' object cannot be interpreted as an integer\)\. Check that "
        r"it is a complete image file",
    ),
    (
        "PIL image opened from a truncated file",
        "ECR",
        {},
        PILFiles("good0.png", "half.jpg", "good1.png", "good2.png"),
        Y4,
        ValueError,
        r"X\[1\]: cannot decode the PIL image \(mode 'RGB', size \(64, 64\)\) "
        r"\(image file is truncated .*\)\. If it was opened from a file, check that "
        r"the file is complete",
    ),
    # -- containers and shapes
    (
        "empty input",
        "ECR",
        {},
        [],
        Y4[:2],
        ValueError,
        r"X is empty: got 0 images; at least one is required",
    ),
    (
        "single path",
        "ECR",
        {},
        "cat.png",
        Y4,
        TypeError,
        r"X must be a sequence of images, got a single path 'cat.png'; wrap it in "
        r"a list",
    ),
    (
        "unsupported container",
        "ECR",
        {},
        42,
        Y4,
        TypeError,
        r"X must be a sequence of image paths, PIL images or arrays.*got an object "
        r"of type int",
    ),
    (
        "unsupported image type",
        "ECR",
        {},
        [1, 2, 3, 4],
        Y4,
        TypeError,
        r"X\[0\] has unsupported type int; each image must be",
    ),
    (
        "mixed image types",
        "ECR",
        {},
        [GOOD[0], Image.fromarray(GOOD[1])] * 2,
        Y4,
        TypeError,
        r"X mixes image types: X\[0\] is a ndarray but X\[1\] is a Image",
    ),
    (
        "5-D array",
        "ECR",
        {},
        GOOD[:, None],
        Y4,
        ValueError,
        r"X as an array must be \(n_images, H, W\), \(n_images, H, W, C\)",
    ),
    (
        "5-D tensor",
        "ECR",
        {},
        torch.zeros(4, 1, 3, 8, 8),
        Y4,
        ValueError,
        r"X as a tensor must be \(n_images, C, H, W\) or \(n_images, H, W\)",
    ),
    (
        "wrong channel count",
        "ECR",
        {},
        np.zeros((4, 8, 8, 5), np.uint8),
        Y4,
        ValueError,
        r"X has 5 channels in its last axis \(shape \(4, 8, 8, 5\)\); "
        r"expected 1, 3 or 4",
    ),
    (
        "channels-first numpy array",
        "ECR",
        {},
        np.zeros((4, 3, 8, 8), np.uint8),
        Y4,
        ValueError,
        r"X has 8 channels in its last axis.*pass torch.from_numpy",
    ),
    (
        "image of wrong rank in a list",
        "ECR",
        {},
        [np.zeros((1, 8, 8, 3))] * 4,
        Y4,
        ValueError,
        r"X\[0\] has shape \(1, 8, 8, 3\); each image must be 2-D",
    ),
    (
        "empty images",
        "ECR",
        {},
        np.zeros((4, 0, 8, 3), np.uint8),
        Y4,
        ValueError,
        r"X holds empty images \(shape \(4, 0, 8, 3\)\): height and width must be "
        r"at least 1 pixel",
    ),
    (
        "empty image in a list",
        "E",
        {},
        [GOOD[0], np.zeros((0, 8, 3), np.uint8)],
        Y4,
        ValueError,
        r"X\[1\] is an empty image of 0 x 8 pixels",
    ),
    (
        "empty image in a list",
        "CR",
        {},
        [GOOD[0], np.zeros((0, 8, 3), np.uint8)] * 2,
        Y4,
        ValueError,
        r"X\[[13]\] is an empty image of 0 x 8 pixels",
    ),
    (
        "images of different sizes without crop",
        "ECR",
        NO_CROP,
        SIZES,
        Y4,
        ValueError,
        r"Images in X have different sizes after preprocessing "
        r"\(\[\(3, 8, 8\), \(3, 10, 12\)\]\); set preprocessing=",
    ),
    (
        "2-D input without image_shape",
        "ECR",
        {},
        np.zeros((4, 192), np.uint8),
        Y4,
        ValueError,
        r"X is 2-D with shape \(4, 192\); 2-D input is read as flattened "
        r"pixel rows and needs image_shape",
    ),
    (
        "image_shape that does not match X",
        "ECR",
        {"image_shape": (8, 8, 3)},
        np.zeros((4, 100), np.uint8),
        Y4,
        ValueError,
        r"image_shape=\(8, 8, 3\) does not match X's 100 values per row",
    ),
    (
        "wrong number of features at predict",
        "ECR",
        {"image_shape": (8, 8, 3)},
        Predict(np.zeros((2, 100), np.uint8), fit_X=GOOD.reshape(4, -1)),
        Y4,
        ValueError,
        r"X has 100 features, but {name} is expecting 192 features",
    ),
    (
        "input the backbone cannot take",
        "ECR",
        {"preprocessing": "passthrough"},
        np.zeros((4, 5), np.float32),
        Y4,
        ValueError,
        r"The backbone \(TinyConvNet\) failed on an input batch of shape \(1, 5\) "
        r"\(Expected 3D .*\)\. Check that X has the shape the backbone expects",
    ),
    # -- pixel values
    (
        "NaN pixels",
        "ECR",
        {},
        NAN,
        Y4,
        ValueError,
        r"X contains NaN or infinite pixel values",
    ),
    (
        "infinite pixels",
        "ECR",
        {},
        np.full((4, 8, 8, 3), np.inf, np.float32),
        Y4,
        ValueError,
        r"X contains NaN or infinite pixel values",
    ),
    (
        "NaN pixels at predict",
        "ECR",
        {},
        Predict(NAN[:1]),
        Y4,
        ValueError,
        r"X contains NaN or infinite pixel values",
    ),
    (
        "float pixels outside [0, 1]",
        "ECR",
        {},
        np.full((4, 8, 8, 3), 2.0),
        Y4,
        ValueError,
        r"X has float pixels in \[2, 2\]; float images must lie in "
        r"\[0, 1\]",
    ),
    (
        "integer pixels outside [0, 255]",
        "ECR",
        {},
        np.full((4, 8, 8, 3), 300),
        Y4,
        ValueError,
        r"X has integer pixels in \[300, 300\]; integer images must lie "
        r"in \[0, 255\]",
    ),
    (
        "boolean pixels",
        "ECR",
        {},
        np.zeros((4, 8, 8, 3), bool),
        Y4,
        TypeError,
        r"X has dtype bool; pixel values must be integers \(0-255\) or floats",
    ),
    # -- targets
    (
        "no y",
        "CR",
        {},
        GOOD,
        None,
        ValueError,
        r"{name} requires y to be passed, but the target y is None",
    ),
    (
        "empty y",
        "CR",
        {},
        GOOD,
        [],
        ValueError,
        r"{name}: y is empty; at least one sample is required",
    ),
    (
        "X and y of different lengths",
        "CR",
        {},
        GOOD,
        Y4[:3],
        ValueError,
        r"{name}: X and y have different lengths: 4 images but 3 targets",
    ),
    (
        "a single class",
        "C",
        {},
        GOOD,
        [1, 1, 1, 1],
        ValueError,
        r"{name} needs samples of at least 2 classes in the data, but the data "
        r"contains only one class: 1",
    ),
    (
        "multi-label y with a label column of zeros",
        "C",
        {},
        GOOD,
        np.array([[0, 1], [1, 0], [1, 0], [0, 1]])[:, [0, 1, 0]] * [1, 1, 0],
        ValueError,
        r"{name}: column 2 of the multi-label y is all 0 \(no sample has label 2\), "
        r"so that label cannot be learned",
    ),
    (
        "multi-label y with values other than 0 and 1",
        "C",
        {},
        GOOD,
        np.array([[0, 1], [1, 0], [2, 0], [0, 1]]),
        ValueError,
        r"{name}: y is 2-D with 2 columns, read as a multi-label indicator matrix "
        r"\(one column per label, as MultiLabelBinarizer returns\), but y\[2, 0\] "
        r"is the value .*2.*; every entry must be 0 or 1",
    ),
    (
        "class_weight with a multi-label y",
        "C",
        {"class_weight": "balanced"},
        GOOD,
        np.array([[0, 1], [1, 0], [1, 1], [0, 1]]),
        ValueError,
        r"{name}: class_weight='balanced' is for single-label y; with a multi-label "
        r"indicator y set class_weight=None",
    ),
    (
        "missing labels",
        "CR",
        {},
        GOOD,
        [0, None, 1, 0],
        ValueError,
        r"{name}: y has a missing value at y\[1\] \(None\); every sample needs a "
        r"target: drop those samples or fill them in",
    ),
    (
        "missing labels in a pandas Series",
        "CR",
        {},
        GOOD,
        pd.Series(["a", None, "b", "a"], dtype="string"),
        ValueError,
        r"{name}: y has a missing value at y\[1\] \(<NA>\)",
    ),
    (
        "labels mixing strings and numbers",
        "C",
        {},
        GOOD,
        np.array([0, "a", 1, "a"], dtype=object),
        ValueError,
        r"{name}: y mixes strings and numbers as labels \(y\[1\] is 'a', y\[0\] "
        r"is 0\); use one type, e.g. y.astype\(str\)",
    ),
    (
        "strings among numeric targets",
        "R",
        {},
        GOOD,
        np.array([0.5, "a", 1, 2], dtype=object),
        ValueError,
        r"{name}: y must be numeric, but y\[1\] is the string 'a'; for class "
        r"labels use FineTunedClassifier",
    ),
    (
        "continuous targets for a classifier",
        "C",
        {},
        GOOD,
        [0.1, 0.2, 0.3, 0.4],
        ValueError,
        r"{name}: invalid y: Unknown label type: continuous",
    ),
    (
        "complex targets",
        "CR",
        {},
        GOOD,
        np.array([0, 1j, 1, 0]),
        ValueError,
        r"{name}: Complex data not supported in y \(dtype complex128\)",
    ),
    (
        "targets that are neither numbers nor strings",
        "CR",
        {},
        GOOD,
        [{"a": 1}, {"b": 2}, {"a": 1}, {"b": 2}],
        TypeError,
        r"{name}: y\[0\] is a dict \(\{'a': 1\}\); each target must be a "
        r"string, a number or a boolean",
    ),
    (
        "ragged y (label sets)",
        "CR",
        {},
        GOOD,
        [["a", "b"], ["a"], ["b"], ["a"]],
        ValueError,
        r"{name}: y cannot be read as an array \(.*\)\. Pass one label per "
        r"sample \(1-D\), or for several labels per sample an indicator matrix: "
        r"MultiLabelBinarizer\(\).fit_transform\(label_sets\)",
    ),
    (
        "a scalar y",
        "CR",
        {},
        GOOD,
        5,
        ValueError,
        r"{name}: y must be a sequence of targets \(one per sample\), got a "
        r"scalar 5",
    ),
    (
        "date targets for a regressor",
        "R",
        {},
        GOOD,
        np.array(["2020-01-01", "2020-01-02"] * 2, dtype="datetime64[D]"),
        ValueError,
        r"{name}: y must be numeric, got dtype datetime64\[D\] \(dates or "
        r"durations\)",
    ),
    (
        "text targets for a regressor",
        "R",
        {},
        GOOD,
        list("abab"),
        ValueError,
        r"{name}: y must be numeric, got dtype <U1; for class labels use "
        r"FineTunedClassifier",
    ),
    (
        "NaN targets",
        "R",
        {},
        GOOD,
        [np.nan, 1, 0, 1],
        ValueError,
        r"Input y contains NaN",
    ),
    # -- backbones, weights and parameters
    (
        "unknown backbone",
        "ECR",
        {"backbone": "resnt18"},
        GOOD,
        Y4,
        ValueError,
        r"Unknown backbone 'resnt18'\. Did you mean one of \['resnet18'",
    ),
    (
        "ambiguous backbone",
        "ECR",
        {"backbone": "resnet"},
        GOOD,
        Y4,
        ValueError,
        r"Ambiguous backbone 'resnet': \d+ backbone names start with it",
    ),
    (
        "backbone of another type",
        "ECR",
        {"backbone": 42},
        GOOD,
        Y4,
        TypeError,
        r"backbone must be a name \(str\) or an nn.Module, got int",
    ),
    (
        "missing optional dependency",
        "ECR",
        {"backbone": "timm:resnet18"},
        GOOD,
        Y4,
        ImportError,
        r"Using a timm backbone needs timm, which is not installed "
        r"\(.*\)\. Install it with: pip install \"sktransfer\[timm\]\"",
    ),
    (
        "weights not available offline",
        "ECR",
        {"backbone": "squeezenet1_1"},
        GOOD,
        Y4,
        WeightsUnavailableError,
        r"Cannot download the weights SqueezeNet1_1_Weights.IMAGENET1K_V1 of "
        r"backbone 'squeezenet1_1' .* Expected the file at .*squeezenet1_1-",
    ),
    (
        "checkpoint of another architecture",
        "ECR",
        {"weights": Tmp("other_architecture.pt")},
        GOOD,
        Y4,
        ValueError,
        r"The weights in '.*other_architecture\.pt' do not fit backbone "
        r"'TinyConvNet': 16 missing key\(s\) \[block1\.0\.weight, .*\]; 2 "
        r"unexpected key\(s\) \[head\.weight, head\.bias\]",
    ),
    (
        "weights file not found",
        "ECR",
        {"weights": Tmp("missing.pt")},
        GOOD,
        Y4,
        FileNotFoundError,
        r"weights file not found: '.*missing\.pt'",
    ),
    (
        "unsafe checkpoint (pickled code)",
        "ECR",
        {"weights": Tmp("payload.pt")},
        GOOD,
        Y4,
        ValueError,
        r"Cannot load weights file '.*payload\.pt' safely \(UnpicklingError: ",
    ),
    (
        "unsafe checkpoint dict (code beside a state dict)",
        "ECR",
        {"weights": Tmp("checkpoint.pt")},
        GOOD,
        Y4,
        ValueError,
        r"Cannot load weights file '.*checkpoint\.pt' safely \(UnpicklingError: ",
    ),
    (
        "unknown layer",
        "E",
        {"layer": "blockk1"},
        GOOD,
        Y4,
        ValueError,
        r"{name}: backbone 'TinyConvNet' has no layer 'blockk1'\. Close names: "
        r"\['block1'",
    ),
    (
        "unknown pooling",
        "E",
        {"pooling": "mean"},
        GOOD,
        Y4,
        ValueError,
        r"{name}: pooling must be one of \['avg', 'max', 'cls', 'flatten'\], got "
        r"'mean'",
    ),
    (
        "invalid parameter value",
        "ECR",
        {"batch_size": 0},
        GOOD,
        Y4,
        ValueError,
        r"{name}: batch_size must be an int >= 1, got 0",
    ),
    (
        "invalid preprocessing",
        "ECR",
        {"preprocessing": {"size": 8}},
        GOOD,
        Y4,
        ValueError,
        r"Unknown preprocessing key\(s\) \['size'\]; allowed keys are",
    ),
    (
        "invalid checkpoint_dir",
        "CR",
        {"checkpoint_dir": 3},
        GOOD,
        Y4,
        ValueError,
        r"{name}: checkpoint_dir must be None or a folder path \(str or "
        r"pathlib.Path\), got 3",
    ),
    (
        "unknown device",
        "ECR",
        {"device": "tpu"},
        GOOD,
        Y4,
        ValueError,
        r"{name}: device must be 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a "
        r"torch.device, got 'tpu'",
    ),
    (
        "device not available",
        "ECR",
        {"device": "cuda:99"},
        GOOD,
        Y4,
        ValueError,
        r"{name}: device 'cuda:99' is not available on this machine; use "
        r"device='auto'",
    ),
    (
        "not fitted",
        "ECR",
        {},
        Predict(GOOD, fit=False),
        Y4,
        NotFittedError,
        r"This {name} instance is not fitted yet",
    ),
]

ROWS = [
    pytest.param(
        kind,
        params,
        X,
        y,
        error,
        match.replace("{name}", NAMES[kind]),
        id=f"{case}-{kind}",
    )
    for case, kinds, params, X, y, error, match in CASES
    for kind in kinds
]


@pytest.mark.parametrize(("kind", "params", "X", "y", "error", "match"), ROWS)
def test_error(kind, params, X, y, error, match, tmp_path, monkeypatch):
    _files(tmp_path)
    # No weights in the hub cache; no timm.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setitem(sys.modules, "timm", None)
    est = make(kind, **_resolve(params, tmp_path))
    with pytest.raises(error, match=match):
        if isinstance(X, Predict):
            if X.fit:
                est.fit(X.fit_X, None if kind == "E" else Y4)
            est.transform(_resolve(X.X, tmp_path)) if kind == "E" else est.predict(
                _resolve(X.X, tmp_path)
            )
        elif kind == "E":
            est.fit(_resolve(X, tmp_path)).transform(_resolve(X, tmp_path))
        else:
            est.fit(_resolve(X, tmp_path), y)
    assert not (tmp_path / "code_ran").exists()  # no checkpoint ran its code


def test_user_guide_lists_every_case():
    guide = (Path(__file__).parents[1] / "docs" / "user_guide.md").read_text()
    errors = guide.split("## Errors", 1)[1]
    listed = set(re.findall(r"^\| (.+?) \|", errors, flags=re.M))
    assert {case for case, *_ in CASES} <= listed
