"""Fits whose features all come from the cache do not build the network."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

import sktransfer._base
import sktransfer._extractor
from sktransfer import FeatureCache, PretrainedFeatureExtractor, register_backbone
from sktransfer._testing import (
    TinyConvNet,
    assert_allclose_float32,
    make_shapes_dataset,
)
from sktransfer.backbones import unregister_backbone

SPY = "recipe_spy_convnet"
PRE = {"resize_size": 16, "crop_size": 16}
GRID = {"logisticregression__C": [0.1, 1.0, 10.0]}


@pytest.fixture
def builds():
    """Registers SPY, whose create() counts the networks it builds."""
    count = {"n": 0}

    def create(weights, cls=TinyConvNet):
        count["n"] += 1
        return cls()

    register_backbone(SPY, create, preprocessing=PRE)
    yield count
    unregister_backbone(SPY)


@pytest.fixture
def loads(monkeypatch):
    """Counts load_backbone calls of the extractor (any backbone)."""
    count = {"n": 0}

    def counting(load):
        def wrapper(*args, **kwargs):
            count["n"] += 1
            return load(*args, **kwargs)

        return wrapper

    for module in (sktransfer._base, sktransfer._extractor):
        monkeypatch.setattr(module, "load_backbone", counting(module.load_backbone))
    return count


@pytest.fixture(scope="module")
def data():
    X, y = make_shapes_dataset(n_per_class=8, size=20)
    return X, y


def extractor(cache, backbone=SPY, **params):
    return PretrainedFeatureExtractor(backbone, weights=None, cache=cache, **params)


def search(cache, X, y, backbone=SPY, **params):
    pipe = make_pipeline(
        extractor(cache, backbone, device="cpu", **params),
        LogisticRegression(max_iter=500),
    )
    return GridSearchCV(pipe, GRID, cv=3).fit(X, y)


def test_a_search_from_the_cache_builds_no_network(builds, data):
    X, y = data
    cache = FeatureCache()
    extractor(cache).fit(X).transform(X)  # every image in the cache
    assert builds["n"] == 1
    lazy = search(cache, X, y)
    assert builds["n"] == 1  # 3 C x 3 folds + refit: none built a network
    plain = search(None, X, y)  # no cache: every fit builds and extracts
    assert builds["n"] == 1 + 3 * 3 + 1
    np.testing.assert_array_equal(
        lazy.cv_results_["mean_test_score"], plain.cv_results_["mean_test_score"]
    )
    assert_allclose_float32(
        lazy.best_estimator_.decision_function(X),
        plain.best_estimator_.decision_function(X),
    )
    # Misses: the first image in the first fit, then the warming transform.
    assert cache.misses == 1 + len(X)


def test_fitted_attributes_do_not_depend_on_the_build(builds, data):
    X, _ = data
    cache = FeatureCache()
    eager = extractor(cache, layer="block1").fit(X)
    features = eager.transform(X)
    lazy = extractor(cache, layer="block1").fit(X)
    assert builds["n"] == 1
    assert "_backbone" not in vars(lazy)
    for name in ("n_features_out_", "weights_id_", "backbone_name_", "device_"):
        assert getattr(lazy, name) == getattr(eager, name), name
    assert lazy.preprocessing_ == eager.preprocessing_
    assert lazy._cache_key == eager._cache_key
    np.testing.assert_array_equal(
        lazy.get_feature_names_out(), eager.get_feature_names_out()
    )
    np.testing.assert_array_equal(lazy.transform(X), features)
    assert builds["n"] == 1
    # backbone_ is built on first use, with the weights an eager fit loads.
    lazy_state = lazy.backbone_.state_dict()
    assert builds["n"] == 2
    for key, value in eager.backbone_.state_dict().items():
        torch.testing.assert_close(lazy_state[key], value, rtol=0, atol=0)


def test_a_miss_builds_the_network_once(builds, data):
    X, _ = data
    cache = FeatureCache()
    extractor(cache).fit(X[:4]).transform(X[:4])
    lazy = extractor(cache).fit(X[:4])
    assert builds["n"] == 1
    new = lazy.transform(X)  # 4 hits, the others missing
    assert builds["n"] == 2
    lazy.transform(X[::-1])
    assert builds["n"] == 2
    reference = extractor(None).fit(X).transform(X)
    assert_allclose_float32(new, reference)


def test_set_params_after_fit_does_not_change_the_later_build(builds, data):
    X, _ = data
    cache = FeatureCache()
    extractor(cache).fit(X[:2]).transform(X[:2])
    lazy = extractor(cache).fit(X[:2])
    lazy.set_params(layer="block1", pooling="max", random_state=3)
    features = lazy.transform(X)  # builds the network of the fit's parameters
    assert lazy._layers is None
    assert_allclose_float32(features, extractor(None).fit(X).transform(X))


def test_a_disk_cache_holds_the_recipe_for_other_processes(loads, data, tmp_path):
    X, y = data
    params = {"preprocessing": {"resize_size": 32, "crop_size": 32}}
    first = extractor(tmp_path, "resnet18", **params).fit(X)
    first.transform(X)
    assert loads["n"] == 1
    assert len(list((tmp_path / "recipes").glob("*.json"))) == 1
    # A new FeatureCache on the folder knows nothing in memory, as in a new
    # process: it reads the recipe from disk.
    fresh = FeatureCache(tmp_path)
    lazy = search(fresh, X, y, "resnet18", **params)
    assert loads["n"] == 1
    assert fresh.misses == 0
    plain = search(None, X, y, "resnet18", **params)
    np.testing.assert_array_equal(
        lazy.cv_results_["mean_test_score"], plain.cv_results_["mean_test_score"]
    )


def test_a_corrupted_recipe_file_means_building(loads, data, tmp_path):
    X, _ = data
    extractor(tmp_path, "resnet18", preprocessing=PRE).fit(X[:2])
    (path,) = (tmp_path / "recipes").glob("*.json")
    path.write_text("{not json")
    again = extractor(FeatureCache(tmp_path), "resnet18", preprocessing=PRE).fit(X[:2])
    assert loads["n"] == 2
    assert again.n_features_out_ == 512


def test_a_backbone_registered_again_is_another_recipe(builds, data, tmp_path):
    X, _ = data
    cache = FeatureCache(tmp_path)
    assert extractor(cache).fit(X).n_features_out_ == 8
    # Registered in this process: the recipe is not written to disk.
    assert not (tmp_path / "recipes").exists()
    unregister_backbone(SPY)
    register_backbone(SPY, lambda weights: TinyConvNet(width=16), preprocessing=PRE)
    assert extractor(cache).fit(X).n_features_out_ == 16


@pytest.mark.parametrize(
    "params",
    [
        {"random_state": np.random.RandomState(0)},
        {"backbone": "module"},
    ],
    ids=["RandomState", "nn.Module"],
)
def test_recipes_that_need_the_network_build_it(builds, data, params):
    X, _ = data
    if params.get("backbone") == "module":
        params = {"backbone": TinyConvNet(), "preprocessing": PRE}
    cache = FeatureCache()
    for _ in range(2):
        PretrainedFeatureExtractor(**{"backbone": SPY, "cache": cache, **params}).fit(X)
    assert cache._recipes == {}


def test_a_lazily_fitted_extractor_pickles_its_weights(builds, data):
    X, _ = data
    cache = FeatureCache()
    features = extractor(cache).fit(X).transform(X)
    lazy = extractor(cache).fit(X)
    restored = pickle.loads(pickle.dumps(lazy))
    np.testing.assert_array_equal(restored.transform(X), features)
    assert_allclose_float32(
        restored.set_params(cache=None).fit(X).transform(X), features
    )
