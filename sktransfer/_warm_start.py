"""``warm_start=True``: a fine-tuner's next ``fit`` continues its fitted network.

A continued fit keeps the trained module (backbone body and head, on the
estimator's device), skips the linear probe of ``head_init`` and, for the
regressor, keeps the target scaling the head was trained in. Everything else
is a new run over the new data: a new skorch net and optimizer (AdamW
moments start at zero), the learning-rate schedule from its start (warmup
included) over ``max_epochs`` more epochs, the freezing strategy from epoch 0
(``freeze="staged"`` trains the head alone again for ``freeze_epochs``), and
``history_`` / ``n_iter_`` of this fit only. The classes, the number of
regression outputs, the backbone and the shape of the input must be those of
the fitted network; otherwise the fit raises before anything changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ContinuedFit:
    """What a continued fit takes over from the fitted estimator."""

    module: object
    backbone_name: str
    y_scaler: object
    n_features_in: object
    sample_shape: object

    def network(self, estimator, n_outputs):
        """The fitted module, checked against what this fit resolved and read."""
        name = type(estimator).__name__
        if estimator.backbone_name_ != self.backbone_name:
            raise ValueError(
                f"{name}: warm_start=True continues the fitted {self.backbone_name!r} "
                f"network, but backbone now resolves to "
                f"{estimator.backbone_name_!r}; set warm_start=False to train a "
                f"new network."
            )
        _check_input(
            name,
            self.n_features_in,
            getattr(estimator, "n_features_in_", None),
            self.sample_shape,
            getattr(estimator, "_input_sample_shape", None),
        )
        _check_outputs(name, n_outputs, self.module.head.out_features)
        module = self.module.to(estimator.device_)
        module.freeze_bn = estimator._freezes_bn(module.body)
        return module


def continued_fit(estimator, X, y):
    """A :class:`ContinuedFit` when this ``fit`` continues the fitted network
    (``warm_start=True`` and fitted), else None. Checks first, before the fit
    changes anything, what can be read cheaply: the classes of ``y`` and the
    shape of ``X`` (when it has one)."""
    if not estimator.warm_start or not hasattr(estimator, "net_"):
        return None
    name = type(estimator).__name__
    if estimator.checkpoint_dir is not None:
        raise ValueError(
            f"{name}: warm_start=True with checkpoint_dir would resume the "
            f"finished run's checkpoint instead of training more; set "
            f"checkpoint_dir=None for the continued fit."
        )
    classes = getattr(estimator, "classes_", None)
    if classes is not None:
        labels = _labels(y)
        if labels is not None and not np.array_equal(labels, classes):
            raise ValueError(
                f"{name}: warm_start=True continues a network trained on the "
                f"classes {classes.tolist()}, but y has the classes "
                f"{labels.tolist()}; set warm_start=False to train a new network "
                f"for other classes."
            )
    else:
        _check_outputs(name, y, estimator.net_.module_.head.out_features)
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) >= 2:
        sample_shape = tuple(int(s) for s in shape[1:])
        old_shape = getattr(estimator, "_input_sample_shape", None)
        _check_input(
            name,
            getattr(estimator, "n_features_in_", None),
            int(shape[1]) if len(shape) == 2 else None,
            old_shape,
            sample_shape if old_shape is not None else None,
        )
    return ContinuedFit(
        module=estimator.net_.module_,
        backbone_name=estimator.backbone_name_,
        y_scaler=getattr(estimator, "_y_scaler", None),
        n_features_in=getattr(estimator, "n_features_in_", None),
        sample_shape=getattr(estimator, "_input_sample_shape", None),
    )


def _labels(y):
    try:
        y = y.to_numpy() if hasattr(y, "to_numpy") else np.asarray(y)
        return np.unique(y.ravel()) if y.ndim == 1 else None
    except (TypeError, ValueError):
        return None  # the fit's own checks of y say what is wrong


def _check_outputs(name, y, head_outputs):
    """``y`` (targets, or their number of columns) against the head."""
    if isinstance(y, int):
        n_outputs = y
    else:
        try:
            shape = np.shape(y)
        except (TypeError, ValueError):
            return  # the fit's own checks of y say what is wrong
        n_outputs = 1 if len(shape) < 2 else int(np.prod(shape[1:]))
    if n_outputs != head_outputs:
        raise ValueError(
            f"{name}: warm_start=True continues a network with "
            f"{head_outputs} outputs, but y has {n_outputs}; set "
            f"warm_start=False to train a new network."
        )


def _check_input(name, old_features, new_features, old_shape, new_shape):
    if old_shape is not None and new_shape is not None and old_shape != new_shape:
        raise ValueError(
            f"{name}: warm_start=True continues a network fitted on samples of "
            f"shape {old_shape}, but X has samples of shape {new_shape}; set "
            f"warm_start=False to train a new network."
        )
    if (
        old_features is not None
        and new_features is not None
        and old_features != new_features
    ):
        raise ValueError(
            f"{name}: warm_start=True continues a network fitted on X with "
            f"{old_features} features, but X has {new_features}; set "
            f"warm_start=False to train a new network."
        )
