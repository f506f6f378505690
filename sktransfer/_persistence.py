"""Save and load fitted estimators without pickle.

``sktransfer.save(estimator, path)`` writes a folder:

- ``config.json``: the save format version, the sktransfer version, the
  class name, the parameters (``get_params``) and the fitted attributes
  prediction needs (preprocessing, classes and their dtype, target scaling,
  device, feature counts, history), all plain JSON;
- ``model.safetensors``: the weights.

``sktransfer.load(path)`` parses the JSON and reads the safetensors file, so
nothing in the folder can run code. It rebuilds the backbone architecture by
its registry name (random initialisation, nothing downloaded) and loads the
saved weights into it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

import sktransfer

from ._cache import FeatureCache
from ._device import resolve_device
from ._extractor import PretrainedFeatureExtractor
from ._files import atomic_write
from ._finetune import FineTunedClassifier, FineTunedRegressor
from ._params import legacy_values, names
from ._state import (
    FORMAT_VERSION,
    MIN_FORMAT_VERSION,
    check_backbone_available,
    cpu_tensors,
    saved_device,
)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
_CLASSES = {
    cls.__name__: cls
    for cls in (PretrainedFeatureExtractor, FineTunedClassifier, FineTunedRegressor)
}


def save(estimator, path):
    """Save a fitted sktransfer estimator to the folder ``path``, without pickle.

    The folder holds ``config.json`` (format and sktransfer versions, class,
    parameters and fitted attributes, as JSON) and ``model.safetensors`` (the
    weights). It is written next to ``path`` first and then renamed, so an
    interrupted save never leaves a half-written folder; an earlier save at
    ``path`` is replaced.

    Parameters
    ----------
    estimator : PretrainedFeatureExtractor, FineTunedClassifier or FineTunedRegressor
        A fitted estimator whose parameters are plain values: ``backbone``
        must be a name (register your own ``nn.Module`` with
        :func:`sktransfer.register_backbone`), and ``weights``,
        ``random_state``, ``train_transform`` and ``net_params`` must not hold
        objects (modules, state dicts, functions, callbacks).
    path : str or path-like
        The folder to write.

    Raises
    ------
    ValueError
        When a parameter cannot be stored as JSON; the message says which and
        what to do.

    See Also
    --------
    load : Load an estimator saved by ``save``.

    Examples
    --------
    >>> import tempfile, numpy as np, sktransfer
    >>> from sktransfer import PretrainedFeatureExtractor
    >>> X = np.zeros((2, 16, 16, 3), np.uint8)
    >>> ext = PretrainedFeatureExtractor("resnet18", weights=None, device="cpu",
    ...     preprocessing={"resize_size": 16, "crop_size": 16}).fit(X)
    >>> folder = tempfile.mkdtemp() + "/extractor"
    >>> sktransfer.save(ext, folder)
    >>> loaded = sktransfer.load(folder)
    >>> bool(np.array_equal(loaded.transform(X), ext.transform(X)))
    True
    """
    name = _class_name(estimator)
    check_is_fitted(estimator)
    params = {
        k: _encode(v, k, name) for k, v in estimator.get_params(deep=False).items()
    }
    tensors, fitted = estimator._export()
    config = {
        "format": "sktransfer",
        "format_version": FORMAT_VERSION,
        "sktransfer_version": sktransfer.__version__,
        "class": name,
        "params": params,
        "fitted": fitted,
        "versions": _library_versions(),
    }
    try:
        text = json.dumps(config, indent=2, sort_keys=True)
    except TypeError as exc:  # e.g. class labels that are dates
        raise ValueError(
            f"sktransfer.save: cannot store the fitted {name} as JSON ({exc}); "
            f"class labels must be numbers, strings or booleans."
        ) from exc
    _write_folder(Path(path), text, cpu_tensors(tensors, name))


def load(path, *, device=None):
    """Load an estimator written by :func:`sktransfer.save`; runs no code.

    Parameters
    ----------
    path : str or path-like
        A folder written by :func:`save`.
    device : str, torch.device or None, default=None
        Where the loaded estimator runs; it becomes its ``device``
        parameter. None keeps the saved ``device`` parameter, falling back to
        the CPU (with a warning) when that device is not available here, e.g.
        for an estimator fitted on a GPU.

    Returns
    -------
    estimator : PretrainedFeatureExtractor, FineTunedClassifier or FineTunedRegressor
        Fitted, with the saved parameters and weights. A backbone added with
        :func:`sktransfer.register_backbone` must be registered again (under
        the same name) before loading.

    Raises
    ------
    ValueError
        For a folder that is not an sktransfer save, a save format newer than
        this sktransfer reads (upgrade sktransfer), or weights that do not fit
        the backbone.

    Examples
    --------
    >>> import tempfile, numpy as np, sktransfer
    >>> from sktransfer import PretrainedFeatureExtractor
    >>> X = np.zeros((2, 16, 16, 3), np.uint8)
    >>> ext = PretrainedFeatureExtractor("resnet18", weights=None, device="cpu",
    ...     preprocessing={"resize_size": 16, "crop_size": 16}).fit(X)
    >>> folder = tempfile.mkdtemp() + "/extractor"
    >>> sktransfer.save(ext, folder)
    >>> loaded = sktransfer.load(folder, device="cpu")
    >>> type(loaded).__name__, loaded.n_features_out_
    ('PretrainedFeatureExtractor', 512)
    """
    from safetensors.torch import load_file

    folder = Path(path)
    config = _read_config(folder)
    name = config["class"]
    cls = _CLASSES[name]
    params = _read_params(config, cls, folder)
    check_backbone_available(
        params["backbone"], f"sktransfer.load: the {name} in {str(folder)!r}"
    )
    weights_path = folder / WEIGHTS_FILE
    try:
        tensors = load_file(str(weights_path), device="cpu")
    except Exception as exc:  # missing, truncated, not safetensors
        raise ValueError(
            f"sktransfer.load: cannot read the weights {str(weights_path)!r} "
            f"({type(exc).__name__}: {exc}); the folder was not written by "
            f"sktransfer.save or is damaged."
        ) from exc
    # Parameters added since the folder was written: what they did then.
    estimator = cls(**{**legacy_values(cls._params, params), **params})
    if device is None:
        resolved = saved_device(estimator.device, name)
    else:
        estimator.set_params(device=device)
        resolved = resolve_device(device, f"sktransfer.load: {name}")
    return estimator._restore(tensors, config["fitted"], resolved)


# -- skops ---------------------------------------------------------------------
def skops_trusted_types():
    """The sktransfer types a skops file of sktransfer estimators may hold.

    Pass them to ``skops.io.load(path, trusted=...)``. They are the three
    estimators and :class:`~sktransfer.FeatureCache` (a ``cache`` parameter). A
    fitted estimator's skops state is its parameters plus plain values and
    the weights as safetensors bytes, so loading it runs no sktransfer code
    beyond rebuilding the backbone by its registry name.
    ``skops.io.get_untrusted_types(file=path)`` lists what a file needs; any
    type it names that is not in this list (a callback in ``net_params``, a
    function as ``train_transform``) is yours to review.

    Returns
    -------
    types : list of str
        Fully qualified type names, as skops spells them.

    Examples
    --------
    >>> import sktransfer
    >>> sktransfer.skops_trusted_types()[0]
    'sktransfer._extractor.PretrainedFeatureExtractor'
    """
    return [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in (
            PretrainedFeatureExtractor,
            FineTunedClassifier,
            FineTunedRegressor,
            FeatureCache,
        )
    ]


# -- parameters as JSON -------------------------------------------------------
_TAGS = (
    "__tuple__",
    "__dict__",
    "__float__",
    "__path__",
    "__device__",
    "__torchvision_weights__",
)


def _encode(value, name, owner):
    """A JSON value for the parameter ``name``; ValueError if there is none."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, name, owner) for v in value]}
    if isinstance(value, list):
        return [_encode(v, name, owner) for v in value]
    if isinstance(value, os.PathLike):
        return {"__path__": os.fspath(value)}
    if isinstance(value, torch.device):
        return {"__device__": str(value)}
    weights_enum = _torchvision_weights_name(value)
    if weights_enum is not None:
        return {"__torchvision_weights__": weights_enum}
    if isinstance(value, Mapping) and not _is_state_dict(value):
        if all(isinstance(k, str) for k in value) and not (
            len(value) == 1 and next(iter(value)) in _TAGS
        ):
            return {k: _encode(v, name, owner) for k, v in value.items()}
        return {
            "__dict__": [
                [_encode(k, name, owner), _encode(v, name, owner)]
                for k, v in value.items()
            ]
        }
    raise ValueError(_unsaveable(value, name, owner))


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and next(iter(value)) in _TAGS:
        tag, content = next(iter(value.items()))
        if tag == "__tuple__":
            return tuple(_decode(v) for v in content)
        if tag == "__dict__":
            return {_decode(k): _decode(v) for k, v in content}
        if tag == "__float__":
            return float(content)
        if tag == "__path__":
            return Path(content)
        if tag == "__device__":
            return torch.device(content)
        # A lookup in torchvision's registry of weight enums.
        from torchvision.models import get_weight

        return get_weight(content)
    return {k: _decode(v) for k, v in value.items()}


def _unsaveable(value, name, owner):
    what = "state dict" if _is_state_dict(value) else type(value).__name__
    head = (
        f"sktransfer.save: {owner}'s parameter {name} is a {what}, which the "
        f"saved JSON config cannot hold."
    )
    if isinstance(value, nn.Module):
        return (
            f"{head} sktransfer.save stores the backbone by name, so that "
            f"loading runs no code: register a function building it, "
            f"sktransfer.register_backbone('my_net', lambda weights: "
            f"{type(value).__name__}()), fit with backbone='my_net', and register "
            f"it again before sktransfer.load. Or pickle the estimator (and load "
            f"only pickles you trust)."
        )
    if name == "weights" and _is_state_dict(value):
        return (
            f"{head} Save the state dict to a file (safetensors.torch.save_file "
            f"or torch.save) and pass its path as weights."
        )
    if name == "random_state":
        return f"{head} Use an int (or None) as random_state."
    if name in names(getattr(_CLASSES.get(owner), "_params", ()), fit_only=True):
        return (
            f"{head} Only fit uses it: save a copy without it, "
            f"sktransfer.save(copy.deepcopy(est).set_params({name}=None), path), "
            f"or pickle the estimator (and load only pickles you trust)."
        )
    return f"{head} Use a plain value (str, number, list, dict) for it."


def _is_state_dict(value):
    return isinstance(value, Mapping) and any(
        isinstance(v, torch.Tensor) for v in value.values()
    )


def _torchvision_weights_name(value):
    try:
        from torchvision.models import WeightsEnum
    except ImportError:  # pragma: no cover - torchvision is a dependency
        return None
    if isinstance(value, WeightsEnum):
        return f"{type(value).__name__}.{value.name}"
    return None


# -- files --------------------------------------------------------------------
def _class_name(estimator):
    name = type(estimator).__name__
    if type(estimator) is _CLASSES.get(name):
        return name
    raise TypeError(
        f"sktransfer.save saves PretrainedFeatureExtractor, FineTunedClassifier "
        f"and FineTunedRegressor instances, got {type(estimator).__name__}. "
        f"Save the other steps of a pipeline with their own tools."
    )


def _write_folder(path, text, tensors):
    from safetensors.torch import save_file

    if path.exists() and not (
        path.is_dir() and (not any(path.iterdir()) or (path / CONFIG_FILE).is_file())
    ):
        raise FileExistsError(
            f"sktransfer.save: {str(path)!r} exists and is not a folder written "
            f"by sktransfer.save; choose another path or remove it."
        )

    def fill(tmp):
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        (tmp / CONFIG_FILE).write_text(text + "\n", encoding="utf-8")

    atomic_write(path, fill, folder=True)


def _read_config(folder):
    if not folder.exists():
        raise FileNotFoundError(f"sktransfer.load: no such folder: {str(folder)!r}.")
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise ValueError(
            f"sktransfer.load: {str(folder)!r} is not a folder written by "
            f"sktransfer.save (it has no {CONFIG_FILE})."
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"sktransfer.load: {str(config_path)!r} is not valid JSON ({exc})."
        ) from exc
    if not isinstance(config, dict) or config.get("format") != "sktransfer":
        raise ValueError(
            f"sktransfer.load: {str(config_path)!r} was not written by "
            f'sktransfer.save (no "format": "sktransfer" entry).'
        )
    version = config.get("format_version")
    saved_by = config.get("sktransfer_version", "an unknown version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(
            f"sktransfer.load: {str(config_path)!r} has no valid format_version "
            f"(got {version!r})."
        )
    if version > FORMAT_VERSION:
        raise ValueError(
            f"sktransfer.load: {str(folder)!r} was saved by sktransfer "
            f"{saved_by} in save format {version}, but sktransfer {sktransfer.__version__} "
            f"reads formats {MIN_FORMAT_VERSION} to {FORMAT_VERSION}. Upgrade "
            f"sktransfer to load it: pip install --upgrade sktransfer."
        )
    if version < MIN_FORMAT_VERSION:
        raise ValueError(
            f"sktransfer.load: {str(folder)!r} was saved by sktransfer {saved_by} "
            f"in save format {version}, which sktransfer {sktransfer.__version__} no longer "
            f"reads (formats {MIN_FORMAT_VERSION} to {FORMAT_VERSION}). Load it "
            f"with the older sktransfer and save it again."
        )
    if config.get("class") not in _CLASSES:
        raise ValueError(
            f"sktransfer.load: {str(config_path)!r} names class "
            f"{config.get('class')!r}; sktransfer.load builds only "
            f"{sorted(_CLASSES)}."
        )
    return config


def _read_params(config, cls, folder):
    try:
        params = {k: _decode(v) for k, v in dict(config["params"]).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"sktransfer.load: cannot read the parameters in "
            f"{str(folder / CONFIG_FILE)!r} ({type(exc).__name__}: {exc})."
        ) from exc
    # Parameters missing from an older save keep their defaults.
    unknown = sorted(set(params) - set(cls._get_param_names()))
    if unknown:
        raise ValueError(
            f"sktransfer.load: {str(folder)!r} was saved by sktransfer "
            f"{config.get('sktransfer_version')} with {cls.__name__} parameter(s) "
            f"{unknown} that sktransfer {sktransfer.__version__} does not know. Upgrade "
            f"sktransfer to load it: pip install --upgrade sktransfer."
        )
    return params


def _library_versions():
    import sklearn

    return {"torch": torch.__version__, "scikit-learn": sklearn.__version__}
