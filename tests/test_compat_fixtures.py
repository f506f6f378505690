"""Files written by an earlier sktransfer still load and give the same results.

Every set under ``tests/fixtures/`` (written once by
``tests/fixtures/make_fixtures.py`` at the commit its ``manifest.json`` names,
never overwritten) holds ``sktransfer.save`` folders, pickles, ``checkpoint_dir``
folders and a disk FeatureCache of small estimators on a registered
TinyConvNet, with their inputs and outputs. Checkpoints and caches are used
from copies, since using them writes to them.
"""

from __future__ import annotations

import functools
import json
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.exceptions import InconsistentVersionWarning

import sktransfer
from sktransfer import (
    FeatureCache,
    FineTunedClassifier,
    FineTunedRegressor,
    PretrainedFeatureExtractor,
    register_backbone,
)
from sktransfer._testing import TinyConvNet, assert_allclose_float32
from sktransfer.backbones import unregister_backbone

FIXTURES = Path(__file__).parent / "fixtures"
SETS = sorted(p.parent.name for p in FIXTURES.glob("*/manifest.json"))
CLASSES = {
    cls.__name__: cls
    for cls in (PretrainedFeatureExtractor, FineTunedClassifier, FineTunedRegressor)
}
ESTIMATORS = [
    (s, name) for s in SETS for name in ("extractor", "classifier", "regressor")
]


@functools.cache
def manifest(set_name):
    return json.loads((FIXTURES / set_name / "manifest.json").read_text())


def array(set_name, relative):
    return np.load(FIXTURES / set_name / relative, allow_pickle=False)


def inputs(set_name, name):
    return array(set_name, f"inputs/{name}.npy")


def copy(set_name, relative, tmp_path):
    target = tmp_path / Path(relative).name
    shutil.copytree(FIXTURES / set_name / relative, target)
    return target


def test_fixture_sets_exist():
    assert "v1" in SETS


@pytest.fixture(scope="module", autouse=True)
def fixture_backbones():
    """Register the backbones the sets were written with (their weights come
    from the files; only the architecture and preprocessing matter)."""
    specs = {}
    for set_name in SETS:
        spec = manifest(set_name)["backbone"]
        assert spec["create"] == "sktransfer._testing.TinyConvNet()", set_name
        specs[spec["name"]] = spec

    def seeded(seed):
        def create(weights):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return TinyConvNet()

        return create

    for name, spec in specs.items():
        register_backbone(
            name, seeded(spec["torch_seed"]), preprocessing=spec["preprocessing"]
        )
    yield
    for name in specs:
        unregister_backbone(name)


def assert_same_outputs(est, set_name, label, methods):
    X = inputs(set_name, "eval_images")
    for method in methods:
        expected = array(set_name, f"expected/{label}.{method}.npy")
        result = getattr(est, method)(X)
        message = f"{set_name}: {label}.{method}"
        if expected.dtype.kind == "f":
            assert result.dtype == expected.dtype, message
            assert_allclose_float32(result, expected, err_msg=message)
        else:  # labels (the generator refuses near ties)
            np.testing.assert_array_equal(result, expected, err_msg=message)


@pytest.mark.parametrize(("set_name", "name"), ESTIMATORS)
def test_saved_folder_loads(set_name, name):
    spec = manifest(set_name)["estimators"][name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = sktransfer.load(FIXTURES / set_name / spec["saved"])
    assert type(est) is CLASSES[spec["class"]]
    params = est.get_params(deep=False)
    assert {k: params[k] for k in spec["params"]} == spec["params"]
    _assert_legacy_parameters(set_name, est)
    assert_same_outputs(est, set_name, name, spec["methods"])


@pytest.mark.parametrize("variant", ["pickle", "module_pickle"])
@pytest.mark.parametrize(("set_name", "name"), ESTIMATORS)
def test_pickle_loads(set_name, name, variant):
    spec = manifest(set_name)["estimators"][name]
    data = (FIXTURES / set_name / spec[variant]).read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Unpickling under another scikit-learn says so; that is not ours.
        warnings.simplefilter("ignore", InconsistentVersionWarning)
        est = pickle.loads(data)
    assert type(est) is CLASSES[spec["class"]]
    params = est.get_params(deep=False)
    if variant == "module_pickle":  # the backbone is an nn.Module
        assert type(params["backbone"]) is TinyConvNet
        kept = {
            k: v for k, v in spec["params"].items() if k not in ("backbone", "weights")
        }
    else:
        kept = spec["params"]
    assert {k: params[k] for k in kept} == kept
    _assert_legacy_parameters(set_name, est)
    label = name if variant == "pickle" else f"{name}-module"
    assert_same_outputs(est, set_name, label, spec["methods"])


def _assert_legacy_parameters(set_name, est):
    """Parameters added after the set was written read as what sktransfer
    did then, not as today's defaults."""
    if set_name == "v1" and hasattr(est, "head_init"):
        assert est.head_init == "random" and est.freeze_bn is False


@pytest.mark.parametrize("set_name", SETS)
def test_pickled_feature_cache_loads(set_name):
    spec = manifest(set_name)["cache"]
    cache = pickle.loads((FIXTURES / set_name / spec["pickle"]).read_bytes())
    assert type(cache) is FeatureCache
    assert cache.location is None and cache.max_entries == spec["pickle_max_entries"]


# The fine-tuning defaults of sktransfer 0.1.0, which wrote set v1 (0.2.0
# changed them to LP-FT): resuming a 0.1.0 run means asking for its recipe.
RECIPE_OF = {
    "v1": dict(
        freeze="staged",
        backbone_lr_ratio=0.1,
        schedule="onecycle",
        head_init="random",
        freeze_bn=False,
    )
}


def _checkpoint_run(set_name, folder):
    """Fit the checkpointed run again: same parameters, same data."""
    spec = manifest(set_name)["checkpoint"]
    params = {**RECIPE_OF.get(set_name, {}), **spec["params"]}
    clf = CLASSES[spec["class"]](**params, checkpoint_dir=folder)
    with warnings.catch_warnings():
        # A checkpoint that is not recognised is ignored with a warning.
        warnings.simplefilter("error")
        clf.fit(inputs(set_name, "train_images"), inputs(set_name, spec["y"]))
    return clf, spec


@pytest.mark.parametrize("set_name", SETS)
def test_finished_checkpoint_gives_its_model_without_training(set_name, tmp_path):
    folder = copy(
        set_name, manifest(set_name)["checkpoint"]["finished"]["folder"], tmp_path
    )
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    clf, spec = _checkpoint_run(set_name, folder)
    # The saved history, durations included: no epoch ran, nothing was written.
    assert clf.history_ == spec["finished"]["history"]
    assert clf.n_epochs_ == spec["max_epochs"]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert_same_outputs(clf, set_name, "checkpoint-finished", ["predict_proba"])


@pytest.mark.parametrize("set_name", SETS)
def test_interrupted_checkpoint_resumes(set_name, tmp_path):
    spec = manifest(set_name)["checkpoint"]
    folder = copy(set_name, spec["interrupted"]["folder"], tmp_path)
    clf, spec = _checkpoint_run(set_name, folder)
    saved, finished = spec["interrupted"]["history"], spec["finished"]["history"]
    done = len(saved)
    assert 0 < done < spec["max_epochs"] == clf.n_epochs_
    # The saved epochs come back as they were (durations included), and the
    # run goes on from them: epoch numbers, learning-rate schedule and losses
    # of the uninterrupted run.
    assert clf.history_[:done] == saved
    rest = clf.history_[done:]
    assert [r["epoch"] for r in rest] == [r["epoch"] for r in finished[done:]]
    for key, ulps in (("lr", 128), ("train_loss", 1024)):
        assert_allclose_float32(
            [r[key] for r in rest],
            [r[key] for r in finished[done:]],
            ulps=ulps,
            err_msg=key,
        )
    # Probabilities are at most 1: an absolute tolerance.
    np.testing.assert_allclose(
        clf.predict_proba(inputs(set_name, "eval_images")),
        array(set_name, "expected/checkpoint-finished.predict_proba.npy"),
        rtol=0,
        atol=1024 * np.finfo(np.float32).eps,
    )


@pytest.mark.parametrize("set_name", SETS)
def test_cache_files_read(set_name, tmp_path):
    spec = manifest(set_name)["cache"]
    folder = copy(set_name, spec["folder"], tmp_path)
    cache = FeatureCache(folder)
    assert len(cache) == len(spec["image_keys"])
    found = cache.get_many(spec["model_key"], spec["image_keys"])
    assert (cache.hits, cache.misses) == (len(spec["image_keys"]), 0)
    vectors = np.stack([found[k] for k in spec["image_keys"]])
    assert vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors, array(set_name, spec["expected"]))
    key = json.loads((folder / spec["model_key"] / "key.json").read_text())
    assert key["format"] == manifest(set_name)["formats"]["cache_file"]["key_format"]


@pytest.mark.parametrize("set_name", SETS)
def test_extractor_finds_the_cached_vectors(set_name, tmp_path):
    spec = manifest(set_name)["cache"]
    folder = copy(set_name, spec["folder"], tmp_path)
    cache = FeatureCache(folder)
    X = inputs(set_name, "eval_images")
    extractor = PretrainedFeatureExtractor(**spec["params"], cache=cache).fit(X)
    hits = cache.hits
    features = extractor.transform(X)
    if cache.misses:
        _explain_cache_misses(folder, spec["model_key"])
    assert cache.hits - hits == len(X)
    np.testing.assert_array_equal(features, array(set_name, spec["expected"]))
    assert len(cache) == len(spec["image_keys"])  # nothing new was written


def _explain_cache_misses(folder, model_key):
    """Skip when only library versions moved (the cache key holds them, so a
    cache is by design not reused across versions); fail for anything else."""
    old = json.loads((folder / model_key / "key.json").read_text())
    written = [p for p in folder.glob("*/key.json") if p.parent.name != model_key]
    if len(written) != 1:
        pytest.fail(
            f"the extractor missed the cached vectors and wrote "
            f"{len(written)} other model keys"
        )
    new = json.loads(written[0].read_text())
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed == ["versions"]:
        pytest.skip(
            f"the feature cache key holds library versions, which "
            f"changed: {old['versions']} -> {new['versions']}"
        )
    differences = {k: (old.get(k), new.get(k)) for k in changed}
    pytest.fail(f"the feature cache key changed for the same extractor: {differences}")
