"""Every accepted form of X gives the same features; every bad X a clear error."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.base import clone

from sktransfer import PretrainedFeatureExtractor
from sktransfer._inputs import as_image_sequence, convert_channels
from sktransfer._testing import TinyConvNet, assert_allclose_float32, save_images

SMALL = {"resize_size": 16, "crop_size": 16}


def seeded(module_cls, **kwargs):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return module_cls(**kwargs)


@pytest.fixture(scope="module")
def images():
    """Five uint8 RGB images (N, H, W, 3), 24 x 20 pixels."""
    return np.random.default_rng(1).integers(0, 256, (5, 24, 20, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def paths(images, tmp_path_factory):
    return save_images(tmp_path_factory.mktemp("png"), images)


@pytest.fixture(scope="module")
def extractor():
    return PretrainedFeatureExtractor(
        seeded(TinyConvNet), preprocessing=SMALL, device="cpu"
    )


@pytest.fixture(scope="module")
def expected(extractor, images):
    return clone(extractor).fit_transform(images)


def flat(images):
    return images.reshape(len(images), -1)


EXACT_FORMS = {
    "list_of_str_paths": lambda im, paths: list(paths),
    "list_of_pathlib": lambda im, paths: [Path(p) for p in paths],
    "tuple_of_paths": lambda im, paths: tuple(paths),
    "object_array_of_paths": lambda im, paths: np.asarray(paths, dtype=object),
    "series_of_paths": lambda im, paths: pd.Series(paths, name="path"),
    "dataframe_one_path_column": lambda im, paths: pd.DataFrame({"path": paths}),
    "list_of_pil": lambda im, paths: [Image.fromarray(i) for i in im],
    "array_nhwc_uint8": lambda im, paths: im,
    "array_nhwc_int64": lambda im, paths: im.astype(np.int64),
    "list_of_hwc_arrays": lambda im, paths: list(im),
    "tensor_nchw_uint8": lambda im, paths: torch.from_numpy(im).permute(0, 3, 1, 2),
    "list_of_chw_tensors": lambda im, paths: list(
        torch.from_numpy(im).permute(0, 3, 1, 2)
    ),
    "series_of_pil": lambda im, paths: pd.Series([Image.fromarray(i) for i in im]),
}


@pytest.mark.parametrize("make_X", EXACT_FORMS.values(), ids=EXACT_FORMS.keys())
def test_every_input_form_gives_the_same_features(
    make_X, extractor, images, paths, expected
):
    X = make_X(images, paths)
    features = clone(extractor).fit(X).transform(X)
    assert features.dtype == np.float32
    np.testing.assert_array_equal(features, expected)


@pytest.mark.parametrize("container", ["numpy", "dataframe", "tensor"])
@pytest.mark.parametrize("image_shape", [(24, 20, 3), [24, 20, 3]])
def test_flattened_rows_with_image_shape(
    container, image_shape, extractor, images, expected
):
    X = flat(images)
    if container == "dataframe":
        X = pd.DataFrame(X, columns=[f"px{i}" for i in range(X.shape[1])])
    elif container == "tensor":
        X = torch.from_numpy(X)
    est = clone(extractor).set_params(image_shape=image_shape).fit(X)
    np.testing.assert_array_equal(est.transform(X), expected)
    assert est.n_features_in_ == 24 * 20 * 3
    if container == "dataframe":
        assert list(est.feature_names_in_[:2]) == ["px0", "px1"]


def test_flattened_grayscale_rows_with_2d_image_shape(extractor, images):
    gray = images[..., 0]
    est = clone(extractor).set_params(image_shape=(24, 20))
    np.testing.assert_array_equal(
        est.fit_transform(flat(gray)), clone(extractor).fit_transform(gray)
    )


# Float pixels are resized in float, uint8 pixels in uint8 (rounded to
# integers), so the two differ by up to about 1/255 per pixel after resizing.
# Measured on these images: at most 6e-4 on features of magnitude up to 0.3.
FLOAT_ATOL = 2e-3

FLOAT_FORMS = {
    "array_float64": lambda im: im / 255.0,
    "array_float32": lambda im: (im / 255.0).astype(np.float32),
    "list_of_float_arrays": lambda im: list(im / 255.0),
    "tensor_float32": lambda im: torch.from_numpy(im).permute(0, 3, 1, 2) / 255.0,
}


@pytest.mark.parametrize("make_X", FLOAT_FORMS.values(), ids=FLOAT_FORMS.keys())
def test_float_pixels_in_0_1_are_close_to_uint8(make_X, extractor, images, expected):
    features = clone(extractor).fit_transform(make_X(images))
    assert features.dtype == np.float32
    np.testing.assert_allclose(features, expected, rtol=0, atol=FLOAT_ATOL)


def test_float_pixels_without_resize_match_uint8(images):
    est = PretrainedFeatureExtractor(
        seeded(TinyConvNet), preprocessing={"resize_size": None, "crop_size": None}
    )
    assert_allclose_float32(
        est.fit_transform(images / 255.0), est.fit_transform(images)
    )


@pytest.fixture(scope="module")
def gray_expected(extractor, images):
    gray = images[..., 0]
    return clone(extractor).fit_transform(np.repeat(gray[..., None], 3, axis=-1))


GRAY_FORMS = {
    "array_nhw": lambda g, folder: g,
    "array_nhw1": lambda g, folder: g[..., None],
    "tensor_nhw": lambda g, folder: torch.from_numpy(g),
    "tensor_n1hw": lambda g, folder: torch.from_numpy(g)[:, None],
    "list_of_hw_arrays": lambda g, folder: list(g),
    "list_of_pil_L": lambda g, folder: [Image.fromarray(i, mode="L") for i in g],
    "gray_png_paths": lambda g, folder: _save_all(g, folder, "L"),
}


def _save_all(images, folder, mode):
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{mode}{i}.png"
        Image.fromarray(image).convert(mode).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("make_X", GRAY_FORMS.values(), ids=GRAY_FORMS.keys())
def test_grayscale_is_repeated_to_rgb(
    make_X, extractor, images, gray_expected, tmp_path
):
    X = make_X(images[..., 0], tmp_path)
    np.testing.assert_array_equal(clone(extractor).fit_transform(X), gray_expected)


def test_rgba_alpha_is_dropped(extractor, images, expected, tmp_path):
    alpha = np.random.default_rng(2).integers(
        0, 256, images.shape[:3] + (1,), dtype=np.uint8
    )
    rgba = np.concatenate([images, alpha], axis=-1)
    paths = []
    for i, image in enumerate(rgba):
        paths.append(tmp_path / f"rgba{i}.png")
        Image.fromarray(image, mode="RGBA").save(paths[-1])
    assert Image.open(paths[0]).mode == "RGBA"
    for X in (
        rgba,
        list(rgba),
        [Image.fromarray(i, mode="RGBA") for i in rgba],
        paths,
        torch.from_numpy(rgba).permute(0, 3, 1, 2),
    ):
        np.testing.assert_array_equal(clone(extractor).fit_transform(X), expected)


def test_palette_png_is_converted_to_rgb(extractor, images, tmp_path):
    palette = [Image.fromarray(i).quantize(colors=16) for i in images]
    assert palette[0].mode == "P"
    paths = []
    for i, image in enumerate(palette):
        paths.append(tmp_path / f"p{i}.png")
        image.save(paths[-1])
    assert Image.open(paths[0]).mode == "P"
    rgb = np.stack([np.asarray(image.convert("RGB")) for image in palette])
    assert not np.array_equal(rgb, images)  # quantizing really changed pixels
    want = clone(extractor).fit_transform(rgb)
    np.testing.assert_array_equal(clone(extractor).fit_transform(paths), want)
    np.testing.assert_array_equal(clone(extractor).fit_transform(palette), want)


def test_images_of_different_sizes_in_one_list(extractor):
    rng = np.random.default_rng(3)
    sizes = [(24, 20), (40, 17), (16, 16), (31, 64)]
    images = [rng.integers(0, 256, s + (3,), dtype=np.uint8) for s in sizes]
    est = clone(extractor).set_params(batch_size=3)
    features = est.fit_transform(images)
    assert features.shape == (4, 8)
    for i, image in enumerate(images):
        assert_allclose_float32(features[i], est.transform([image])[0])


def test_images_of_different_sizes_without_crop(extractor):
    images = [np.zeros((16, 16, 3), np.uint8), np.zeros((16, 24, 3), np.uint8)]
    est = clone(extractor).set_params(
        preprocessing={"resize_size": 16, "crop_size": None}
    )
    est.fit(images)  # fit reads only the first image
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Images in X have different sizes after preprocessing ([(3, 16, 16), "
            "(3, 16, 24)]); set preprocessing={'resize_size': S, 'crop_size': S} "
            "so that every image gets the same size."
        ),
    ):
        est.transform(images)
    assert est.set_params(batch_size=1).transform(images).shape == (2, 8)


def test_one_channel_backbone_gets_pil_luma_of_rgb(images):
    est = PretrainedFeatureExtractor(
        seeded(TinyConvNet, in_channels=1),
        preprocessing={**SMALL, "channels": 1, "mean": (0.5,), "std": (0.25,)},
    )
    luma = np.stack([np.asarray(Image.fromarray(i).convert("L")) for i in images])
    np.testing.assert_array_equal(est.fit_transform(images), est.fit_transform(luma))
    # an RGB image with three equal channels is its gray image, exactly
    gray3 = np.repeat(luma[..., None], 3, axis=-1)
    np.testing.assert_array_equal(est.transform(gray3), est.transform(luma))


def test_convert_channels_float_luma_weights():
    image = torch.tensor([1.0, 0.0, 0.0]).reshape(3, 1, 1).expand(3, 2, 2)
    assert_allclose_float32(convert_channels(image, 1), np.full((1, 2, 2), 0.299))


def test_content_keys_ignore_the_container(images, paths):
    as_array = as_image_sequence(images)
    as_pil = as_image_sequence([Image.fromarray(i) for i in images])
    as_tensor = as_image_sequence(torch.from_numpy(images).permute(0, 3, 1, 2))
    assert as_array.key(0) == as_pil.key(0) == as_tensor.key(0)
    assert as_array.key(0) != as_array.key(1)
    as_paths = as_image_sequence(paths)
    assert as_paths.key(0) == as_image_sequence([Path(paths[0])]).key(0)
    assert as_paths.key(0) != as_paths.key(1)


# -- errors -----------------------------------------------------------------

BAD_X = [
    ([], ValueError, "X is empty: got 0 images; at least one is required"),
    (np.zeros((0, 8, 8, 3), np.uint8), ValueError, "X is empty: got 0 images"),
    (torch.zeros((0, 3, 8, 8)), ValueError, "X is empty: got 0 images"),
    (
        np.full((2, 8, 8, 3), np.nan),
        ValueError,
        "X contains NaN or infinite pixel values",
    ),
    (
        np.full((2, 8, 8, 3), np.inf, np.float32),
        ValueError,
        "X contains NaN or infinite pixel values",
    ),
    (
        np.full((2, 8, 8, 3), 2.0),
        ValueError,
        re.escape("X has float pixels in [2, 2]; float images must lie in [0, 1]"),
    ),
    (
        np.full((2, 8, 8, 3), -0.5),
        ValueError,
        re.escape("X has float pixels in [-0.5, -0.5]"),
    ),
    (
        np.full((2, 8, 8, 3), 300),
        ValueError,
        re.escape(
            "X has integer pixels in [300, 300]; integer images must lie in [0, 255]"
        ),
    ),
    (
        np.zeros((2, 8, 8, 5), np.uint8),
        ValueError,
        re.escape(
            "X has 5 channels in its last axis (shape (2, 8, 8, 5)); expected 1, 3 or 4"
        ),
    ),
    (
        np.zeros((2, 3, 8, 8), np.uint8),
        ValueError,
        "X has 8 channels in its last axis.*pass torch.from_numpy",
    ),
    (
        torch.zeros((2, 2, 8, 8)),
        ValueError,
        re.escape(
            "X has 2 channels in axis 1 (shape (2, 2, 8, 8)); expected 1, 3 or 4"
        ),
    ),
    (
        [np.zeros((8, 8, 2), np.uint8)],
        ValueError,
        re.escape("X[0] has 2 channels (shape (8, 8, 2)); expected 1, 3 or 4"),
    ),
    (
        [np.zeros((1, 8, 8, 3), np.uint8)],
        ValueError,
        re.escape("X[0] has shape (1, 8, 8, 3); each image must be 2-D"),
    ),
    (
        np.zeros((2, 1, 8, 8, 3), np.uint8),
        ValueError,
        re.escape("X as an array must be (n_images, H, W), (n_images, H, W, C)"),
    ),
    (
        torch.zeros((2, 1, 3, 8, 8)),
        ValueError,
        re.escape("X as a tensor must be (n_images, C, H, W) or (n_images, H, W)"),
    ),
    (
        np.zeros((2, 192), np.uint8),
        ValueError,
        re.escape(
            "X is 2-D with shape (2, 192); 2-D input is read as flattened pixel "
            "rows and needs image_shape=(H, W) or (H, W, C)"
        ),
    ),
    (
        np.zeros((2, 8, 8, 3), bool),
        TypeError,
        "X has dtype bool; pixel values must be integers",
    ),
    (np.zeros((2, 8, 8, 3), complex), TypeError, "X has dtype complex128"),
    (
        "images/cat.png",
        TypeError,
        re.escape(
            "X must be a sequence of images, got a single path "
            "'images/cat.png'; wrap it in a list: ['images/cat.png']"
        ),
    ),
    (42, TypeError, "X must be a sequence of image paths.*got an object of type int"),
    ([1, 2], TypeError, "X\\[0\\] has unsupported type int; each image must be"),
    (
        [np.zeros((8, 8, 3), np.uint8), Image.new("RGB", (8, 8))],
        TypeError,
        re.escape("X mixes image types: X[0] is a ndarray but X[1] is a Image"),
    ),
]


@pytest.mark.parametrize(
    ("X", "error", "match"), BAD_X, ids=[m[:30] for _, _, m in BAD_X]
)
def test_bad_input_is_refused_at_fit(X, error, match, extractor):
    with pytest.raises(error, match=match):
        clone(extractor).fit(X)


def test_images_of_a_list_are_checked_when_read(extractor):
    X = [np.full((8, 8, 3), 0.5), np.full((8, 8, 3), 1.5)]
    est = clone(extractor).fit(X)  # fit reads only the first image
    with pytest.raises(
        ValueError,
        match=re.escape(
            "X[1] has float pixels in [1.5, 1.5]; float images must lie in [0, 1]"
        ),
    ):
        est.transform(X)


def test_bad_input_is_refused_at_transform(extractor, images):
    est = clone(extractor).fit(images)
    with pytest.raises(ValueError, match="X contains NaN or infinite pixel values"):
        est.transform(np.full((1, 8, 8, 3), np.nan))


def test_wrong_image_shape(extractor, images):
    est = clone(extractor).set_params(image_shape=(24, 24, 3))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "image_shape=(24, 24, 3) does not match X's 1440 values per row"
        ),
    ):
        est.fit(flat(images))


@pytest.mark.parametrize("image_shape", [(24,), (24, 20, 2), "24x20", (0, 20)])
def test_invalid_image_shape_parameter(image_shape, extractor, images):
    est = clone(extractor).set_params(image_shape=image_shape)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"PretrainedFeatureExtractor: image_shape must be None, (H, W) or "
            f"(H, W, C) with C in (1, 3, 4), got {image_shape!r}"
        ),
    ):
        est.fit(flat(images))


def test_missing_file(extractor, paths, tmp_path):
    missing = str(tmp_path / "missing.png")
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"X[1]: no such image file: {missing!r}")
    ):
        clone(extractor).fit([paths[0], missing])
