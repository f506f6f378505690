"""How an estimator reads ``X``: images (any form) or passthrough tensors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.utils.validation import validate_data

from ._inputs import ImageSequence, as_image_sequence
from ._preprocessing import Preprocessing


def preprocessing_from_dict(values):
    """The :class:`Preprocessing` of ``Preprocessing.to_dict()`` (or None)."""
    if values is None:
        return None
    values = dict(values)
    for key in ("mean", "std", "crop_size"):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    return Preprocessing(**values)


def resolved_attributes(estimator):
    """What fit resolved (backbone, weights, preprocessing, device) and learned
    about ``X``, as JSON values, for saving an estimator."""
    pre = estimator.preprocessing_
    out = {
        "preprocessing_": None if pre is None else pre.to_dict(),
        "weights_id_": estimator.weights_id_,
        "backbone_name_": estimator.backbone_name_,
        "device_": str(estimator.device_),
    }
    if hasattr(estimator, "n_features_in_"):
        out["n_features_in_"] = int(estimator.n_features_in_)
    if hasattr(estimator, "feature_names_in_"):
        out["feature_names_in_"] = [str(n) for n in estimator.feature_names_in_]
    if getattr(estimator, "_input_sample_shape", None) is not None:
        out["input_sample_shape"] = list(estimator._input_sample_shape)
    return out


def restore_input_attributes(estimator, fitted):
    """Set the ``X`` attributes :func:`resolved_attributes` saved."""
    for attr in ("n_features_in_", "feature_names_in_", "_input_sample_shape"):
        estimator.__dict__.pop(attr, None)
    if "n_features_in_" in fitted:
        estimator.n_features_in_ = fitted["n_features_in_"]
    if "feature_names_in_" in fitted:
        estimator.feature_names_in_ = np.asarray(
            fitted["feature_names_in_"], dtype=object
        )
    if "input_sample_shape" in fitted:
        estimator._input_sample_shape = tuple(fitted["input_sample_shape"])


def is_2d_numeric(X):
    """True for 2-D numeric arrays, tensors and DataFrames (not path lists)."""
    if isinstance(X, torch.Tensor):
        return X.ndim == 2
    if type(X).__name__ == "DataFrame":
        # dtype.kind also works for pandas extension dtypes (StringDtype: "O")
        return all(getattr(d, "kind", "O") in "biuf" for d in X.dtypes)
    if isinstance(X, np.ndarray):
        return X.ndim == 2 and X.dtype.kind in "biuf"
    return False


@dataclass(frozen=True)
class InputSpec:
    """The input contract of a fitted estimator.

    ``preprocessing`` None means passthrough: ``X`` must be numeric and goes
    to the backbone as a float32 tensor of the same shape.
    """

    preprocessing: Preprocessing | None
    image_shape: tuple | None

    @classmethod
    def create(cls, estimator, preprocessing, owner):
        # image_shape was validated with the other parameters (``_params``).
        shape = estimator.image_shape
        return cls(preprocessing, None if shape is None else tuple(map(int, shape)))

    @property
    def channels(self):
        return self.preprocessing.channels if self.preprocessing else 3

    def read(self, estimator, X, *, reset):
        """Validate ``X``; return an :class:`ImageSequence` or a float32 tensor."""
        if self.preprocessing is None:
            return self._read_passthrough(estimator, X, reset)
        if isinstance(X, ImageSequence):
            return X
        if is_2d_numeric(X):
            if isinstance(X, torch.Tensor):
                X = X.numpy()
            X = validate_data(
                estimator, X, reset=reset, dtype=None, ensure_all_finite=False
            )
        return as_image_sequence(
            X, image_shape=self.image_shape, channels=self.channels
        )

    def _read_passthrough(self, estimator, X, reset):
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        X = validate_data(estimator, X, reset=reset, dtype=np.float32, allow_nd=True)
        if reset:
            # As validate_data records n_features_in_: the shape of one sample,
            # which sktransfer.load needs to rebuild a passthrough extractor.
            estimator._input_sample_shape = tuple(int(s) for s in X.shape[1:])
        return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
