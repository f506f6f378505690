"""Property-based tests of the input layer (hypothesis).

Any container (list of arrays or tensors, ndarray, tensor, list of PIL
images, DataFrame rows), dtype, shape and PIL mode either gives finite float32
images of the requested size (features of the right shape through the
extractor), or one of sktransfer's clear errors: a ValueError, TypeError or
FileNotFoundError raised by sktransfer's own code (or scikit-learn's input
validation), never a bare error from deep inside torch, numpy or PIL.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from sktransfer import PretrainedFeatureExtractor
from sktransfer._inputs import as_image_sequence
from sktransfer._preprocessing import Preprocessing
from sktransfer._testing import TinyConvNet

CLEAR_ERRORS = (ValueError, TypeError, FileNotFoundError)
PRE = Preprocessing(resize_size=8, crop_size=8)
DTYPES = ["uint8", "int16", "int64", "float32", "float64", "bool"]
MODES = {"L": 1, "LA": 2, "P": 1, "RGB": 3, "RGBA": 4, "I;16": 2, "F": 4, "CMYK": 4}
SETTINGS = dict(
    deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def assert_clear_error(exc, allowed_sources=("sktransfer",)):
    """``exc`` is a clear error raised by sktransfer's own code."""
    assert isinstance(exc, CLEAR_ERRORS), f"{type(exc).__name__}: {exc}"
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    source = Path(tb.tb_frame.f_code.co_filename).parts
    assert any(name in source for name in allowed_sources), (
        f"{type(exc).__name__} raised in {tb.tb_frame.f_code.co_filename}: {exc}"
    )


@st.composite
def pixels(draw):
    """An array of any dtype and shape (1-5 axes of 0-6, often image-like:
    (n, H, W) or (n, H, W, C) with 0-5 channels), values mostly valid."""
    image_like = st.tuples(
        st.integers(1, 3),
        st.integers(1, 6),
        st.integers(1, 6),
        st.sampled_from([(), (1,), (3,), (4,), (0,), (2,), (5,)]),
    )
    shape = tuple(
        draw(
            st.one_of(
                st.lists(st.integers(0, 6), min_size=1, max_size=5),
                image_like.map(lambda s: s[:3] + s[3]),
            )
        )
    )
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    kind = draw(st.sampled_from(["valid", "valid", "too high", "negative", "nan"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind == "f":
        values = rng.random(shape)
        if values.size and kind != "valid":
            values.flat[0] = {"too high": 1.5, "negative": -0.5, "nan": np.nan}[kind]
        return values.astype(dtype)
    high = 256 if kind == "valid" or dtype == np.uint8 else 1000
    low = -3 if kind == "negative" and dtype != np.uint8 else 0
    return rng.integers(low, high, shape).astype(dtype)


@st.composite
def pil_images(draw):
    mode = draw(st.sampled_from(sorted(MODES)))
    size = (draw(st.integers(0, 6)), draw(st.integers(0, 6)))
    data = draw(
        st.binary(
            min_size=size[0] * size[1] * MODES[mode],
            max_size=size[0] * size[1] * MODES[mode],
        )
    )
    if mode == "P":
        return Image.frombytes("L", size, data).convert("P")
    return Image.frombytes(mode, size, data)


@st.composite
def inputs(draw):
    """``(X, image_shape)`` in one of the containers users pass."""
    container = draw(
        st.sampled_from(
            [
                "ndarray",
                "tensor",
                "list of arrays",
                "list of tensors",
                "list of PIL",
                "DataFrame rows",
            ]
        )
    )
    if container == "list of PIL":
        return draw(st.lists(pil_images(), min_size=0, max_size=3)), None
    array = draw(pixels())
    if container == "ndarray":
        return array, None
    tensor = torch.from_numpy(array)
    if array.ndim == 4 and draw(st.booleans()):
        tensor = tensor.permute(0, 3, 1, 2)  # channels first, as tensors are
    if container == "tensor":
        return tensor, None
    if container == "list of arrays":
        return list(array), None
    if container == "list of tensors":
        return list(tensor), None
    # Flattened rows; image_shape right, or drawn at random.
    rows = (
        array.reshape(array.shape[0], int(np.prod(array.shape[1:])))
        if array.ndim > 1
        else array
    )
    image_shape = draw(
        st.one_of(
            st.just(array.shape[1:]),
            st.lists(st.integers(0, 6), min_size=1, max_size=3).map(tuple),
        )
    )
    return pd.DataFrame(rows), image_shape


@settings(max_examples=300, **SETTINGS)
@given(inputs())
def test_input_layer_gives_images_or_a_clear_error(X_and_shape):
    X, image_shape = X_and_shape
    try:
        images = as_image_sequence(X, image_shape=image_shape)
        out = [PRE.apply(images[i]) for i in range(len(images))]
    except Exception as exc:
        assert_clear_error(exc)
        event(f"{type(exc).__name__}: {str(exc)[:40]}")
        return
    event("images")
    assert len(out) == len(X) > 0
    for image in out:
        assert image.shape == (3, 8, 8) and image.dtype == torch.float32
        assert torch.isfinite(image).all()


@pytest.fixture(scope="module")
def extractor():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        backbone = TinyConvNet()
    return PretrainedFeatureExtractor(
        backbone,
        preprocessing={"resize_size": 8, "crop_size": 8},
        device="cpu",
        batch_size=2,
    )


@settings(max_examples=25, **SETTINGS)
@given(inputs())
def test_extractor_gives_features_or_a_clear_error(extractor, X_and_shape):
    X, image_shape = X_and_shape
    extractor.set_params(image_shape=image_shape)
    try:
        features = extractor.fit_transform(X)
    except Exception as exc:
        assert_clear_error(exc, ("sktransfer", "sklearn"))
        event(type(exc).__name__)
        return
    event("features")
    assert features.shape == (len(X), 8) and features.dtype == np.float32
    assert np.isfinite(features).all()


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    # PIL's own conversion of "I;16" images clips at 255 (all but black
    # becomes white); sktransfer scales 0-65535 to [0, 1].
    gray8 = np.random.default_rng(0).integers(0, 256, (5, 7), dtype=np.uint8)
    path = tmp_path / "gray16.png"
    Image.fromarray(gray8.astype(np.uint16) * 257).save(path)
    assert Image.open(path).mode == "I;16"
    image = as_image_sequence([str(path)])[0]
    assert image.dtype == torch.float32 and image.shape == (3, 5, 7)
    torch.testing.assert_close(
        image, torch.from_numpy(gray8 / 255.0).float().expand(3, -1, -1)
    )
