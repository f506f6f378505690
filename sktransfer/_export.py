"""Export fitted estimators to ONNX.

The exported graph takes one float32 batch ``pixels`` of shape
(N, C, H, W): images already resized and centre-cropped to the estimator's
input size, scaled to [0, 1]. Normalisation (mean, std) is inside the graph,
and so is everything after the backbone: pooling and layer selection of an
extractor, the softmax of a classifier, the target scaling of a regressor,
the views of ``tta``. The resize and crop (which depend on each image's
size) are written beside the file as JSON, ``<path>.json``, with the rest
of the recipe: what a runtime must do to an image before the graph, the
input and output names and shapes, and the classes.

With ``preprocessing="passthrough"`` the input ``x`` is the float32 array
the estimator reads (N, ...), unchanged.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._features import pool
from ._tta import tta_model

_ONNX_PACKAGES = ("onnx", "onnxscript")


class _Normalize(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class _LayerFeatures(nn.Module):
    """The features of named layers, captured by forward hooks that do not
    stop the forward pass (exporters trace no exceptions)."""

    def __init__(self, body, layers, pooling):
        super().__init__()
        self.body = body
        self.layers = layers
        self.pooling = pooling

    def forward(self, x):
        captured = {}
        modules = dict(self.body.named_modules())

        def hook_for(name):
            def hook(module, args, output):
                captured[name] = output

            return hook

        handles = [modules[n].register_forward_hook(hook_for(n)) for n in self.layers]
        try:
            self.body(x)
        finally:
            for handle in handles:
                handle.remove()
        return torch.cat(
            [pool(captured[n], self.pooling, layer=n).flatten(1) for n in self.layers],
            dim=1,
        )


class _Head(nn.Module):
    """What a fine-tuner does to the network's output: softmax (classifier),
    sigmoid (a classifier whose ``_tta_combine`` is "sigmoid") or inverse
    target scaling and shape (regressor)."""

    def __init__(self, kind, mean=None, scale=None, flat=False):
        super().__init__()
        self.kind = kind
        self.flat = flat
        if mean is not None:
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
            self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        else:
            self.mean = self.scale = None

    def forward(self, x):
        if self.kind == "softmax":
            return torch.softmax(x, dim=1)
        if self.kind == "sigmoid":  # per-label probabilities (multi-label)
            return torch.sigmoid(x)
        if self.mean is not None:
            x = x * self.scale + self.mean
        return x.flatten() if self.flat else x


def exportable_module(estimator):
    """``(module, recipe)``: a CPU float32 copy of the fitted estimator's
    network with normalisation and output step included, and the JSON recipe
    that goes beside the file."""
    name = type(estimator).__name__
    attribute = getattr(estimator, "_fitted_attribute", None)
    if attribute is None:
        raise TypeError(
            f"sktransfer export: expected a PretrainedFeatureExtractor, "
            f"FineTunedClassifier or FineTunedRegressor, got {name}."
        )
    check_is_fitted(estimator, attribute)
    pre = estimator.preprocessing_
    if attribute == "net_":  # a fine-tuner
        model, output, head = _finetuner_network(estimator)
    else:  # the extractor (its backbone_ is built on first use)
        model, output, head = _extractor_network(estimator), "features", None
    parts = [] if pre is None else [_Normalize(pre.mean, pre.std)]
    parts += [model] + ([] if head is None else [head])
    module = copy.deepcopy(nn.Sequential(*parts)).cpu().float().eval()
    module = module.to(memory_format=torch.contiguous_format)
    recipe = _recipe(estimator, output)
    return module, recipe


def _extractor_network(est):
    model = est.backbone_
    if model.layers is None:
        return model
    return _LayerFeatures(model.body, model.layers, model.pooling)


def _finetuner_network(est):
    combine = est._tta_combine
    model = tta_model(
        est.net_.module_,
        est.tta,
        combine,
        owner=type(est).__name__,
        images=est.preprocessing_ is not None,
    )
    if combine in ("softmax", "sigmoid"):
        return model, "probabilities", _Head(combine)
    scaler = est._y_scaler
    head = _Head(
        "mean",
        None if scaler is None else scaler.mean_.astype(np.float32),
        None if scaler is None else scaler.scale_.astype(np.float32),
        flat=est._y_ndim == 1,
    )
    return model, "predictions", head


def input_shape(estimator):
    """The shape of one input sample (C, H, W), or that of a passthrough
    sample; raises when the preprocessing gives no fixed size."""
    pre = estimator.preprocessing_
    if pre is None:
        return tuple(estimator._input_sample_shape)
    if pre.output_size is None:
        raise ValueError(
            f"{type(estimator).__name__}: export needs a fixed input size, but "
            f"preprocessing has crop_size=None; fit with "
            f"preprocessing={{'crop_size': S}}."
        )
    return (pre.channels, *pre.output_size)


def _recipe(est, output):
    pre = est.preprocessing_
    recipe = {
        "format": "sktransfer export 1",
        "estimator": type(est).__name__,
        "backbone": est.backbone_name_,
        "weights_id": est.weights_id_,
        "input": {
            "name": "x" if pre is None else "pixels",
            "shape": ["N", *input_shape(est)],
            "dtype": "float32",
        },
        "output": {"name": output},
    }
    if pre is None:
        recipe["preprocessing"] = "passthrough: x is the float32 array fit read"
    else:
        recipe["preprocessing"] = {
            "before_the_graph": {
                "resize_size": pre.resize_size,
                "resize": "shorter side to resize_size, aspect ratio kept, antialiased"
                if pre.resize_size is not None
                else None,
                "interpolation": pre.interpolation,
                "crop_size": list(pre.output_size),
                "crop": "centre",
                "scale": "pixels / 255 for uint8 images, channels first (C, H, W)",
                "channels": pre.channels,
            },
            "in_the_graph": {"mean": list(pre.mean), "std": list(pre.std)},
        }
    if hasattr(est, "classes_"):
        recipe["classes"] = [_plain(c) for c in est.classes_.tolist()]
    if hasattr(est, "n_features_out_"):
        recipe["output"]["n_features"] = int(est.n_features_out_)
    if getattr(est, "tta", None) is not None:
        recipe["tta"] = est.tta
    return recipe


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _example(estimator):
    return torch.rand((2, *input_shape(estimator)), dtype=torch.float32)


def _check_onnx_installed():
    missing = [p for p in _ONNX_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise ImportError(
            f"sktransfer.export_onnx needs the package(s) {missing}; install "
            f'them with: pip install "sktransfer[onnx]"'
        )


def export_onnx(estimator, path, *, opset_version=None):
    """Write a fitted estimator's network as an ONNX file, its recipe beside it.

    The graph's input is a float32 batch of images already resized and
    cropped to the estimator's input size, scaled to [0, 1], channels first:
    ``pixels`` of shape (N, C, H, W), N free. Normalisation and everything
    after the backbone is in the graph; the output is ``features``
    (:class:`~sktransfer.PretrainedFeatureExtractor`: what ``transform``
    gives, with ``layer`` and ``pooling``), ``probabilities``
    (:class:`~sktransfer.FineTunedClassifier`: ``predict_proba``, columns in
    ``classes_`` order) or ``predictions`` (:class:`~sktransfer.FineTunedRegressor`:
    ``predict``), with ``tta`` included. ``<path>.json`` holds the resize and
    crop to apply before the graph, the input and output names and shapes,
    and the classes. With ``preprocessing="passthrough"`` the input ``x`` is
    the float32 array ``X`` itself.

    Parameters
    ----------
    estimator : PretrainedFeatureExtractor, FineTunedClassifier or FineTunedRegressor
        A fitted estimator.
    path : str or path-like
        The ``.onnx`` file to write (weights inside it, one file).
    opset_version : int or None, default=None
        ONNX opset; None uses torch's default.

    Returns
    -------
    recipe : dict
        What was written to ``<path>.json``.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        When the estimator is not fitted.
    ImportError
        When ``onnx`` or ``onnxscript`` is missing (``pip install "sktransfer[onnx]"``).
    ValueError
        When torch's exporter cannot export the backbone; the message names it.

    Examples
    --------
    >>> import numpy as np, onnxruntime, tempfile, pathlib
    >>> from sktransfer import PretrainedFeatureExtractor, export_onnx
    >>> from sktransfer.testing import TinyConvNet
    >>> images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    >>> ext = PretrainedFeatureExtractor(
    ...     TinyConvNet(), preprocessing={"resize_size": 16, "crop_size": 16}).fit(images)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "extractor.onnx"
    >>> recipe = export_onnx(ext, path)
    >>> recipe["input"]["shape"], recipe["output"]["name"]
    (['N', 3, 16, 16], 'features')
    >>> pixels = images.transpose(0, 3, 1, 2).astype(np.float32) / 255
    >>> session = onnxruntime.InferenceSession(str(path))
    >>> (features,) = session.run(None, {"pixels": pixels})
    >>> bool(np.abs(features - ext.transform(images)).max() < 1e-5)
    True
    """
    module, recipe = exportable_module(estimator)
    _check_onnx_installed()
    path = Path(path)
    example = _example(estimator)
    in_name, out_name = recipe["input"]["name"], recipe["output"]["name"]
    try:
        program = torch.onnx.export(
            module,
            (example,),
            input_names=[in_name],
            output_names=[out_name],
            opset_version=opset_version,
            dynamo=True,
            external_data=False,
            dynamic_shapes=({0: torch.export.Dim("N")},),
            verbose=False,
        )
    except Exception as exc:
        raise ValueError(
            f"sktransfer.export_onnx: torch's ONNX exporter cannot export the "
            f"backbone {estimator.backbone_name_!r} of this "
            f"{type(estimator).__name__} ({_first_line(exc)}). Its forward "
            f"must be traceable by torch.export (no Python control flow on "
            f"tensor values); see torch.export's documentation."
        ) from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path))
    _write_recipe(path, {**recipe, "file": path.name, "runtime": "onnx"})
    return recipe


def _write_recipe(path, recipe):
    Path(f"{path}.json").write_text(json.dumps(recipe, indent=1), encoding="utf-8")


def _first_line(exc):
    """The first line of the innermost cause of ``exc`` (what went wrong,
    not the exporter's step), without terminal colour codes."""
    seen = {id(exc)}
    while exc.__cause__ is not None and id(exc.__cause__) not in seen:
        exc = exc.__cause__
        seen.add(id(exc))
    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else 'no message'}"
