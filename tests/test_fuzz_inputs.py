"""Fuzzing the input layer: damaged and crafted image files, odd label arrays.

Image files from the wild are truncated, bit-flipped, spliced, or crafted:
headers that declare enormous images (decompression bombs), zero sizes,
16-bit, CMYK, palette-with-transparency and multi-frame images. Labels come
from CSV files with missing values and mixed types. Every case must either
work or end in one of sktransfer's clear errors (ValueError / TypeError /
FileNotFoundError raised by sktransfer's own code, or scikit-learn's input
validation, naming the file's position and path, or ``y``): never a bare
exception from Pillow, numpy or torch, never a hang (pytest-timeout) and
never the decoding of an image larger than ``PIL.Image.MAX_IMAGE_PIXELS``.

Hypothesis runs derandomized (the same examples on every run) with a
bounded number of examples, so the default suite stays fast and stable.
"""

from __future__ import annotations

import functools
import io
import os
import random
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from sktransfer import (
    FineTunedClassifier,
    FineTunedRegressor,
    PretrainedFeatureExtractor,
)
from sktransfer._inputs import UnreadableImageError, as_image_sequence
from sktransfer._preprocessing import Preprocessing
from sktransfer._testing import TinyConvNet, TinyMLP

pytestmark = [
    pytest.mark.timeout(120),
    # libtiff reports damaged tags as warnings; PIL warns about palettes.
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
]

CLEAR_ERRORS = (ValueError, TypeError, FileNotFoundError)
PRE = Preprocessing(resize_size=8, crop_size=8)
SETTINGS = dict(
    deadline=10_000,  # ms per example: a hang fails here, or at the timeout
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def examples(n):
    """``n`` hypothesis examples, times ``SKTRANSFER_FUZZ_SCALE`` (default 1):
    ``SKTRANSFER_FUZZ_SCALE=50 pytest tests/test_fuzz_inputs.py`` fuzzes longer."""
    return n * int(os.environ.get("SKTRANSFER_FUZZ_SCALE", "1"))


def assert_clear_error(exc, sources=("sktransfer",)):
    """``exc`` is a clear error raised by sktransfer's own code (or ``sources``)."""
    assert isinstance(exc, CLEAR_ERRORS), f"{type(exc).__name__}: {exc}"
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    where = Path(tb.tb_frame.f_code.co_filename).parts
    assert any(name in where for name in sources), (
        f"{type(exc).__name__} raised in {tb.tb_frame.f_code.co_filename}: {exc}"
    )


# -- seed files ---------------------------------------------------------------------
def _encode(image, fmt, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _chunk(tag, data):
    crc = zlib.crc32(tag + data)
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def png_bytes(width, height, *, depth=8, colour=2, rows=b""):
    """A PNG with a valid IHDR (and CRCs) declaring ``width`` x ``height``."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


@functools.cache
def seeds():
    """``{(format, variant): bytes}``: small valid files of many kinds."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8))
    gray16 = Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257)
    palette = rgb.convert("P")
    frames = dict(save_all=True, append_images=[rgb.rotate(90, expand=False)])
    out = {}
    for fmt in ("PNG", "JPEG", "GIF", "TIFF", "WEBP", "BMP"):
        for mode in ("RGB", "L", "1", "P", "RGBA", "LA", "CMYK"):
            try:
                out[fmt, mode] = _encode(rgb.convert(mode), fmt)
            except (OSError, ValueError, KeyError):
                pass  # the format cannot hold this mode
    out["PNG", "I;16"] = _encode(gray16, "PNG")
    out["TIFF", "I;16"] = _encode(gray16, "TIFF")
    out["TIFF", "F"] = _encode(
        Image.fromarray(np.asarray(rgb.convert("L"), np.float32) / 255), "TIFF"
    )
    out["PNG", "P+transparency"] = _encode(palette, "PNG", transparency=3)
    out["GIF", "P+transparency"] = _encode(palette, "GIF", transparency=3)
    for fmt in ("PNG", "GIF", "TIFF", "WEBP"):
        out[fmt, "2 frames"] = _encode(rgb, fmt, **frames)
    out["WEBP", "lossless"] = _encode(rgb, "WEBP", lossless=True)
    out["JPEG", "progressive"] = _encode(rgb, "JPEG", progressive=True)
    out["PNG", "16-bit RGB"] = png_bytes(
        2, 2, depth=16, colour=2, rows=b"".join(b"\0" + b"\x12\x34" * 6 for _ in "ab")
    )
    return out


SEED_KEYS = sorted(seeds())


@st.composite
def damaged_files(draw):
    """``(description, bytes)``: a seed file, damaged one to three times."""
    key = draw(st.sampled_from(SEED_KEYS))
    data = bytearray(seeds()[key])
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    steps = []
    for _ in range(draw(st.integers(1, 3))):
        op = draw(
            st.sampled_from(
                ["truncate", "flip bits", "overwrite", "insert", "splice", "delete"]
            )
        )
        steps.append(op)
        if not data:
            break
        at = rnd.randrange(len(data))
        if op == "truncate":
            del data[at:]
        elif op == "flip bits":
            for _ in range(rnd.randint(1, 8)):
                i = rnd.randrange(len(data))
                data[i] ^= 1 << rnd.randrange(8)
        elif op == "overwrite":
            n = rnd.randint(1, 8)
            data[at : at + n] = bytes(
                rnd.choice((0, 255, rnd.randrange(256))) for _ in range(n)
            )
        elif op == "insert":
            data[at:at] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16)))
        elif op == "delete":
            del data[at : at + rnd.randint(1, 16)]
        else:  # the head of this file on the tail of another
            other = seeds()[rnd.choice(SEED_KEYS)]
            data = data[:at] + other[rnd.randrange(len(other)) :]
    return f"{key[0]} {key[1]}: {', '.join(steps)}", bytes(data)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _write(folder, data, name="image.bin"):
    path = folder / name
    path.write_bytes(data)
    return str(path)


def _event(value):
    """Record a hypothesis event (a no-op outside a hypothesis test)."""
    from hypothesis.control import _current_build_context

    if _current_build_context.value is not None:
        event(value)


def _read_one(path):
    """Decode and preprocess one file as the estimators do."""
    return PRE.apply(as_image_sequence([path])[0])


def check_file(path, description=""):
    """The file gives an (3, 8, 8) finite image or a clear error naming it."""
    try:
        image = _read_one(path)
    except Exception as exc:
        assert_clear_error(exc)
        assert str(exc).startswith("X[0]") and path in str(exc), str(exc)
        _event(type(exc).__name__)
        return exc
    _event("image")
    assert image.shape == (3, 8, 8) and image.dtype == torch.float32, description
    assert torch.isfinite(image).all(), description
    return image


# -- damaged files --------------------------------------------------------------------
def test_every_seed_file_is_read(folder):
    for key, data in seeds().items():
        image = check_file(_write(folder, data, f"{key[1]}.bin"), str(key))
        assert isinstance(image, torch.Tensor), (key, image)


@settings(max_examples=examples(100), **SETTINGS)
@given(damaged_files())
def test_damaged_files_give_images_or_a_clear_error(folder, damaged):
    description, data = damaged
    check_file(_write(folder, data), description)


@settings(max_examples=examples(80), **SETTINGS)
@given(damaged_files())
def test_pil_images_opened_from_damaged_bytes_give_images_or_a_clear_error(damaged):
    # PIL opens lazily: the damage shows when sktransfer reads the pixels.
    description, data = damaged
    try:
        image = Image.open(io.BytesIO(data))
    except Exception:  # PIL's own error, in the user's code: not ours
        event("PIL refused to open")
        return
    try:
        out = PRE.apply(as_image_sequence([image])[0])
    except Exception as exc:
        assert_clear_error(exc)
        assert str(exc).startswith("X[0]"), str(exc)
        event(type(exc).__name__)
        return
    assert out.shape == (3, 8, 8) and torch.isfinite(out).all(), description


# -- headers declaring enormous or empty images ---------------------------------------
def _patched(data, offset, fmt, *values):
    data = bytearray(data)
    struct.pack_into(fmt, data, offset, *values)
    return bytes(data)


def crafted(fmt, width, height):
    """A small file of ``fmt`` whose header declares ``width`` x ``height``."""
    base = seeds()[fmt, "RGB"]
    if fmt == "PNG":
        return png_bytes(width, height, rows=b"\0" * 16)
    if fmt == "JPEG":
        sof = base.find(b"\xff\xc0")
        return _patched(base, sof + 5, ">HH", height, width)
    if fmt == "GIF":
        data = _patched(base, 6, "<HH", width, height)  # logical screen
        return _patched(data, data.find(b"\x2c") + 5, "<HH", width, height)
    if fmt == "BMP":
        return _patched(base, 18, "<ii", width, height)
    if fmt == "WEBP":
        lossless = seeds()["WEBP", "lossless"]
        at = lossless.find(b"VP8L") + 9
        (bits,) = struct.unpack_from("<I", lossless, at)
        bits = (bits & ~((1 << 28) - 1)) | (width - 1) | ((height - 1) << 14)
        return _patched(lossless, at, "<I", bits)
    # TIFF: the ImageWidth (256) and ImageLength (257) entries of the first IFD
    data = bytearray(base)
    ifd = struct.unpack_from("<I", data, 4)[0]
    for k in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * k
        tag, kind = struct.unpack_from("<HH", data, entry)
        if tag in (256, 257):
            value = width if tag == 256 else height
            struct.pack_into("<H" if kind == 3 else "<I", data, entry + 8, value)
    return bytes(data)


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if PIL decodes the pixels of a file."""

    def refuse(self):
        raise AssertionError(f"decoded a {self.size} image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


BOMB_CASES = [
    ("PNG", 100_000, 100_000),  # 10^10 pixels: PIL raises DecompressionBombError
    ("PNG", 10_000, 10_000),  # 10^8: between the limit and twice it, PIL warns
    ("JPEG", 65_500, 65_500),
    ("JPEG", 12_000, 12_000),  # a 700-byte file PIL decodes to 1.4 GB
    ("GIF", 65_535, 65_535),
    ("GIF", 12_000, 12_000),
    ("TIFF", 65_535, 65_535),
    ("TIFF", 12_000, 12_000),
    ("WEBP", 16_383, 16_383),
    ("BMP", 100_000, 100_000),
    ("BMP", 12_000, 12_000),
]


@pytest.mark.parametrize(("fmt", "width", "height"), BOMB_CASES)
def test_headers_declaring_enormous_images_are_refused_before_decoding(
    folder, no_decoding, fmt, width, height
):
    path = _write(folder, crafted(fmt, width, height), f"bomb.{fmt.lower()}")
    with pytest.raises(
        UnreadableImageError,
        match=r"X\[0\]: image file '.*bomb\.\w+' declares (\d+ x \d+ = )?"
        rf"{width * height} pixels, more than PIL.Image.MAX_IMAGE_PIXELS "
        r"\(89478485\); it may be a decompression bomb .* raise the limit",
    ):
        _read_one(path)


@settings(max_examples=examples(60), **SETTINGS)
@given(
    st.sampled_from(["PNG", "JPEG", "GIF", "TIFF", "BMP", "WEBP"]),
    st.one_of(st.integers(0, 80), st.integers(0, 70_000)),
    st.one_of(st.integers(0, 80), st.integers(0, 70_000)),
)
def test_declared_sizes_never_decode_more_than_the_limit(folder, fmt, width, height):
    """With the limit at 4096 pixels, any declared size either reads (at most
    4096 pixels) or fails clearly; nothing larger is ever decoded."""
    if fmt == "WEBP":  # VP8L holds 14 bits per side
        width, height = max(1, width % 16_384), max(1, height % 16_384)
    elif fmt in ("JPEG", "GIF", "TIFF"):  # 16-bit fields
        width, height = min(width, 65_535), min(height, 65_535)
    data = crafted(fmt, width, height)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Image, "MAX_IMAGE_PIXELS", 4096)
        load = ImageFile.ImageFile.load

        def bounded(self):
            assert self.size[0] * self.size[1] <= 4096, f"decoding {self.size}"
            return load(self)

        mp.setattr(ImageFile.ImageFile, "load", bounded)
        check_file(_write(folder, data, f"declared.{fmt.lower()}"), fmt)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "TIFF", "BMP"])
@pytest.mark.parametrize(("width", "height"), [(0, 5), (5, 0), (0, 0)])
def test_zero_sized_images_give_an_image_or_a_clear_error(folder, fmt, width, height):
    result = check_file(_write(folder, crafted(fmt, width, height), f"zero.{fmt}"))
    if isinstance(result, Exception):
        assert "cannot read image file" in str(result) or "empty image" in str(result)


def test_a_raised_limit_reads_a_large_declared_image(folder, monkeypatch):
    # The advice in the message works: a genuine image above the limit reads
    # once PIL.Image.MAX_IMAGE_PIXELS is raised.
    path = _write(folder, _encode(Image.new("RGB", (80, 60)), "PNG"), "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4000)
    with pytest.raises(UnreadableImageError, match=r"declares 80 x 60 = 4800 pixels"):
        _read_one(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4800)
    assert _read_one(path).shape == (3, 8, 8)


def test_extractor_on_error_warn_skips_a_decompression_bomb(folder):
    good = _write(folder, seeds()["PNG", "RGB"], "good.png")
    bomb = _write(folder, crafted("JPEG", 12_000, 12_000), "bomb12k.jpg")
    ext = PretrainedFeatureExtractor(
        _seeded(TinyConvNet),
        preprocessing={"resize_size": 8, "crop_size": 8},
        device="cpu",
        on_error="warn",
    ).fit([good])
    with pytest.warns(UserWarning, match=r"1 of 2 images could not be read"):
        features = ext.transform([good, bomb])
    assert np.isfinite(features[0]).all() and np.isnan(features[1]).all()


# -- odd modes and multi-frame files ----------------------------------------------------
@pytest.mark.parametrize(
    ("key", "dtype"),
    [
        (("PNG", "I;16"), torch.float32),
        (("TIFF", "I;16"), torch.float32),
        (("TIFF", "F"), torch.float32),
        (("JPEG", "CMYK"), torch.uint8),
        (("TIFF", "CMYK"), torch.uint8),
        (("PNG", "P+transparency"), torch.uint8),
        (("GIF", "P+transparency"), torch.uint8),
        (("PNG", "LA"), torch.uint8),
        (("PNG", "1"), torch.uint8),
    ],
)
def test_odd_modes_read_as_three_channel_images(folder, key, dtype):
    image = as_image_sequence([_write(folder, seeds()[key], "odd.bin")])[0]
    assert image.shape == (3, 9, 11) and image.dtype == dtype


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "TIFF", "WEBP"])
def test_multi_frame_files_give_their_first_frame(folder, fmt):
    many = as_image_sequence([_write(folder, seeds()[fmt, "2 frames"], "a.bin")])[0]
    one = as_image_sequence([_write(folder, seeds()[fmt, "RGB"], "b.bin")])[0]
    assert many.shape == one.shape == (3, 9, 11)
    if fmt in ("PNG", "TIFF"):  # lossless, same palette: the same pixels
        torch.testing.assert_close(many, one)


# -- through the estimators -----------------------------------------------------------
def _seeded(cls, **kwargs):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return cls(**kwargs)


PRE8 = {"resize_size": 8, "crop_size": 8}


@settings(max_examples=examples(15), **SETTINGS)
@given(damaged_files())
def test_estimators_fit_or_name_the_damaged_file(folder, damaged):
    _description, data = damaged
    good = [_write(folder, seeds()["PNG", "RGB"], f"good{i}.png") for i in range(3)]
    bad = _write(folder, data, "damaged.bin")
    X, y = [good[0], bad, good[1], good[2]], [0, 1, 0, 1]
    for est in (
        PretrainedFeatureExtractor(
            _seeded(TinyConvNet), preprocessing=PRE8, device="cpu"
        ),
        FineTunedClassifier(
            _seeded(TinyConvNet),
            preprocessing=PRE8,
            device="cpu",
            max_epochs=1,
            batch_size=4,
            augment="off",
        ),
    ):
        try:
            if isinstance(est, PretrainedFeatureExtractor):
                out = est.fit(X).transform(X)
                assert out.shape == (4, 8) and np.isfinite(out).all()
            else:
                est.fit(X, y)
                assert est.predict(X).shape == (4,)
        except Exception as exc:
            assert_clear_error(exc)
            assert str(exc).startswith("X[1]") and "damaged.bin" in str(exc)
            event(f"{type(est).__name__}: {type(exc).__name__}")


# -- label arrays -----------------------------------------------------------------------
LABEL_VALUES = st.one_of(
    st.integers(-3, 3),
    st.sampled_from(["a", "b", "1", ""]),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([0.0, 1.0, 0.5, np.nan]),
    st.booleans(),
    st.none(),
    st.sampled_from([1j, pd.NA, pd.NaT, np.int64(2), np.float32(1.0), b"x"]),
    st.sampled_from([{"a": 1}, (1, 2), [0]]),
)


@st.composite
def label_arrays(draw, n=6):
    """``y`` of ``n`` entries drawn from every kind of value, in a container."""
    kind = draw(st.sampled_from(["mixed", "uniform", "clean"]))
    if kind == "clean":
        values = draw(st.lists(st.sampled_from([0, 1, 2]), min_size=n, max_size=n))
    elif kind == "uniform":  # one kind of value, often plausible labels
        element = draw(
            st.sampled_from(
                [
                    st.integers(0, 2),
                    st.sampled_from(["x", "y"]),
                    st.booleans(),
                    st.floats(0, 3, width=32),
                    st.sampled_from([0.0, 1.0, np.nan]),
                ]
            )
        )
        values = draw(st.lists(element, min_size=n, max_size=n))
    else:
        values = draw(st.lists(LABEL_VALUES, min_size=n, max_size=n))
    container = draw(
        st.sampled_from(["list", "object array", "array", "Series", "2-D"])
    )
    if container == "list":
        return values
    if container == "object array":
        out = np.empty(n, dtype=object)
        out[:] = values
        return out
    if container == "Series":
        try:
            return pd.Series(values)
        except Exception:
            return values
    if container == "2-D":  # an indicator matrix, or not
        rows = draw(
            st.lists(
                st.sampled_from([0, 1, 1, 0, 2, np.nan, None, True, "a"]),
                min_size=2 * n,
                max_size=2 * n,
            )
        )
        return np.array(rows, dtype=object).reshape(n, 2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(values)
    except Exception:  # numpy cannot make an array of these: a list then
        return values


X_TABLE = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
TABULAR = dict(preprocessing="passthrough", augment="off", max_epochs=1, device="cpu")


@settings(max_examples=examples(100), **SETTINGS)
@given(label_arrays(), st.sampled_from(["classifier", "regressor", "extractor"]))
def test_label_arrays_fit_or_give_a_clear_error_naming_y(y, which):
    cls = {
        "classifier": FineTunedClassifier,
        "regressor": FineTunedRegressor,
        "extractor": PretrainedFeatureExtractor,
    }[which]
    params = TABULAR if which != "extractor" else {"preprocessing": "passthrough"}
    est = cls(_seeded(TinyMLP), **params)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X_TABLE, y)
    except Exception as exc:
        assert which != "extractor", f"the extractor ignores y: {exc!r}"
        assert_clear_error(exc, ("sktransfer", "sklearn"))
        message = str(exc)
        documented = "needs samples of at least 2 classes in the data"
        assert re.search(r"\by\b", message) or documented in message, message
        event(f"{which}: {type(exc).__name__}: {message[:40]}")
        return
    event(f"{which}: fitted")
    if which != "extractor":
        pred = est.predict(X_TABLE)
        assert len(pred) == len(X_TABLE)
