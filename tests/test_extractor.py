"""PretrainedFeatureExtractor: equivalence with torchvision, sklearn integration,
parameters, pooling, runtime options and unreadable images."""

import copy
import pickle
import re

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from torch import nn

from sktransfer import PretrainedFeatureExtractor, register_backbone
from sktransfer._preprocessing import Preprocessing
from sktransfer._testing import (
    TinyConvNet,
    TinyMLP,
    assert_allclose_float32,
    make_shapes_dataset,
)
from sktransfer.backbones import unregister_backbone

SMALL = {"resize_size": 16, "crop_size": 16}


def seeded(module_cls, seed=0, **kwargs):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return module_cls(**kwargs)


def write_images(folder, sizes, seed=0, suffix="png"):
    rng = np.random.default_rng(seed)
    paths = []
    for i, (h, w) in enumerate(sizes):
        path = folder / f"img{i}_{h}x{w}.{suffix}"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


class TinyTokenNet(nn.Module):
    """A transformer-shaped toy: 4x4 patches -> tokens (N, 1 + T, D) with a
    class token first, an encoder on the tokens, a head on the class token."""

    def __init__(self, dim=6):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.encoder = nn.Sequential(nn.Linear(dim, dim), nn.GELU())
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1)
        return self.head(self.encoder(tokens)[:, 0])


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).integers(0, 256, (7, 24, 20, 3), dtype=np.uint8)


@pytest.fixture
def extractor(tiny_convnet):
    return PretrainedFeatureExtractor(tiny_convnet, preprocessing=SMALL, device="cpu")


def hooked_outputs(module, x, names):
    """Outputs of the named submodules in one plain forward pass."""
    module = copy.deepcopy(module).eval()
    modules = dict(module.named_modules())
    out = {}
    handles = [
        modules[n].register_forward_hook(lambda m, a, o, n=n: out.__setitem__(n, o))
        for n in names
    ]
    with torch.no_grad():
        module(x)
    for handle in handles:
        handle.remove()
    return out


def preprocessed(extractor, images):
    return torch.stack(
        [
            extractor.preprocessing_.apply(torch.from_numpy(i).permute(2, 0, 1))
            for i in images
        ]
    )


# -- equivalence with a hand-written torchvision forward -------------------


@pytest.fixture(scope="module")
def torchvision_resnet18(resnet18_checkpoint):
    """torchvision's resnet18 with DEFAULT weights (from the hub cache file),
    classifier replaced by Identity, in eval mode; and its transforms."""
    from torchvision.models import ResNet18_Weights, resnet18

    weights = ResNet18_Weights.DEFAULT
    model = resnet18(weights=weights)
    model.fc = nn.Identity()
    return model.eval(), weights.transforms()


def reference_inputs(paths, transforms):
    return torch.stack([transforms(Image.open(p).convert("RGB")) for p in paths])


def test_default_resnet18_matches_torchvision(torchvision_resnet18, tmp_path):
    # Short side 256 = torchvision's resize size: no resampling, so the only
    # differences are float32 summation order.
    paths = write_images(tmp_path, [(256, 256), (256, 300), (320, 256)])
    model, transforms = torchvision_resnet18
    with torch.no_grad():
        expected = model(reference_inputs(paths, transforms)).numpy()

    extractor = PretrainedFeatureExtractor("resnet18", device="cpu").fit(paths)
    features = extractor.transform(paths)

    assert extractor.weights_id_ == "torchvision:ResNet18_Weights.IMAGENET1K_V1"
    assert extractor.preprocessing_ == Preprocessing(
        resize_size=256, crop_size=224, interpolation="bilinear"
    )
    assert extractor.backbone_name_ == "resnet18"
    assert features.shape == (3, 512) == (3, extractor.n_features_out_)
    assert features.dtype == np.float32
    assert_allclose_float32(features, expected, ulps=1024)


def test_resized_resnet18_matches_torchvision_up_to_rounding(
    torchvision_resnet18, tmp_path
):
    # torchvision resizes PIL images with PIL, sktransfer resizes uint8 tensors;
    # both round to uint8 and differ by 1 level on < 1% of pixels. Measured:
    # max |difference| 1.4e-4 x max |feature|.
    paths = write_images(tmp_path, [(32, 24), (20, 28), (30, 30)], seed=1)
    model, transforms = torchvision_resnet18
    with torch.no_grad():
        expected = model(reference_inputs(paths, transforms)).numpy()
    features = PretrainedFeatureExtractor("resnet18", device="cpu").fit_transform(paths)
    assert np.abs(features - expected).max() <= 1e-3 * np.abs(expected).max()


def test_resnet18_layer3_matches_create_feature_extractor(
    torchvision_resnet18, tmp_path
):
    from torchvision.models.feature_extraction import create_feature_extractor

    paths = write_images(tmp_path, [(256, 256), (300, 256)], seed=2)
    model, transforms = torchvision_resnet18
    body = create_feature_extractor(model, {"layer3": "out"})
    with torch.no_grad():
        expected = body(reference_inputs(paths, transforms))["out"].mean(dim=(2, 3))

    extractor = PretrainedFeatureExtractor("resnet18", layer="layer3", device="cpu")
    features = extractor.fit_transform(paths)
    assert features.shape == (2, 256)
    assert_allclose_float32(features, expected, ulps=1024)
    assert extractor.get_feature_names_out()[-1] == "layer3_255"


# -- scikit-learn integration -------------------------------------------------


class TinyMLPImages(nn.Module):
    """A second tiny image backbone, of another class than TinyConvNet."""

    def __init__(self, width=5):
        super().__init__()
        self.body = nn.Sequential(
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, width), nn.ReLU()
        )
        self.head = nn.Linear(width, 2)

    def forward(self, x):
        return self.head(self.body(x))


@pytest.fixture(scope="module")
def tiny_backbones():
    """Two registered backbones of different classes and widths."""
    register_backbone(
        "test_tiny_conv", lambda weights: TinyConvNet(width=4), preprocessing=SMALL
    )
    register_backbone(
        "test_tiny_mlp", lambda weights: TinyMLPImages(width=5), preprocessing=SMALL
    )
    yield
    unregister_backbone("test_tiny_conv")
    unregister_backbone("test_tiny_mlp")


@pytest.fixture(scope="module")
def shapes():
    return make_shapes_dataset(n_per_class=8, size=20, random_state=0)


def n_features_scorer(pipeline, X, y):
    """Score = width of the features: shows which backbone each fit used."""
    return pipeline.named_steps["pretrainedfeatureextractor"].n_features_out_


def test_grid_search_over_backbone_and_layer(tiny_backbones, shapes):
    X, y = shapes
    pipe = make_pipeline(
        PretrainedFeatureExtractor(device="cpu"), LogisticRegression(max_iter=200)
    )
    grid = GridSearchCV(
        pipe,
        {
            "pretrainedfeatureextractor__backbone": ["test_tiny_conv", "test_tiny_mlp"],
            "pretrainedfeatureextractor__layer": [None, "body.2"],
        },
        cv=2,
        scoring=n_features_scorer,
        error_score="raise",
    )
    with pytest.raises(
        ValueError,
        match=r"backbone 'test_tiny_conv' has no layer "
        r"'body\.2'",
    ):
        grid.fit(X, y)  # body.2 exists only in test_tiny_mlp

    grid.set_params(
        param_grid=[
            {
                "pretrainedfeatureextractor__backbone": ["test_tiny_conv"],
                "pretrainedfeatureextractor__layer": [None, ["block1", "block2"]],
            },
            {
                "pretrainedfeatureextractor__backbone": ["test_tiny_mlp"],
                "pretrainedfeatureextractor__layer": [None, ["body.1", "body.2"]],
            },
        ]
    )
    grid.fit(X, y)
    scores = dict(
        zip(
            zip(
                grid.cv_results_["param_pretrainedfeatureextractor__backbone"],
                map(str, grid.cv_results_["param_pretrainedfeatureextractor__layer"]),
            ),
            grid.cv_results_["mean_test_score"],
        )
    )
    assert scores == {
        ("test_tiny_conv", "None"): 4,
        ("test_tiny_conv", "['block1', 'block2']"): 8,
        ("test_tiny_mlp", "None"): 5,
        ("test_tiny_mlp", "['body.1', 'body.2']"): 48 + 5,
    }
    best = grid.best_estimator_.named_steps["pretrainedfeatureextractor"]
    assert best.backbone == best.backbone_name_ == "test_tiny_mlp"
    assert isinstance(best.backbone_.body, TinyMLPImages)
    assert grid.predict(X[:3]).dtype == y.dtype


def test_grid_search_over_resnet18_and_a_tiny_backbone(tiny_backbones, shapes):
    X, y = shapes
    pipe = make_pipeline(
        PretrainedFeatureExtractor(
            weights=None,
            preprocessing={"resize_size": 32, "crop_size": 32},
            device="cpu",
        ),
        LogisticRegression(max_iter=200),
    )
    grid = GridSearchCV(
        pipe,
        {"pretrainedfeatureextractor__backbone": ["resnet18", "test_tiny_conv"]},
        cv=2,
        scoring=n_features_scorer,
        error_score="raise",
    )
    grid.fit(X, y)
    assert list(grid.cv_results_["mean_test_score"]) == [512, 4]
    best = grid.best_estimator_.named_steps["pretrainedfeatureextractor"]
    assert type(best.backbone_.body).__name__ == "ResNet"
    assert best.weights_id_ == "random:0"


def test_cross_val_score_with_string_labels(tiny_backbones, shapes):
    X, y = shapes
    assert y.dtype.kind == "U"
    pipe = make_pipeline(
        PretrainedFeatureExtractor("test_tiny_conv", device="cpu", random_state=0),
        LogisticRegression(max_iter=500),
    )
    scores = cross_val_score(pipe, X, y, cv=2)
    assert scores.shape == (2,)
    assert np.all((scores >= 0) & (scores <= 1))
    assert set(pipe.fit(X, y).predict(X)) <= set(y)


def test_constructing_never_fails_nor_validates():
    extractor = PretrainedFeatureExtractor(
        backbone="nope",
        pooling="bad",
        weights="missing.pt",
        device="tpu",
        batch_size=-1,
        layer=3,
    )
    params = extractor.get_params()
    assert params["backbone"] == "nope" and params["pooling"] == "bad"
    assert params["batch_size"] == -1 and params["layer"] == 3
    extractor.set_params(backbone="still-nope", precision="float8")
    assert extractor.precision == "float8"
    assert not hasattr(extractor, "backbone_")


def test_transform_before_fit(extractor, images):
    with pytest.raises(
        NotFittedError,
        match="This PretrainedFeatureExtractor instance is not fitted yet",
    ):
        extractor.transform(images)


def test_fit_returns_self_and_clone_is_unfitted(extractor, images):
    assert extractor.fit(images) is extractor
    cloned = clone(extractor)
    assert not hasattr(cloned, "backbone_")
    assert cloned.get_params().keys() == extractor.get_params().keys()
    assert cloned.backbone is not extractor.backbone  # a deep copy
    assert cloned.preprocessing == SMALL
    np.testing.assert_array_equal(
        cloned.fit_transform(images), extractor.transform(images)
    )


def test_pickle_round_trip(extractor, images):
    expected = extractor.fit_transform(images)
    restored = pickle.loads(pickle.dumps(extractor))
    np.testing.assert_array_equal(restored.transform(images), expected)
    assert restored.device_ == torch.device("cpu")
    assert (
        restored.get_feature_names_out().tolist()
        == extractor.get_feature_names_out().tolist()
    )


def test_unpickling_without_the_saved_device_falls_back_to_cpu(extractor, images):
    expected = extractor.fit_transform(images)
    gpu = copy.deepcopy(extractor).set_params(device="cuda:99")  # as if fitted there
    with pytest.warns(
        UserWarning,
        match=re.escape(
            "PretrainedFeatureExtractor was saved with device='cuda:99', which is "
            "not available here; it is loaded on the CPU."
        ),
    ):
        restored = pickle.loads(pickle.dumps(gpu))
    assert restored.device == "cuda:99" and restored.device_ == torch.device("cpu")
    np.testing.assert_array_equal(restored.transform(images), expected)


def test_set_output_pandas(extractor, images):
    extractor.set_output(transform="pandas")
    frame = extractor.fit_transform(images)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == [f"features_{i}" for i in range(8)]
    assert (frame.dtypes == np.float32).all()
    flat = pd.DataFrame(images.reshape(7, -1), index=list("abcdefg"))
    frame = extractor.set_params(image_shape=(24, 20, 3)).fit_transform(flat)
    assert list(frame.index) == list("abcdefg")


@pytest.mark.parametrize(
    ("layer", "names"),
    [
        (None, ["features_0", "features_7"]),
        ("block1", ["block1_0", "block1_7"]),
        (["block1", "block2"], ["block1+block2_0", "block1+block2_15"]),
    ],
)
def test_get_feature_names_out(layer, names, extractor, images):
    extractor.set_params(layer=layer).fit(images)
    out = extractor.get_feature_names_out()
    assert out.dtype == object
    assert len(out) == extractor.n_features_out_
    assert [out[0], out[-1]] == names


def test_features_are_float32_for_every_input_dtype(extractor, images):
    extractor.fit(images)
    for X in (images, images / 255.0, (images / 255.0).astype(np.float32)):
        assert extractor.transform(X).dtype == np.float32


def test_fit_never_mutates_the_users_module(images):
    module = seeded(TinyConvNet).train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    extractor = PretrainedFeatureExtractor(module, preprocessing=SMALL).fit(images)
    extractor.transform(images)
    after = module.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0)
    assert module.training  # the user's module was not put in eval mode
    assert extractor.backbone is module
    assert not extractor.backbone_.training
    assert extractor.backbone_.body is not module
    assert isinstance(module.fc, nn.Linear)  # the head was dropped on a copy


def test_users_lazy_module_stays_lazy_and_fit_is_seeded():
    X = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    module = TinyMLP()
    rng_state = torch.random.get_rng_state()
    a = PretrainedFeatureExtractor(
        module, preprocessing="passthrough", random_state=3
    ).fit_transform(X)
    b = PretrainedFeatureExtractor(
        module, preprocessing="passthrough", random_state=3
    ).fit_transform(X)
    c = PretrainedFeatureExtractor(
        module, preprocessing="passthrough", random_state=4
    ).fit_transform(X)
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    assert nn.parameter.is_lazy(module.body[0].weight)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert a.shape == (6, 16)


def test_random_weights_are_seeded_and_leave_global_rng_alone(tiny_backbones, images):
    rng_state = torch.random.get_rng_state()
    est = PretrainedFeatureExtractor("test_tiny_conv", weights=None, random_state=1)
    a = est.fit_transform(images)
    assert est.weights_id_ == "random:1"
    np.testing.assert_array_equal(clone(est).fit_transform(images), a)
    b = est.set_params(random_state=2).fit_transform(images)
    assert not np.allclose(a, b)
    assert torch.equal(torch.random.get_rng_state(), rng_state)


def test_passthrough_feeds_2d_floats_to_the_backbone():
    X = np.random.default_rng(0).normal(size=(5, 7))
    module = nn.Sequential(nn.Linear(7, 3))
    with torch.no_grad():
        module[0].weight.copy_(torch.arange(21.0).reshape(3, 7) / 10)
        module[0].bias.fill_(0.5)
    est = PretrainedFeatureExtractor(
        module, preprocessing="passthrough", layer="0"
    ).fit(X)
    expected = X.astype(np.float32) @ (np.arange(21.0).reshape(3, 7).T / 10) + 0.5
    assert_allclose_float32(est.transform(X), expected)
    assert est.n_features_in_ == 7
    with pytest.raises(
        ValueError,
        match="X has 6 features, but PretrainedFeatureExtractor is expecting 7",
    ):
        est.transform(X[:, :6])


def test_refit_on_images_forgets_n_features_in(extractor, images):
    extractor.set_params(image_shape=(24, 20, 3)).fit(images.reshape(7, -1))
    assert extractor.n_features_in_ == 24 * 20 * 3
    extractor.fit(images)
    assert not hasattr(extractor, "n_features_in_")


# -- parameters checked at fit --------------------------------------------------

BAD_PARAMS = [
    (
        {"pooling": "mean"},
        "pooling must be one of ['avg', 'max', 'cls', 'flatten'], got 'mean'",
    ),
    (
        {"precision": "fp16"},
        "precision must be one of ['float32', 'bfloat16', 'float16'], got 'fp16'",
    ),
    ({"on_error": "ignore"}, "on_error must be one of ['raise', 'warn'], got 'ignore'"),
    ({"batch_size": 0}, "batch_size must be an int >= 1, got 0"),
    ({"batch_size": 2.0}, "batch_size must be an int >= 1, got 2.0"),
    ({"batch_size": True}, "batch_size must be an int >= 1, got True"),
    ({"n_jobs": 0}, "n_jobs must be an int >= 1 or None, got 0"),
    ({"verbose": -1}, "verbose must be an int >= 0, got -1"),
    (
        {"device": "gpu"},
        "device must be 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a "
        "torch.device, got 'gpu'",
    ),
    (
        {"device": "cuda:99"},
        "device 'cuda:99' is not available on this machine; use device='auto'",
    ),
]


@pytest.mark.parametrize(
    ("params", "message"), BAD_PARAMS, ids=[str(p) for p, _ in BAD_PARAMS]
)
def test_invalid_parameters_are_refused_at_fit(params, message, extractor, images):
    extractor.set_params(**params)
    with pytest.raises(
        ValueError, match=re.escape(f"PretrainedFeatureExtractor: {message}")
    ):
        extractor.fit(images)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available")
def test_cuda_device_when_unavailable(extractor, images):
    with pytest.raises(
        ValueError,
        match=re.escape(
            "PretrainedFeatureExtractor: device 'cuda' is not available on this "
            "machine; use device='auto' to pick the best available one, or "
            "device='cpu'."
        ),
    ):
        extractor.set_params(device="cuda").fit(images)
    extractor.set_params(device="auto").fit(images[:1])
    expected = "mps" if torch.backends.mps.is_available() else "cpu"
    assert extractor.device_.type == expected


@pytest.mark.parametrize(
    ("preprocessing", "error", "match"),
    [
        (
            "none",
            ValueError,
            "preprocessing must be None, 'passthrough' or a dict of "
            "overrides, got 'none'",
        ),
        (
            Preprocessing(),
            TypeError,
            "preprocessing must be None, 'passthrough' or a "
            "dict of overrides, got an object of type "
            "Preprocessing",
        ),
        (
            {"size": 16},
            ValueError,
            re.escape("Unknown preprocessing key(s) ['size']; allowed keys are"),
        ),
        (
            {"interpolation": "lanczos"},
            ValueError,
            "preprocessing interpolation must be one of",
        ),
        ({"std": (1.0, 0.0, 1.0)}, ValueError, "preprocessing std must be positive"),
        ({"mean": (0.5,)}, ValueError, "preprocessing mean must have 3 values"),
    ],
)
def test_invalid_preprocessing(preprocessing, error, match, extractor, images):
    with pytest.raises(error, match=match):
        extractor.set_params(preprocessing=preprocessing).fit(images)


# -- layers and pooling ---------------------------------------------------------


def test_max_avg_and_flatten_pooling_of_a_feature_map(extractor, images):
    extractor.set_params(layer="block2").fit(images)
    x = preprocessed(extractor, images)
    block2 = hooked_outputs(extractor.backbone, x, ["block2"])["block2"]
    assert block2.shape == (7, 8, 8, 8)
    for pooling, expected in [
        ("avg", block2.mean(dim=(2, 3))),
        ("max", block2.amax(dim=(2, 3))),
        ("flatten", block2.flatten(1)),
    ]:
        features = extractor.set_params(pooling=pooling).fit_transform(images)
        assert_allclose_float32(features, expected)


def test_list_of_layers_is_concatenated(extractor, images):
    block1 = extractor.set_params(layer="block1").fit_transform(images)
    block2 = extractor.set_params(layer="block2").fit_transform(images)
    both = extractor.set_params(layer=["block1", "block2"]).fit_transform(images)
    assert_allclose_float32(both, np.hstack([block1, block2]))
    assert both.shape == (7, 16)


def test_nested_layer_name(extractor, images):
    features = extractor.set_params(layer="block1.0", pooling="max").fit_transform(
        images
    )
    x = preprocessed(extractor, images)
    conv = hooked_outputs(extractor.backbone, x, ["block1.0"])["block1.0"]
    assert_allclose_float32(features, conv.amax(dim=(2, 3)))


@pytest.fixture
def token_extractor():
    return PretrainedFeatureExtractor(
        seeded(TinyTokenNet), preprocessing=SMALL, layer="encoder"
    )


def test_cls_pooling_takes_the_class_token(token_extractor, images):
    token_extractor.fit(images)
    x = preprocessed(token_extractor, images)
    tokens = hooked_outputs(token_extractor.backbone, x, ["encoder"])["encoder"]
    assert tokens.shape == (7, 1 + 16, 6)
    for pooling, expected in [
        ("cls", tokens[:, 0]),
        ("avg", tokens.mean(dim=1)),
        ("max", tokens.amax(dim=1)),
        ("flatten", tokens.flatten(1)),
    ]:
        features = token_extractor.set_params(pooling=pooling).fit_transform(images)
        assert_allclose_float32(features, expected)
    # without layer: the head is dropped and the model's own class token is used
    default = token_extractor.set_params(layer=None).fit_transform(images)
    assert_allclose_float32(default, tokens[:, 0])


def test_cls_pooling_of_a_feature_map_is_an_error(extractor, images):
    extractor.set_params(layer="block2", pooling="cls")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "pooling='cls' needs token outputs (N, tokens, dim), but layer "
            "'block2' returns a feature map of shape (1, 8, 8, 8); use "
            "pooling='avg' or 'max'."
        ),
    ):
        extractor.fit(images)


def test_unknown_layer_suggests_close_names(extractor, images):
    with pytest.raises(
        ValueError,
        match=re.escape(
            "PretrainedFeatureExtractor: backbone 'TinyConvNet' has no layer "
            "'block3'. Close names: ["
        ),
    ) as info:
        extractor.set_params(layer="block3").fit(images)
    close = re.search(r"Close names: (\[.*?\])", str(info.value)).group(1)
    assert {"'block1'", "'block2'"} <= set(close.strip("[]").split(", "))
    assert (
        "Top-level modules: ['block1', 'block2', 'pool', 'fc']; any name from "
        "dict(model.named_modules()) works."
    ) in str(info.value)


@pytest.mark.parametrize("layer", [3, [], ["block1", 2]])
def test_layer_of_wrong_type(layer, extractor, images):
    with pytest.raises(
        TypeError,
        match=re.escape(
            f"PretrainedFeatureExtractor: layer must be None, a module name or a "
            f"list of module names, got {layer!r}."
        ),
    ):
        extractor.set_params(layer=layer).fit(images)


def test_layer_that_does_not_run(images):
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Conv2d(3, 2, 3)
            self.unused = nn.Conv2d(3, 2, 3)

        def forward(self, x):
            return self.used(x)

    est = PretrainedFeatureExtractor(Unused(), preprocessing=SMALL, layer="unused")
    with pytest.raises(
        ValueError,
        match=re.escape("Layer(s) ['unused'] did not run during the forward pass"),
    ):
        est.fit(images)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_features_and_pickles_that_move_to_cpu(extractor, images):
    expected = extractor.fit_transform(images)
    extractor.set_params(device="cuda").fit(images)
    assert extractor.device_.type == "cuda"
    # convolutions may run in TF32 on the GPU
    features = extractor.transform(images)
    assert np.abs(features - expected).max() <= 1e-2 * np.abs(expected).max()
    assert next(extractor.backbone_.parameters()).device.type == "cuda"
    restored = pickle.loads(pickle.dumps(extractor))
    assert restored.device_.type == "cuda"
    assert_allclose_float32(restored.transform(images), features)


# -- runtime: precision, threads, progress ---------------------------------------


# bfloat16 keeps 8 significant bits, float16 11; measured differences from
# float32: 0.4% and 0.06% of the largest feature.
@pytest.mark.parametrize(
    ("precision", "tolerance"), [("bfloat16", 0.02), ("float16", 0.005)]
)
def test_reduced_precision_runs_on_cpu_and_is_close_to_float32(
    precision, tolerance, extractor, images
):
    expected = extractor.fit_transform(images)
    features = extractor.set_params(precision=precision).fit_transform(images)
    assert features.dtype == np.float32
    assert not np.array_equal(features, expected)  # autocast really ran
    assert np.abs(features - expected).max() <= tolerance * np.abs(expected).max()


def test_threads_give_identical_features(extractor, images):
    expected = extractor.set_params(batch_size=2).fit_transform(images)
    features = extractor.set_params(n_jobs=3).fit_transform(images)
    np.testing.assert_array_equal(features, expected)


def test_batch_size_does_not_change_features(extractor, images):
    expected = extractor.set_params(batch_size=7).fit_transform(images)
    for batch_size in (1, 3, 100):
        features = extractor.set_params(batch_size=batch_size).fit_transform(images)
        assert_allclose_float32(features, expected)


def test_verbose_shows_progress(extractor, images, capsys):
    pytest.importorskip("tqdm")
    expected = extractor.fit_transform(images)
    capsys.readouterr()
    features = extractor.set_params(verbose=1).fit(images).transform(images)
    np.testing.assert_array_equal(features, expected)
    err = capsys.readouterr().err
    assert "TinyConvNet" in err and "7/7" in err


# -- unreadable images ------------------------------------------------------------


@pytest.fixture
def files_with_bad_images(tmp_path):
    """Five paths: good, text file named .png, good, truncated JPEG, good."""
    good = write_images(tmp_path, [(24, 20), (20, 24), (22, 22)], seed=3)
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    jpeg = tmp_path / "truncated.jpg"
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(jpeg, quality=95)
    jpeg.write_bytes(jpeg.read_bytes()[:300])
    return [good[0], str(text), good[1], str(jpeg), good[2]]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (1, r"\(cannot identify image file"),
        (3, r"\((Truncated File Read|image file is truncated)"),  # Pillow's words vary
    ],
)
def test_unreadable_image_raises_naming_file_and_position(
    bad, reason, extractor, files_with_bad_images
):
    paths = files_with_bad_images
    X = [paths[0], paths[2], paths[bad], paths[4]]
    extractor.fit(X)  # fit reads only the first image
    with pytest.raises(
        ValueError,
        match=re.escape(f"X[2]: cannot read image file {paths[bad]!r} ") + reason,
    ) as info:
        extractor.transform(X)
    assert str(info.value).endswith(
        "Check that it is a complete image file, or pass on_error='warn' to skip "
        "unreadable images."
    )


def test_on_error_warn_gives_nan_rows(extractor, files_with_bad_images):
    paths = files_with_bad_images
    extractor.set_params(on_error="warn", batch_size=2).fit(paths)
    with pytest.warns(
        UserWarning,
        match=re.escape(
            f"PretrainedFeatureExtractor: 2 of 5 images could not be read; their "
            f"rows are NaN: X[1]: cannot read image file {paths[1]!r}"
        ),
    ) as record:
        features = extractor.transform(paths)
    assert f"X[3]: cannot read image file {paths[3]!r}" in str(record[0].message)
    assert "on_error='warn'" not in str(record[0].message)
    assert features.shape == (5, 8)
    assert np.isnan(features[[1, 3]]).all()
    good = [0, 2, 4]
    assert_allclose_float32(
        features[good], extractor.transform([paths[i] for i in good])
    )


def test_on_error_warn_when_every_image_is_unreadable(extractor, files_with_bad_images):
    paths = files_with_bad_images
    extractor.set_params(on_error="warn").fit(paths)
    with pytest.warns(UserWarning, match="2 of 2 images could not be read"):
        features = extractor.transform([paths[1], paths[3]])
    assert features.shape == (2, 8) and np.isnan(features).all()


def test_fit_skips_an_unreadable_first_image_with_on_error_warn(
    extractor, files_with_bad_images
):
    paths = files_with_bad_images
    extractor.set_params(on_error="warn").fit(paths[1:])
    assert extractor.n_features_out_ == 8
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"PretrainedFeatureExtractor: none of the 2 images in X can be read, "
            f"so fit cannot run the backbone. First error: X[0]: cannot read "
            f"image file {paths[1]!r}"
        ),
    ):
        extractor.fit([paths[1], paths[3]])
    extractor.set_params(on_error="raise")
    with pytest.raises(
        ValueError, match=re.escape(f"X[0]: cannot read image file {paths[1]!r}")
    ):
        extractor.fit(paths[1:])
