"""sktransfer.save / sktransfer.load: pickle-free round trips, versions,
devices, and refusals (unsaveable parameters, damaged or foreign folders)."""

from __future__ import annotations

import copy
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from skorch.callbacks import Callback

import sktransfer
from sktransfer import (
    FeatureCache,
    FineTunedClassifier,
    FineTunedRegressor,
    PretrainedFeatureExtractor,
    register_backbone,
)
from sktransfer._persistence import FORMAT_VERSION, _decode, _encode
from sktransfer._testing import (
    TinyConvNet,
    TinyMLP,
    assert_allclose_float32,
    make_shapes_dataset,
)
from sktransfer.backbones import unregister_backbone

CNN, MLP = "sktransfer_test_cnn", "sktransfer_test_mlp"
IMAGES, LABELS = make_shapes_dataset(n_per_class=6, size=12)
TABLE = np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32)
PRE = {"resize_size": 12, "crop_size": 12}
FT = dict(max_epochs=2, batch_size=4, random_state=0, device="cpu")


def _seeded(cls):
    def build(weights):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return cls()

    return build


@pytest.fixture(scope="module", autouse=True)
def tiny_backbones():
    register_backbone(CNN, _seeded(TinyConvNet), preprocessing=PRE)
    register_backbone(MLP, _seeded(TinyMLP))
    yield
    unregister_backbone(CNN)
    unregister_backbone(MLP)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


# estimator, X, y, method giving the outputs to compare
CASES = {
    "extractor": (
        lambda: PretrainedFeatureExtractor(CNN, weights=None, device="cpu"),
        IMAGES,
        None,
        "transform",
    ),
    "extractor-layers-max": (
        lambda: PretrainedFeatureExtractor(
            CNN,
            weights=None,
            layer=["block1", "block2.0"],
            pooling="max",
            device="cpu",
            random_state=3,
        ),
        IMAGES,
        None,
        "transform",
    ),
    "extractor-passthrough-nd": (
        lambda: PretrainedFeatureExtractor(
            MLP, weights=None, preprocessing="passthrough", device="cpu"
        ),
        TABLE.reshape(12, 5, 1),
        None,
        "transform",
    ),
    "extractor-flat-dataframe": (
        lambda: PretrainedFeatureExtractor(
            CNN,
            weights=None,
            image_shape=(12, 12, 3),
            device="cpu",
            preprocessing={"resize_size": 8, "crop_size": (8, 6)},
        ),
        pd.DataFrame(IMAGES.reshape(12, -1)).add_prefix("px"),
        None,
        "transform",
    ),
    "classifier-early-stopping": (
        lambda: FineTunedClassifier(
            CNN,
            weights=None,
            early_stopping=True,
            validation_fraction=0.25,
            class_weight="balanced",
            label_smoothing=0.1,
            **FT,
        ),
        IMAGES,
        LABELS,
        "predict_proba",
    ),
    "classifier-int-labels": (
        lambda: FineTunedClassifier(
            CNN, weights=None, freeze="backbone", augment="off", **FT
        ),
        IMAGES,
        np.where(LABELS == "disk", 7, -2),
        "predict_proba",
    ),
    "regressor-2d": (
        lambda: FineTunedRegressor(
            MLP, weights=None, preprocessing="passthrough", augment="off", **FT
        ),
        TABLE,
        TABLE[:, :2] * [1.0, 30.0],
        "predict",
    ),
    "regressor-unscaled": (
        lambda: FineTunedRegressor(CNN, weights=None, target_scaling=False, **FT),
        IMAGES,
        np.arange(12.0),
        "predict",
    ),
}


@pytest.fixture(scope="module")
def fitted():
    return {name: make().fit(X, y) for name, (make, X, y, _) in CASES.items()}


def _attributes(est):
    names = [
        a
        for a in vars(est)
        if a.endswith("_")
        and not a.startswith("_")
        and a not in ("backbone_", "net_", "fit_time_")
    ]
    return {a: getattr(est, a) for a in names}


@pytest.mark.parametrize("name", CASES)
def test_round_trip(name, fitted, tmp_path):
    est, (_, X, _, method) = fitted[name], CASES[name]
    sktransfer.save(est, tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    loaded = sktransfer.load(tmp_path / "model")
    assert type(loaded) is type(est)
    np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(est, method)(X))
    assert loaded.get_params() == est.get_params()
    before, after = _attributes(est), _attributes(loaded)
    assert sorted(after) == sorted(before)
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[key], value)
            assert after[key].dtype == value.dtype, key
        else:
            assert after[key] == value, key
    if hasattr(est, "predict"):
        np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


def test_saved_config_is_plain_json(fitted, tmp_path):
    sktransfer.save(fitted["classifier-int-labels"], tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["format"] == "sktransfer"
    assert config["format_version"] == FORMAT_VERSION
    assert config["sktransfer_version"] == sktransfer.__version__
    assert config["class"] == "FineTunedClassifier"
    assert config["params"]["backbone"] == CNN
    assert config["fitted"]["classes_"] == [-2, 7]
    assert config["fitted"]["classes_dtype"] == np.dtype(int).str
    tensors = load_file(tmp_path / "m" / "model.safetensors")
    assert "module.head.weight" in tensors


def test_save_replaces_an_earlier_save_and_keeps_other_folders(fitted, tmp_path):
    target = tmp_path / "m"
    sktransfer.save(fitted["extractor"], target)
    sktransfer.save(fitted["regressor-2d"], target)
    assert type(sktransfer.load(target)) is FineTunedRegressor
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no leftovers
    other = tmp_path / "photos"
    other.mkdir()
    (other / "a.jpg").write_text("x")
    with pytest.raises(
        FileExistsError,
        match=re.escape(
            f"sktransfer.save: {str(other)!r} exists and is not a folder written "
            f"by sktransfer.save; choose another path or remove it."
        ),
    ):
        sktransfer.save(fitted["extractor"], other)


class _Log(Callback):
    pass


@pytest.mark.parametrize(
    ("make", "name", "advice"),
    [
        (
            lambda: PretrainedFeatureExtractor(
                TinyConvNet(), preprocessing=PRE, device="cpu"
            ),
            "backbone is a TinyConvNet",
            "register a function building it, "
            "sktransfer.register_backbone('my_net', lambda weights: TinyConvNet())",
        ),
        (
            lambda: PretrainedFeatureExtractor(
                CNN, weights=_seeded(TinyConvNet)(None).state_dict(), device="cpu"
            ),
            "weights is a state dict",
            "Save the state dict to a file",
        ),
        (
            lambda: FineTunedClassifier(
                CNN,
                weights=None,
                train_transform=lambda x: x,
                **{**FT, "max_epochs": 1},
            ),
            "train_transform is a function",
            "Only fit uses it: save a copy without it, "
            "sktransfer.save(copy.deepcopy(est).set_params(train_transform=None), path)",
        ),
        (
            lambda: FineTunedClassifier(
                CNN,
                weights=None,
                net_params={"callbacks": [_Log()]},
                **{**FT, "max_epochs": 1},
            ),
            "net_params is a _Log",
            "Only fit uses it",
        ),
        (
            lambda: PretrainedFeatureExtractor(
                CNN, weights=None, device="cpu", random_state=np.random.RandomState(0)
            ),
            "random_state is a RandomState",
            "Use an int (or None) as random_state.",
        ),
    ],
)
def test_parameters_that_json_cannot_hold_are_refused(make, name, advice, tmp_path):
    est = make()
    est.fit(IMAGES, None if isinstance(est, PretrainedFeatureExtractor) else LABELS)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"sktransfer.save: {type(est).__name__}'s parameter {name}, which the "
            f"saved JSON config cannot hold."
        ),
    ) as info:
        sktransfer.save(est, tmp_path / "m")
    assert advice in str(info.value)
    assert not (tmp_path / "m").exists()


def test_only_fitted_sktransfer_estimators_are_saved(tmp_path):
    from sklearn.exceptions import NotFittedError
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(
        TypeError,
        match=r"sktransfer\.save saves "
        "PretrainedFeatureExtractor, FineTunedClassifier and "
        "FineTunedRegressor instances, got LogisticRegression",
    ):
        sktransfer.save(LogisticRegression(), tmp_path / "m")
    with pytest.raises(NotFittedError):
        sktransfer.save(PretrainedFeatureExtractor(CNN), tmp_path / "m")


def test_params_encoding_round_trip():
    from torchvision.models import ResNet18_Weights

    params = {
        "a": (1, 2.5, "x"),
        "b": {3: "three", "k": [None, True]},
        "c": Path("w/best.pt"),
        "d": torch.device("cuda", 1),
        "e": ResNet18_Weights.IMAGENET1K_V1,
        "f": float("inf"),
        "g": {"__tuple__": 1},
        "h": np.int64(4),
    }
    encoded = json.loads(json.dumps(_encode(params, "p", "X")))
    assert _decode(encoded) == params


# -- versions -----------------------------------------------------------------
def _edit_config(folder, **changes):
    path = Path(folder) / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_newer_format_is_refused_naming_both_versions(fitted, tmp_path):
    sktransfer.save(fitted["extractor"], tmp_path / "m")
    _edit_config(
        tmp_path / "m", format_version=FORMAT_VERSION + 1, sktransfer_version="9.0"
    )
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"sktransfer.load: {str(tmp_path / 'm')!r} was saved by sktransfer 9.0 "
            f"in save format {FORMAT_VERSION + 1}, but sktransfer "
            f"{sktransfer.__version__} reads formats 1 to {FORMAT_VERSION}. Upgrade "
            f"sktransfer to load it: pip install --upgrade sktransfer."
        ),
    ):
        sktransfer.load(tmp_path / "m")


def test_parameters_unknown_here_are_refused_and_missing_ones_default(fitted, tmp_path):
    est = fitted["classifier-int-labels"]
    sktransfer.save(est, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["params"]["checkpoint_dir"]  # as saved before it existed
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    assert sktransfer.load(tmp_path / "m").get_params() == est.get_params()
    config["params"]["mixup"] = 0.2  # as saved by a newer sktransfer
    config["sktransfer_version"] = "9.0"
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"sktransfer.load: {str(tmp_path / 'm')!r} was saved by sktransfer 9.0 "
            f"with FineTunedClassifier parameter(s) ['mixup'] that sktransfer "
            f"{sktransfer.__version__} does not know. Upgrade sktransfer"
        ),
    ):
        sktransfer.load(tmp_path / "m")


def test_older_sktransfer_version_with_a_supported_format_loads(fitted, tmp_path):
    sktransfer.save(fitted["classifier-early-stopping"], tmp_path / "m")
    _edit_config(tmp_path / "m", sktransfer_version="0.0.1", format_version=1)
    loaded = sktransfer.load(tmp_path / "m")
    np.testing.assert_array_equal(
        loaded.predict(IMAGES), fitted["classifier-early-stopping"].predict(IMAGES)
    )
    _edit_config(tmp_path / "m", format_version=0)
    with pytest.raises(
        ValueError,
        match=r"in save format 0, which sktransfer .* no "
        r"longer reads .* Load it with the older sktransfer and save "
        "it again",
    ):
        sktransfer.load(tmp_path / "m")


# -- devices ------------------------------------------------------------------
def test_unavailable_saved_device_falls_back_to_cpu(fitted, tmp_path):
    est = fitted["classifier-int-labels"]
    sktransfer.save(est, tmp_path / "m")
    # As if fitted on a GPU that this machine does not have.
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["params"]["device"] = "cuda:99"
    config["fitted"]["device_"] = "cuda:99"
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.warns(
        UserWarning,
        match=re.escape(
            "FineTunedClassifier was saved with device='cuda:99', which is not "
            "available here; it is loaded on the CPU."
        ),
    ):
        loaded = sktransfer.load(tmp_path / "m")
    assert loaded.device == "cuda:99" and loaded.device_ == torch.device("cpu")
    np.testing.assert_array_equal(
        loaded.predict_proba(IMAGES), est.predict_proba(IMAGES)
    )
    chosen = sktransfer.load(tmp_path / "m", device="cpu")
    assert chosen.device == "cpu" and chosen.device_ == torch.device("cpu")
    with pytest.raises(ValueError, match="device 'cuda:99' is not available"):
        sktransfer.load(tmp_path / "m", device="cuda:99")


_LOAD_ON_CPU = """
import sys, warnings, numpy as np, torch
assert not torch.cuda.is_available()
import sktransfer
from sktransfer import register_backbone
from sktransfer._testing import TinyConvNet
register_backbone(sys.argv[1], lambda w: TinyConvNet(),
                  preprocessing={"resize_size": 12, "crop_size": 12})
with warnings.catch_warnings(record=True) as record:
    warnings.simplefilter("always")
    clf = sktransfer.load(sys.argv[2])
assert "not available here" in str(record[0].message)
assert clf.device_ == torch.device("cpu")
np.testing.assert_allclose(clf.predict_proba(np.load(sys.argv[3])),
                           np.load(sys.argv[4]), atol=1e-4)
"""


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_fit_loads_and_predicts_on_a_machine_without_gpu(tmp_path):
    clf = FineTunedClassifier(CNN, weights=None, **{**FT, "device": "cuda"}).fit(
        IMAGES, LABELS
    )
    sktransfer.save(clf, tmp_path / "m")
    np.save(tmp_path / "X.npy", IMAGES)
    np.save(tmp_path / "proba.npy", clf.predict_proba(IMAGES))
    subprocess.run(
        [
            sys.executable,
            "-c",
            _LOAD_ON_CPU,
            CNN,
            str(tmp_path / "m"),
            str(tmp_path / "X.npy"),
            str(tmp_path / "proba.npy"),
        ],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        check=True,
    )


# -- loading runs no code, and says what is wrong -------------------------------
def test_weights_file_holding_a_pickle_is_refused_without_running_it(fitted, tmp_path):
    sktransfer.save(fitted["extractor"], tmp_path / "m")
    marker = tmp_path / "code_ran"
    torch.save({"w": _RunsCode(str(marker))}, tmp_path / "m" / "model.safetensors")
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"sktransfer.load: cannot read the weights "
            f"{str(tmp_path / 'm' / 'model.safetensors')!r} ("
        ),
    ):
        sktransfer.load(tmp_path / "m")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("edit", "error", "match"),
    [
        (
            {"class": "os.system"},
            ValueError,
            r"names class 'os.system'; sktransfer.load builds only "
            r"\['FineTunedClassifier', 'FineTunedRegressor', 'PretrainedFeatureExtractor'\]",
        ),
        (
            {"format": "pickle"},
            ValueError,
            r"was not written by sktransfer.save \(no "
            r"\"format\": \"sktransfer\" entry\)",
        ),
        (
            {"format_version": "1"},
            ValueError,
            r"has no valid format_version \(got '1'\)",
        ),
        (
            {"params": {"backbone": {"__torchvision_weights__": "os.system"}}},
            ValueError,
            r"cannot read the parameters in '.*config.json' \((TypeError|ValueError): ",
        ),
    ],
)
def test_edited_config_is_refused(edit, error, match, fitted, tmp_path):
    sktransfer.save(fitted["extractor"], tmp_path / "m")
    _edit_config(tmp_path / "m", **edit)
    with pytest.raises(error, match=match):
        sktransfer.load(tmp_path / "m")


def test_folders_that_are_not_saves(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=re.escape(
            f"sktransfer.load: no such folder: {str(tmp_path / 'nope')!r}."
        ),
    ):
        sktransfer.load(tmp_path / "nope")
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"sktransfer.load: {str(tmp_path)!r} is not a folder written by "
            f"sktransfer.save (it has no config.json)."
        ),
    ):
        sktransfer.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json' is not valid JSON"):
        sktransfer.load(tmp_path)


def test_backbone_must_be_registered_before_loading(tmp_path):
    register_backbone("sktransfer_test_gone", _seeded(TinyConvNet), preprocessing=PRE)
    try:
        est = PretrainedFeatureExtractor(
            "sktransfer_test_gone", weights=None, device="cpu"
        ).fit(IMAGES)
        sktransfer.save(est, tmp_path / "m")
    finally:
        unregister_backbone("sktransfer_test_gone")
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"sktransfer.load: the PretrainedFeatureExtractor in "
            f"{str(tmp_path / 'm')!r} uses backbone 'sktransfer_test_gone', which "
            f"is not available here (Unknown backbone"
        )
        + r".*"
        + re.escape(
            "If it was added with sktransfer.register_backbone, register it again "
            "(same name, same architecture) before loading."
        ),
    ):
        sktransfer.load(tmp_path / "m")


def test_weights_of_another_architecture_are_refused(fitted, tmp_path):
    sktransfer.save(fitted["extractor"], tmp_path / "m")
    register_backbone(
        CNN, _seeded(lambda: TinyConvNet(width=4)), preprocessing=PRE, overwrite=True
    )
    try:
        with pytest.raises(
            ValueError,
            match=r"do not fit backbone "
            r"'sktransfer_test_cnn': .*shape mismatch",
        ):
            sktransfer.load(tmp_path / "m")
    finally:
        register_backbone(CNN, _seeded(TinyConvNet), preprocessing=PRE, overwrite=True)


def test_a_loaded_estimator_can_be_copied_and_refitted(fitted, tmp_path):
    sktransfer.save(fitted["regressor-2d"], tmp_path / "m")
    loaded = sktransfer.load(tmp_path / "m")
    again = copy.deepcopy(loaded).fit(TABLE, TABLE[:, :2] * [1.0, 30.0])
    assert_allclose_float32(again.predict(TABLE), loaded.predict(TABLE))


# -- pickle and skops: the same plain state ------------------------------------
def _plain(value):
    """True when ``value`` holds only str-keyed dicts, lists, tuples, str,
    numbers, bools, None and bytes: no tensors, modules or skorch objects."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, bool, int, float, bytes))


def _same_fitted_estimator(loaded, est, X, method):
    assert type(loaded) is type(est)
    params = est.get_params()
    if isinstance(params["backbone"], torch.nn.Module):  # compared by weights
        torch.testing.assert_close(
            loaded.backbone.state_dict(), params.pop("backbone").state_dict()
        )
        assert loaded.backbone is not est.backbone
    assert {k: v for k, v in loaded.get_params().items() if k in params} == params
    assert sorted(vars(loaded)) == sorted(vars(est))
    np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(est, method)(X))
    before, after = _attributes(est), _attributes(loaded)
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[key], value)
        else:
            assert after[key] == value, key


@pytest.mark.parametrize("name", CASES)
def test_pickles_hold_plain_values_and_round_trip(name, fitted):
    est, (_, X, _, method) = fitted[name], CASES[name]
    state = est.__getstate__()
    assert _plain(state)
    assert set(state) == set(est.get_params(deep=False)) | {"_sktransfer_fitted"}
    loaded = pickle.loads(pickle.dumps(est))
    _same_fitted_estimator(loaded, est, X, method)
    assert loaded.device_ == torch.device("cpu")
    # An unfitted estimator pickles as its parameters.
    fresh = pickle.loads(pickle.dumps(clone(est)))
    assert (
        fresh.get_params() == est.get_params()
        and not hasattr(fresh, "n_features_out_")
        and not hasattr(fresh, "net_")
    )


@pytest.mark.parametrize("name", CASES)
def test_skops_round_trip_with_the_documented_trusted_types(name, fitted):
    sio = pytest.importorskip("skops.io")
    est, (_, X, _, method) = fitted[name], CASES[name]
    data = sio.dumps(est)
    untrusted = sio.get_untrusted_types(data=data)
    assert untrusted == [f"{type(est).__module__}.{type(est).__name__}"]
    assert set(untrusted) <= set(sktransfer.skops_trusted_types())
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException):
        sio.loads(data)
    loaded = sio.loads(data, trusted=sktransfer.skops_trusted_types())
    _same_fitted_estimator(loaded, est, X, method)


def test_skops_pipeline_with_a_cache(tmp_path):
    sio = pytest.importorskip("skops.io")
    cache = FeatureCache(tmp_path / "cache", max_entries=100)
    pipe = make_pipeline(
        PretrainedFeatureExtractor(
            CNN,
            weights=None,
            device="cpu",
            cache=cache,
            preprocessing={"resize_size": 12, "crop_size": (10, 8)},
        ),
        LogisticRegression(max_iter=200),
    ).fit(IMAGES, LABELS)
    sio.dump(pipe, tmp_path / "pipe.skops")
    untrusted = sio.get_untrusted_types(file=tmp_path / "pipe.skops")
    assert set(untrusted) <= set(sktransfer.skops_trusted_types())
    loaded = sio.load(tmp_path / "pipe.skops", trusted=sktransfer.skops_trusted_types())
    np.testing.assert_array_equal(
        loaded.predict_proba(IMAGES), pipe.predict_proba(IMAGES)
    )
    extractor = loaded[0]
    assert extractor.preprocessing == {"resize_size": 12, "crop_size": (10, 8)}
    # The loaded cache is a new object on the same folder, with the same bounds.
    assert isinstance(extractor.cache, FeatureCache) and extractor.cache is not cache
    assert extractor.cache.location == cache.location
    assert extractor.cache.max_entries == 100
    assert len(extractor.cache) == len(cache) == len(IMAGES)


def test_unpickling_a_newer_state_format_asks_to_upgrade(fitted):
    est = fitted["classifier-int-labels"]
    state = est.__getstate__()
    state["_sktransfer_fitted"]["format_version"] = FORMAT_VERSION + 1
    state["_sktransfer_fitted"]["sktransfer_version"] = "9.0"
    blank = FineTunedClassifier.__new__(FineTunedClassifier)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"Cannot unpickle this FineTunedClassifier: it was pickled by "
            f"sktransfer 9.0 in state format {FORMAT_VERSION + 1}, but sktransfer "
            f"{sktransfer.__version__} reads formats 1 to {FORMAT_VERSION}. "
            f"Upgrade sktransfer"
        ),
    ):
        blank.__setstate__(state)


def test_unpickling_needs_the_registered_backbone():
    name = "sktransfer_test_pickled_cnn"
    register_backbone(name, _seeded(TinyConvNet), preprocessing=PRE)
    try:
        est = PretrainedFeatureExtractor(name, weights=None, device="cpu").fit(IMAGES)
        data = pickle.dumps(est)
    finally:
        unregister_backbone(name)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"Cannot unpickle this PretrainedFeatureExtractor: it uses backbone "
            f"'{name}', which is not available here"
        ),
    ) as info:
        pickle.loads(data)
    assert "register it again" in str(info.value)
    register_backbone(name, _seeded(TinyConvNet), preprocessing=PRE)
    try:
        np.testing.assert_array_equal(
            pickle.loads(data).transform(IMAGES), est.transform(IMAGES)
        )
    finally:
        unregister_backbone(name)


def test_pickles_of_module_backbones_keep_the_module():
    est = FineTunedClassifier(
        _seeded(TinyConvNet)(None), weights=None, **FT, preprocessing=PRE
    ).fit(IMAGES, LABELS)
    state = est.__getstate__()
    assert isinstance(state["backbone"], TinyConvNet)  # a parameter, as given
    assert _plain({k: v for k, v in state.items() if k != "backbone"})
    loaded = pickle.loads(pickle.dumps(est))
    _same_fitted_estimator(loaded, est, IMAGES, "predict_proba")


@pytest.mark.parametrize(
    ("backbone", "X", "extra"),
    [
        (CNN, IMAGES, {}),
        (MLP, TABLE, {"preprocessing": "passthrough"}),  # lazy modules: keyed by values
    ],
)
@pytest.mark.parametrize("how", ["save", "pickle"])
def test_saved_and_pickled_extractors_find_their_cached_features(
    backbone, X, extra, how, tmp_path
):
    est = PretrainedFeatureExtractor(
        backbone, weights=None, device="cpu", cache=str(tmp_path / "cache"), **extra
    ).fit(X)
    expected = est.transform(X)
    if how == "save":
        sktransfer.save(est, tmp_path / "m")
        loaded = sktransfer.load(tmp_path / "m")
    else:
        loaded = pickle.loads(pickle.dumps(est))
    assert loaded._cache_key == est._cache_key
    cache = loaded._cache
    hits, misses = cache.hits, cache.misses
    np.testing.assert_array_equal(loaded.transform(X), expected)
    assert (cache.hits - hits, cache.misses - misses) == (len(X), 0)
