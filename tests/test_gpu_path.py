"""The GPU path: autocast precision, loss scaling, DataLoader workers, pinned
memory, torch.compile and the error for a missing GPU.

What runs on the CPU is tested here on every run; the ``gpu``-marked tests
need a CUDA device (``benchmarks/gpu/run.sh`` runs them on a GPU machine).
"""

import re

import numpy as np
import pytest
import torch

from sktransfer import FineTunedClassifier, PretrainedFeatureExtractor
from sktransfer._amp import loader_params
from sktransfer._testing import (
    TinyConvNet,
    assert_allclose_float32,
    make_shapes_dataset,
)

PRE = {"resize_size": 16, "crop_size": 16}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def data():
    return make_shapes_dataset(n_per_class=6, size=20)


def seeded_convnet():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return TinyConvNet()


def classifier(**params):
    defaults = {
        "weights": None,
        "preprocessing": PRE,
        "max_epochs": 2,
        "batch_size": 4,
        "augment": "off",
        "device": "cpu",
        "random_state": 0,
    }
    return FineTunedClassifier(seeded_convnet(), **{**defaults, **params})


def conv_output_dtypes(module):
    """Records the dtypes of the first convolution's outputs."""
    seen = []
    conv = next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    return seen


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_training_and_prediction_run_under_autocast(data, precision):
    X, y = data
    clf = classifier(precision=precision).fit(X, y)
    dtype = getattr(torch, precision)
    seen = conv_output_dtypes(clf.net_.module_)
    proba = clf.predict_proba(X)
    assert proba.dtype == np.float32 and np.isfinite(proba).all()
    assert seen and set(seen) == {dtype}
    assert all(np.isfinite(row["train_loss"]) for row in clf.history_)
    scaler = clf.net_.grad_scaler_
    if precision == "float16":
        assert isinstance(scaler, torch.amp.GradScaler) and scaler.get_scale() > 0
    else:
        assert scaler is None


def test_float16_loss_scaling_updates_the_weights(data):
    X, y = data
    before = seeded_convnet().state_dict()
    clf = classifier(precision="float16").fit(X, y)
    after = clf.net_.module_.body.body.state_dict()
    changed = [k for k in after if not torch.equal(before[k], after[k])]
    assert changed  # scaler.step ran the optimizer (not every step skipped)


def test_float32_is_unchanged_by_the_mixed_precision_net(data):
    X, y = data
    clf = classifier().fit(X, y)
    seen = conv_output_dtypes(clf.net_.module_)
    clf.predict(X)
    assert set(seen) == {torch.float32} and clf.net_.grad_scaler_ is None


def test_dataloader_workers_give_the_same_training(data):
    X, y = data
    # Workers draw their seeds from torch's generator, which changes the
    # shuffling that follows: compare unshuffled runs.
    same_order = {"iterator_train__shuffle": False}
    plain = classifier(net_params=same_order).fit(X, y)
    workers = classifier(n_jobs=2, net_params=same_order).fit(X, y)
    loader = workers.net_.get_iterator(workers.net_.get_dataset(X[:1]), training=True)
    assert loader.num_workers == 2 and loader.persistent_workers
    assert_allclose_float32(workers.predict_proba(X), plain.predict_proba(X))


def test_loader_params_pin_memory_on_cuda_only():
    assert loader_params(0, torch.device("cpu")) == {}
    on_cuda = loader_params(3, torch.device("cuda"))
    assert on_cuda["iterator_train__pin_memory"] is True
    assert on_cuda["iterator_valid__num_workers"] == 3


@pytest.mark.slow
def test_compiled_extractor_gives_the_same_features(data, tmp_path):
    X, _ = data
    eager = PretrainedFeatureExtractor(
        seeded_convnet(), preprocessing=PRE, cache=tmp_path
    )
    compiled = PretrainedFeatureExtractor(
        seeded_convnet(), preprocessing=PRE, compile=True, cache=tmp_path
    )
    expected = eager.fit(X).transform(X)
    assert_allclose_float32(compiled.fit(X).transform(X), expected)
    # Compiled in place: same parameter names, another cache key.
    assert list(compiled.backbone_.state_dict()) == list(eager.backbone_.state_dict())
    assert compiled._cache_key != eager._cache_key


@pytest.mark.slow
def test_compiled_fine_tuning_trains_and_predicts(data):
    X, y = data
    plain = classifier(max_epochs=1).fit(X, y)
    compiled = classifier(max_epochs=1, compile=True).fit(X, y)
    assert_allclose_float32(
        compiled.predict_proba(X), plain.predict_proba(X), ulps=4096
    )


@pytest.mark.parametrize("device", ["cuda", "cuda:7"])
def test_asking_for_a_missing_gpu_says_why(device, data):
    if torch.cuda.is_available() and torch.cuda.device_count() > 7:
        pytest.skip("this machine has the GPU")
    X, y = data
    for est in (
        PretrainedFeatureExtractor(seeded_convnet(), preprocessing=PRE, device=device),
        classifier().set_params(device=device),
    ):
        with pytest.raises(ValueError) as info:
            est.fit(X, y)
        message = str(info.value)
        assert message.startswith(
            f"{type(est).__name__}: device {device!r} is not available on this machine"
        )
        assert re.search(
            r"built without CUDA|finds no GPU|Only \d+ GPU\(s\) are visible", message
        )


def test_compile_and_precision_are_validated(data):
    X, y = data
    with pytest.raises(ValueError, match="FineTunedClassifier: precision must be one"):
        classifier(precision="half").fit(X, y)
    with pytest.raises(ValueError, match="FineTunedClassifier: n_jobs must be an int"):
        classifier(n_jobs=-1).fit(X, y)
    with pytest.raises(TypeError, match="PretrainedFeatureExtractor: compile must be"):
        PretrainedFeatureExtractor(compile="yes").fit(X)


# -- on a CUDA device ------------------------------------------------------------
@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_cuda_extraction_in_half_precision_is_close_to_float32(data, precision):
    X, _ = data
    reference = PretrainedFeatureExtractor(seeded_convnet(), preprocessing=PRE).fit(X)
    expected = reference.transform(X)
    ext = PretrainedFeatureExtractor(
        seeded_convnet(), preprocessing=PRE, device="cuda", precision=precision
    ).fit(X)
    features = ext.transform(X)
    assert features.dtype == np.float32
    # bfloat16 keeps 8 bits of mantissa: errors of a few 1/256 of the scale.
    assert np.abs(features - expected).max() <= 0.05 * np.abs(expected).max()


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("precision", ["float32", "bfloat16", "float16"])
def test_cuda_fine_tuning_with_workers_and_precision(data, precision):
    X, y = data
    clf = classifier(device="cuda", precision=precision, n_jobs=2).fit(X, y)
    loader = clf.net_.get_iterator(clf.net_.get_dataset(X[:1]), training=True)
    assert loader.pin_memory
    assert next(clf.net_.module_.parameters()).device.type == "cuda"
    proba = clf.predict_proba(X)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)


@pytest.mark.gpu
@cuda
def test_cuda_compiled_extraction(data):
    X, _ = data
    eager = PretrainedFeatureExtractor(
        seeded_convnet(), preprocessing=PRE, device="cuda"
    )
    compiled = PretrainedFeatureExtractor(
        seeded_convnet(), preprocessing=PRE, device="cuda", compile=True
    )
    expected = eager.fit(X).transform(X)
    features = compiled.fit(X).transform(X)
    assert np.abs(features - expected).max() <= 1e-2 * np.abs(expected).max()


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2,
    reason="needs two CUDA devices",
)
def test_every_visible_gpu_can_be_chosen(data):
    X, _ = data
    features = []
    for i in range(torch.cuda.device_count()):
        ext = PretrainedFeatureExtractor(
            seeded_convnet(), preprocessing=PRE, device=f"cuda:{i}"
        ).fit(X)
        assert next(ext.backbone_.parameters()).device == torch.device("cuda", i)
        features.append(ext.transform(X))
    for other in features[1:]:
        assert np.abs(other - features[0]).max() <= 1e-2 * np.abs(features[0]).max()
