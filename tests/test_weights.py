"""weights=: names, torchvision enums, state dicts, checkpoint files, the hub
cache offline, and files that must not run code."""

import os
import re

import numpy as np
import pytest
import torch
from torch import nn

from sktransfer import (
    PretrainedFeatureExtractor,
    WeightsUnavailableError,
    register_backbone,
)
from sktransfer._testing import TinyConvNet, assert_allclose_float32
from sktransfer.backbones import unregister_backbone
from sktransfer.backbones._weights import state_dict_identity

SMALL = {"resize_size": 16, "crop_size": 16}
RESNET_SMALL = {"resize_size": 32, "crop_size": 32}
RESNET18_ID = "torchvision:ResNet18_Weights.IMAGENET1K_V1"


def seeded(module_cls, seed=0, **kwargs):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return module_cls(**kwargs)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (3, 20, 20, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny_backbone():
    """A registered TinyConvNet(width=4), random init unless weights are given."""
    register_backbone(
        "test_weights_conv",
        lambda weights: TinyConvNet(width=4),
        weights=("SYNTHETIC_V1", "SYNTHETIC_V2"),
        preprocessing=SMALL,
    )
    yield "test_weights_conv"
    unregister_backbone("test_weights_conv")


@pytest.fixture(scope="module")
def trained():
    """Weights for the tiny backbone, and the features they give."""
    module = seeded(TinyConvNet, seed=5, width=4).eval()
    return module, module.state_dict()


@pytest.fixture(scope="module")
def trained_features(trained, images):
    module, _ = trained
    return PretrainedFeatureExtractor(module, preprocessing=SMALL).fit_transform(images)


def test_weights_as_a_state_dict(tiny_backbone, trained, trained_features, images):
    _, state_dict = trained
    est = PretrainedFeatureExtractor(tiny_backbone, weights=state_dict)
    np.testing.assert_array_equal(est.fit_transform(images), trained_features)
    assert est.weights_id_ == state_dict_identity(state_dict)
    assert est.weights_id_.startswith("state_dict:sha256:")
    random = PretrainedFeatureExtractor(tiny_backbone, weights=None).fit_transform(
        images
    )
    assert not np.allclose(random, trained_features)  # the weights were used


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd, "epoch": 3},
        lambda sd: {"model": sd},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},  # DataParallel
    ],
    ids=["plain", "state_dict_key", "model_key", "dataparallel_prefix"],
)
def test_weights_as_a_pt_file(
    wrap, tiny_backbone, trained, trained_features, images, tmp_path
):
    path = tmp_path / "weights.pt"
    torch.save(wrap(trained[1]), path)
    for weights in (path, str(path)):
        est = PretrainedFeatureExtractor(tiny_backbone, weights=weights)
        np.testing.assert_array_equal(est.fit_transform(images), trained_features)
        assert est.weights_id_.startswith("file:sha256:")


def test_weights_as_a_safetensors_file(
    tiny_backbone, trained, trained_features, images, tmp_path
):
    from safetensors.torch import save_file

    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in trained[1].items()}, str(path))
    est = PretrainedFeatureExtractor(tiny_backbone, weights=path)
    np.testing.assert_array_equal(est.fit_transform(images), trained_features)


def test_weights_file_of_an_nn_module_backbone(
    trained, trained_features, images, tmp_path
):
    path = tmp_path / "weights.pth"
    torch.save(trained[1], path)
    module = seeded(TinyConvNet, seed=9, width=4)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    est = PretrainedFeatureExtractor(module, weights=str(path), preprocessing=SMALL)
    np.testing.assert_array_equal(est.fit_transform(images), trained_features)
    for key, value in module.state_dict().items():  # loaded into a copy
        assert torch.equal(value, before[key])


@pytest.mark.parametrize("weights", ["DEFAULT", None])
def test_module_backbone_uses_its_own_parameters(
    weights, trained, trained_features, images
):
    est = PretrainedFeatureExtractor(trained[0], weights=weights, preprocessing=SMALL)
    np.testing.assert_array_equal(est.fit_transform(images), trained_features)
    assert est.weights_id_.startswith("module:sktransfer.testing.TinyConvNet:")


def test_module_backbone_refuses_weight_names(trained, images):
    est = PretrainedFeatureExtractor(
        trained[0], weights="IMAGENET1K_V1", preprocessing=SMALL
    )
    with pytest.raises(
        ValueError,
        match=re.escape(
            "PretrainedFeatureExtractor: with an nn.Module as backbone, weights "
            "must be 'DEFAULT' or None (use the module's own parameters), a "
            "checkpoint path or a state dict; got 'IMAGENET1K_V1'."
        ),
    ):
        est.fit(images)


def test_registered_weight_names(tiny_backbone, images):
    ids = {
        w: PretrainedFeatureExtractor(tiny_backbone, weights=w).fit(images).weights_id_
        for w in ("DEFAULT", "SYNTHETIC_V1", "SYNTHETIC_V2")
    }
    assert ids == {
        "DEFAULT": "custom:test_weights_conv:SYNTHETIC_V1",
        "SYNTHETIC_V1": "custom:test_weights_conv:SYNTHETIC_V1",
        "SYNTHETIC_V2": "custom:test_weights_conv:SYNTHETIC_V2",
    }
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Backbone 'test_weights_conv' has no weights 'SYNTHETIC_V3'; available: "
            "['DEFAULT', 'SYNTHETIC_V1', 'SYNTHETIC_V2']. Or pass a checkpoint "
            "path, a state dict, or weights=None."
        ),
    ):
        PretrainedFeatureExtractor(tiny_backbone, weights="SYNTHETIC_V3").fit(images)


# -- torchvision names and enums (resnet18 from the offline hub cache) ---------


@pytest.fixture(scope="module")
def resnet18_features(resnet18_checkpoint, images):
    return PretrainedFeatureExtractor(
        "resnet18", preprocessing=RESNET_SMALL
    ).fit_transform(images)


@pytest.mark.parametrize(
    "weights",
    [
        "IMAGENET1K_V1",
        "ResNet18_Weights.IMAGENET1K_V1",
        "ResNet18_Weights.DEFAULT",
        "enum_member",
        "enum_default",
    ],
)
def test_torchvision_weight_names_and_enums(weights, resnet18_features, images):
    from torchvision.models import ResNet18_Weights

    weights = {
        "enum_member": ResNet18_Weights.IMAGENET1K_V1,
        "enum_default": ResNet18_Weights.DEFAULT,
    }.get(weights, weights)
    est = PretrainedFeatureExtractor(
        "resnet18", weights=weights, preprocessing=RESNET_SMALL
    )
    np.testing.assert_array_equal(est.fit_transform(images), resnet18_features)
    assert est.weights_id_ == RESNET18_ID


def test_default_weights_come_from_the_hub_cache_file(
    resnet18_checkpoint, resnet18_features, images
):
    from torchvision.models import resnet18

    model = resnet18(num_classes=1000)
    model.load_state_dict(torch.load(resnet18_checkpoint, weights_only=True))
    model.fc = nn.Identity()
    est = PretrainedFeatureExtractor(model, preprocessing=RESNET_SMALL)
    assert_allclose_float32(est.fit_transform(images), resnet18_features)
    # (the checkpoint was saved from random_state=0: use another seed here)
    random = PretrainedFeatureExtractor(
        "resnet18", weights=None, random_state=1, preprocessing=RESNET_SMALL
    )
    assert not np.allclose(random.fit_transform(images), resnet18_features)


def test_enum_of_another_architecture(resnet18_checkpoint, images):
    from torchvision.models import ResNet34_Weights

    est = PretrainedFeatureExtractor("resnet18", weights=ResNet34_Weights.DEFAULT)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "weights ResNet34_Weights.IMAGENET1K_V1 belong to another architecture "
            "than backbone 'resnet18'; use ResNet18_Weights members, e.g. "
            "ResNet18_Weights.DEFAULT."
        ),
    ):
        est.fit(images)


@pytest.mark.parametrize(
    "weights", ["IMAGENET1K_V2", "ResNet34_Weights.IMAGENET1K_V1", "imagenet"]
)
def test_unknown_torchvision_weight_name(weights, images):
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"Backbone 'resnet18' has no weights {weights!r}; torchvision provides "
            f"['DEFAULT', 'IMAGENET1K_V1'] (ResNet18_Weights). Or pass a checkpoint "
            f"path, a state dict, or weights=None."
        ),
    ):
        PretrainedFeatureExtractor("resnet18", weights=weights).fit(images)


def test_unsupported_weights_type(images):
    with pytest.raises(
        TypeError,
        match=re.escape("Unsupported weights of type int for backbone 'resnet18'."),
    ):
        PretrainedFeatureExtractor("resnet18", weights=3).fit(images)


def test_missing_hub_file_offline(monkeypatch, tmp_path, images):
    from torchvision.models import ResNet18_Weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(
        WeightsUnavailableError,
        match=re.escape(
            f"Cannot download the weights ResNet18_Weights.IMAGENET1K_V1 of "
            f"backbone 'resnet18' from {ResNet18_Weights.DEFAULT.url} ("
        ),
    ) as info:
        PretrainedFeatureExtractor("resnet18").fit(images)
    message = str(info.value)
    assert (
        f"Expected the file at {expected} (torch hub cache; set TORCH_HOME to "
        f"move it)." in message
    )
    assert "weights='path/to/checkpoint.pth'" in message
    assert isinstance(info.value, OSError)
    assert not expected.exists()


def test_corrupt_hub_file(monkeypatch, tmp_path, images):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"half a download")
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"Cannot load the weights ResNet18_Weights.IMAGENET1K_V1 of backbone "
            f"'resnet18' from the torch hub cache file {path} ("
        ),
    ) as info:
        PretrainedFeatureExtractor("resnet18").fit(images)
    assert str(info.value).endswith(
        "The file may be incomplete or hold another model: delete it to download "
        "it again, or replace it with a good copy."
    )


# -- checkpoints that do not fit ------------------------------------------------


def test_checkpoint_of_another_architecture(images):
    state_dict = seeded(TinyConvNet).state_dict()
    with pytest.raises(
        ValueError,
        match=re.escape(
            "The weights (state dict) do not fit backbone 'resnet18': 120 missing "
            "key(s) [conv1.weight, bn1.weight, bn1.bias, ...]; 14 unexpected key(s) "
            "[block1.0.weight, block1.0.bias, block1.1.weight, ...]; 2 shape "
            "mismatch(es) [fc.weight: checkpoint (10, 8) vs model (1000, 512), "
            "fc.bias: checkpoint (10,) vs model (1000,)]. The checkpoint is "
            "probably of another architecture or number of classes; pick the "
            "backbone it was saved from."
        ),
    ):
        PretrainedFeatureExtractor("resnet18", weights=state_dict).fit(images)


def test_checkpoint_with_another_number_of_classes(tiny_backbone, tmp_path, images):
    path = tmp_path / "ten_classes.pt"
    torch.save(seeded(TinyConvNet, width=4, num_classes=3).state_dict(), path)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"The weights in {str(path)!r} do not fit backbone 'test_weights_conv': "
            f"2 shape mismatch(es) [fc.weight: checkpoint (3, 4) vs model (10, 4), "
            f"fc.bias: checkpoint (3,) vs model (10,)]"
        ),
    ):
        PretrainedFeatureExtractor(tiny_backbone, weights=path).fit(images)


def test_weights_file_not_found(tiny_backbone, tmp_path, images):
    for weights in (
        str(tmp_path / "nope.pt"),
        "weights.safetensors",
        "checkpoints/model",
    ):
        with pytest.raises(
            FileNotFoundError,
            match=re.escape(
                f"weights file not found: {weights!r}. Pass an existing .pt, .pth "
                f"or .safetensors file, a state dict, 'DEFAULT', or None."
            ),
        ):
            PretrainedFeatureExtractor(tiny_backbone, weights=weights).fit(images)


@pytest.mark.parametrize(
    ("obj", "got"),
    [
        ([1, 2, 3], "got list."),
        ({"epoch": 3, "lr": 0.1}, "got dict with keys ['epoch', 'lr']."),
        ({}, "got dict with keys []."),
    ],
)
def test_file_that_is_not_a_state_dict(obj, got, tiny_backbone, tmp_path, images):
    path = tmp_path / "not_weights.pt"
    torch.save(obj, path)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"weights file {str(path)!r} is not a state dict (a mapping of "
            f"parameter names to "
            f"tensors); {got}"
        ),
    ):
        PretrainedFeatureExtractor(tiny_backbone, weights=path).fit(images)


class _RunsCode:
    """Unpickling this runs os.mkdir(marker): a stand-in for malicious code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_pickle_that_runs_code_is_refused(tiny_backbone, trained, tmp_path, images):
    marker = tmp_path / "code_ran"
    path = tmp_path / "malicious.pt"
    torch.save({"state_dict": trained[1], "payload": _RunsCode(str(marker))}, path)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"Cannot load weights file {str(path)!r} safely (UnpicklingError: "
        ),
    ) as info:
        PretrainedFeatureExtractor(tiny_backbone, weights=path).fit(images)
    assert (
        "re-save the file with torch.save(model.state_dict(), path) or as "
        ".safetensors." in str(info.value)
    )
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the file really runs code when trusted
    assert marker.is_dir()
