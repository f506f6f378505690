"""FineTunedClassifier and FineTunedRegressor: fine-tune a pretrained backbone.

Both wrap a skorch ``NeuralNet`` built in ``fit`` (``net_``). Backbone,
weights, device, preprocessing, input handling and inference are shared with
:class:`~sktransfer.PretrainedFeatureExtractor` (``_base``); the net, its
callbacks and training are in ``_training``, checkpoints and interruption in
``_checkpoint``: this module holds the estimators only.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d
from torch import nn

from ._augment import make_augmentation
from ._base import PretrainedEstimator, training_seed
from ._checkpoint import after_interruption, training_state
from ._device import wants_channels_last
from ._features import FeatureModel
from ._input_spec import (
    preprocessing_from_dict,
    resolved_attributes,
    restore_input_attributes,
)
from ._params import (
    CLASSIFIER_PARAMS,
    FINETUNE_PARAMS,
    REGRESSOR_PARAMS,
    params_doc,
)
from ._probe_head import probe_classifier, probe_regressor, set_head
from ._state import to_plain
from ._torch_datasets import ImageDataset, TensorDataset, subset
from ._training import (
    TransferNet,
    make_net,
    restored_net,
    seeded_training,
    split_blocks,
    train,
)
from .backbones._weights import load_state_dict_checked


class _FineTunedBase(PretrainedEstimator):
    _params = FINETUNE_PARAMS
    _fitted_attribute = "net_"

    # -- fit: named steps ----------------------------------------------
    def _fit(self, X, y):
        # A failed (re)fit must not leave a fitted-looking estimator behind.
        self.__dict__.pop("net_", None)
        self._check_params()
        y = self._check_y(X, y)
        y_train, n_outputs = self._encode_target(y)
        loaded = self._resolve()
        data = self._read_training_data(X, y)
        augmentation = self._augmentation(loaded.preprocessing)
        seed = training_seed(self.random_state)
        with seeded_training(seed, self.device_):
            module = self._build_module(loaded, data, n_outputs)
            train_ds, valid_ds, precompute, train_idx = self._datasets(
                module, data, y_train, seed, augmentation
            )
            if self._probe_head_init(module):
                self._init_head_from_probe(module, data, y_train, train_idx)
            state = training_state(self, data, y_train, valid_ds is not None)
            criterion = self._criterion(y_train)
            net = make_net(self, module, criterion, len(train_ds), valid_ds, state)
            self.fit_time_ = self._train(net, module, train_ds, state, precompute)
        self.net_ = net
        self._set_history()
        return self

    def _read_training_data(self, X, y):
        data = self._input_spec.read(self, X, reset=True)
        if len(data) != len(y):
            raise ValueError(
                f"{self._name}: X and y have different lengths: {len(data)} "
                f"images but {len(y)} targets."
            )
        return data

    def _build_module(self, loaded, data, n_outputs):
        """The backbone body (head dropped) and a new linear head."""
        body = FeatureModel(loaded.model, loaded.head, None, "avg").to(self.device_)
        head = nn.Linear(self._n_features(body, data), n_outputs)
        return _transfer_net(body, head, self.device_, self._freezes_bn(body))

    def _freezes_bn(self, body):
        if self.freeze_bn == "auto":
            return self.weights is not None and _has_trained_bn(body)
        return bool(self.freeze_bn)

    def _probe_head_init(self, module):
        if self.head_init == "auto":
            return module.freeze_bn or not _has_batchnorm(module.body)
        return self.head_init == "probe"

    def _init_head_from_probe(self, module, data, y, train_idx):
        """LP-FT's first stage: the head becomes the linear probe fitted on
        the frozen body's features of the training images (no augmentation)."""
        feats, _ = self._infer(
            module.body,
            subset(data, train_idx),
            channels_last=module.channels_last,
        )
        weight, bias = self._probe_head(feats, y[train_idx])
        set_head(module.head, weight, bias)

    def _train(self, net, module, train_ds, state, precompute):
        """Run the training (or resume it); returns the seconds it took."""
        module.precomputed = precompute
        start = time.perf_counter()
        try:
            train(net, train_ds, state.resume)
            after_interruption(net, state, self._name, self.checkpoint_dir)
        finally:
            module.precomputed = False
            module.set_frozen([])
            module.eval()
            state.best_state_ = state.resume = None  # not kept in net_
        return time.perf_counter() - start

    def _set_history(self):
        self.history_ = [
            {k: v for k, v in row.items() if k != "batches"}
            for row in self.net_.history
        ]
        self.n_epochs_ = len(self.history_)

    def _check_y(self, X, y):
        if y is None:
            raise ValueError(
                f"{self._name} requires y to be passed, but the target y is None."
            )
        y = np.asarray(y) if not hasattr(y, "to_numpy") else y.to_numpy()
        if len(y) == 0:
            raise ValueError(
                f"{self._name}: y is empty; at least one sample is required."
            )
        return y

    def _augmentation(self, preprocessing):
        if preprocessing is None:
            if self.augment != "off" or self.train_transform is not None:
                raise ValueError(
                    f"{self._name}: augment={self.augment!r} and train_transform "
                    f"apply to images; with preprocessing='passthrough' set "
                    f"augment='off' and train_transform=None."
                )
            return None
        return make_augmentation(
            self.augment, self.train_transform, preprocessing.output_size
        )

    def _n_features(self, body, data):
        body.eval()
        first = subset(data, [0])
        with torch.no_grad():
            if isinstance(first, torch.Tensor):
                x = first
            else:
                x = self.preprocessing_.apply(first[0])[None]
            out = body(x.to(self.device_))
        return int(out.shape[1])

    def _split(self, y, seed):
        idx = np.arange(len(y))
        if not self.early_stopping:
            return idx, None
        stratify = self._stratify(y)
        train_idx, valid_idx = train_test_split(
            idx,
            test_size=self.validation_fraction,
            random_state=seed % (2**32 - 1),
            stratify=stratify,
        )
        return np.sort(train_idx), np.sort(valid_idx)

    def _stratify(self, y):
        return None

    def _datasets(self, module, data, y, seed, augmentation):
        """Training and validation data sets (None without early stopping),
        whether the training set holds precomputed backbone features (linear
        probe without augmentation), and the training rows of ``data``."""
        train_idx, valid_idx = self._split(y, seed)
        precompute = self.freeze == "backbone" and augmentation is None
        y_t = torch.as_tensor(y)
        parts = [train_idx] if valid_idx is None else [train_idx, valid_idx]
        out = []
        for k, idx in enumerate(parts):
            part = subset(data, idx)
            if precompute:
                feats, _ = self._infer(module.body, part)
                out.append(TensorDataset(torch.from_numpy(feats), y_t[idx]))
            elif isinstance(part, torch.Tensor):
                out.append(TensorDataset(part, y_t[idx]))
            else:
                aug = augmentation if k == 0 else None
                out.append(ImageDataset(part, y_t[idx], self.preprocessing_, aug))
        return out[0], (out[1] if len(out) > 1 else None), precompute, train_idx

    def _decision(self, X):
        check_is_fitted(self, "net_")
        data = self._input_spec.read(self, X, reset=False)
        return self._infer(self.net_.module_, data)[0]

    # -- saving without pickle: sktransfer.save / sktransfer.load ---------
    def _export(self):
        """Tensors and JSON-able fitted attributes, for :func:`sktransfer.save`."""
        check_is_fitted(self, "net_")
        tensors = {f"module.{k}": v for k, v in self.net_.module_.state_dict().items()}
        tensors.update(
            {f"criterion.{k}": v for k, v in self.net_.criterion_.state_dict().items()}
        )
        fitted = {
            "history_": to_plain(self.history_),
            "fit_time_": float(self.fit_time_),
            **resolved_attributes(self),
            **self._export_target(),
        }
        return tensors, fitted

    def _restore(self, tensors, fitted, device):
        """Rebuild the fitted estimator :meth:`_export` described, without
        training: the architecture from the registry (random weights, no
        download), then the saved weights."""
        self._check_params()
        loaded = self._architecture()
        self._set_resolved(
            preprocessing_from_dict(fitted["preprocessing_"]),
            fitted["weights_id_"],
            fitted["backbone_name_"],
            device,
        )
        restore_input_attributes(self, fitted)
        self._restore_target(fitted)
        module = _saved_module(loaded, tensors, self._name, device)
        criterion = self._saved_criterion(tensors.get("criterion.weight"))
        self.net_ = restored_net(self, module.eval(), criterion, fitted["history_"])
        self._set_history()
        self.fit_time_ = fitted["fit_time_"]
        return self


class FineTunedClassifier(ClassifierMixin, _FineTunedBase):
    __doc__ = f"""Fine-tune a pretrained backbone as a scikit-learn classifier.

    Labels of any type (strings, unsorted ints) are encoded internally;
    ``predict_proba`` follows ``classes_``. The default recipe is LP-FT: the
    new head starts at the linear probe's solution on the frozen features,
    then the whole network trains with AdamW, a warmup-cosine schedule,
    BatchNorm statistics kept fixed and cross-entropy (with optional label
    smoothing and class weights), at least 150 optimizer steps. The skorch
    net is created in :meth:`fit` as ``net_``.

    Parameters
    ----------
{params_doc(FINETUNE_PARAMS + CLASSIFIER_PARAMS)}

    Attributes
    ----------
    classes_ : ndarray
        The class labels, in ``np.unique`` order.
    net_ : skorch.NeuralNet
        The trained net; ``net_.module_`` is the backbone body plus new head.
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``lr``, ``dur`` (seconds) and,
        with early stopping, ``valid_loss`` and ``valid_acc``.
    n_epochs_ : int
        Epochs run (fewer than ``max_epochs`` after early stopping).
    fit_time_ : float
        Seconds spent in the training loop.

    Notes
    -----
    Ctrl-C during ``fit`` leaves a fitted estimator with the weights of the
    best completed epoch, and a warning; with ``checkpoint_dir`` a later
    ``fit`` resumes the run. Pickles carry the weights and load on a CPU when
    saved on a GPU, but unpickling runs code: only load pickles you trust.
    :func:`sktransfer.save` and :func:`sktransfer.load` store a fitted
    estimator without pickle.

    Examples
    --------
    >>> from sktransfer import FineTunedClassifier
    >>> from sktransfer._testing import TinyConvNet, make_shapes_dataset
    >>> X, y = make_shapes_dataset(n_per_class=10, size=16)
    >>> clf = FineTunedClassifier(TinyConvNet(), freeze="none", max_epochs=2,
    ...     augment="off", preprocessing={{"resize_size": 16, "crop_size": 16}},
    ...     random_state=0).fit(X, y)
    >>> clf.classes_
    array(['disk', 'square'], dtype='<U6')
    >>> clf.predict_proba(X).shape
    (20, 2)
    """
    _params = FINETUNE_PARAMS + CLASSIFIER_PARAMS
    _score_name = "valid_acc"

    def __init__(
        self,
        backbone="resnet18",
        *,
        weights="DEFAULT",
        freeze="none",
        freeze_epochs=1,
        head_init="auto",
        freeze_bn="auto",
        lr=3e-4,
        backbone_lr_ratio=1.0,
        layer_decay=None,
        weight_decay=0.01,
        schedule="cosine",
        warmup=0.1,
        max_epochs="auto",
        batch_size=32,
        augment="light",
        train_transform=None,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=3,
        preprocessing=None,
        image_shape=None,
        device="auto",
        random_state=None,
        verbose=0,
        net_params=None,
        checkpoint_dir=None,
        class_weight=None,
        label_smoothing=0.0,
    ):
        # Stores each argument as is (scikit-learn reads them back by name).
        self._store_params(locals())

    def fit(self, X, y):
        """Fine-tune on images ``X`` (any form the extractor accepts), labels ``y``.

        Parameters
        ----------
        X : images
            Any form :meth:`PretrainedFeatureExtractor.transform
            <sktransfer.PretrainedFeatureExtractor.transform>` accepts.
        y : array-like of shape (n_samples,)
            Class labels, of any type :func:`numpy.unique` sorts.

        Returns
        -------
        self : FineTunedClassifier
            The fitted classifier.
        """
        return self._fit(X, y)

    def _encode_target(self, y):
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self._label_encoder = LabelEncoder().fit(y)
        self.classes_ = self._label_encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(
                f"{self._name} needs samples of at least 2 classes in the data, "
                f"but the data contains only one class: {self.classes_.tolist()[0]!r}."
            )
        return self._label_encoder.transform(y).astype(np.int64), len(self.classes_)

    def _stratify(self, y):
        counts = np.bincount(y)
        return y if counts.min() >= 2 else None

    def _probe_head(self, features, y):
        weights = self._class_weights(y)
        weights = None if weights is None else weights.cpu().numpy()
        return probe_classifier(features, y, len(self.classes_), weights)

    def _criterion(self, y):
        return self._saved_criterion(self._class_weights(y))

    def _saved_criterion(self, weight):
        if weight is not None:
            weight = weight.to(self.device_)
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=self.label_smoothing)

    def _export_target(self):
        return {
            "classes_": to_plain(self.classes_.tolist()),
            "classes_dtype": self.classes_.dtype.str,
        }

    def _restore_target(self, fitted):
        dtype = np.dtype(fitted["classes_dtype"])
        classes = np.asarray(fitted["classes_"], dtype=dtype)
        self._label_encoder = LabelEncoder()
        self._label_encoder.classes_ = classes
        self.classes_ = classes

    def _class_weights(self, y):
        cw = self.class_weight
        if cw is None:
            return None
        classes = np.arange(len(self.classes_))
        if cw == "balanced":
            w = compute_class_weight("balanced", classes=classes, y=y)
        else:  # a dict (the parameter table allows nothing else)
            unknown = [k for k in cw if k not in set(self.classes_.tolist())]
            if unknown:
                raise ValueError(
                    f"{self._name}: class_weight has labels {unknown} "
                    f"that are not in y's classes {self.classes_.tolist()}."
                )
            w = np.array([cw.get(c, 1.0) for c in self.classes_], dtype=float)
        return torch.as_tensor(w, dtype=torch.float32, device=self.device_)

    @staticmethod
    def _valid_score(logits, y):
        return float((logits.argmax(1) == y).float().mean())

    def predict_proba(self, X):
        """Class probabilities, columns in ``classes_`` order.

        Parameters
        ----------
        X : images
            Any form :meth:`PretrainedFeatureExtractor.transform
            <sktransfer.PretrainedFeatureExtractor.transform>` accepts.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), float32
            Softmax of the network's outputs; each row sums to 1.
        """
        logits = torch.from_numpy(self._decision(X))
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, X):
        """Predicted labels (of the type given in ``y``).

        Parameters
        ----------
        X : images
            Any form :meth:`PretrainedFeatureExtractor.transform
            <sktransfer.PretrainedFeatureExtractor.transform>` accepts.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            The class of highest probability, an element of ``classes_``.
        """
        decision = self._decision(X)  # checks the fitted state first
        return self.classes_[decision.argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags


class FineTunedRegressor(RegressorMixin, _FineTunedBase):
    __doc__ = f"""Fine-tune a pretrained backbone as a scikit-learn regressor.

    Targets may be 1-D or 2-D; with ``target_scaling`` they are standardised
    for training and predictions are mapped back. Trained with MSE, by the
    classifier's recipe (LP-FT): the head starts at the ridge regression
    (RidgeCV) fitted on the frozen features.

    Parameters
    ----------
{params_doc(FINETUNE_PARAMS + REGRESSOR_PARAMS)}

    Attributes
    ----------
    net_ : skorch.NeuralNet
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``lr``, ``dur`` and, with early
        stopping, ``valid_loss`` and ``valid_r2``.
    n_epochs_ : int
    fit_time_ : float

    Notes
    -----
    Ctrl-C during ``fit`` leaves a fitted estimator with the weights of the
    best completed epoch, and a warning; with ``checkpoint_dir`` a later
    ``fit`` resumes the run. Pickles carry the weights and load on a CPU when
    saved on a GPU, but unpickling runs code: only load pickles you trust.
    :func:`sktransfer.save` and :func:`sktransfer.load` store a fitted
    estimator without pickle.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import FineTunedRegressor
    >>> from sktransfer._testing import TinyConvNet, make_shapes_dataset
    >>> X, labels = make_shapes_dataset(n_per_class=10, size=16)
    >>> y = (labels == "square").astype(float)
    >>> reg = FineTunedRegressor(TinyConvNet(), max_epochs=2, augment="off",
    ...     preprocessing={{"resize_size": 16, "crop_size": 16}},
    ...     random_state=0).fit(X, y)
    >>> reg.predict(X).shape
    (20,)
    """
    _params = FINETUNE_PARAMS + REGRESSOR_PARAMS
    _score_name = "valid_r2"

    def __init__(
        self,
        backbone="resnet18",
        *,
        weights="DEFAULT",
        freeze="none",
        freeze_epochs=1,
        head_init="auto",
        freeze_bn="auto",
        lr=3e-4,
        backbone_lr_ratio=1.0,
        layer_decay=None,
        weight_decay=0.01,
        schedule="cosine",
        warmup=0.1,
        max_epochs="auto",
        batch_size=32,
        augment="light",
        train_transform=None,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=3,
        preprocessing=None,
        image_shape=None,
        device="auto",
        random_state=None,
        verbose=0,
        net_params=None,
        checkpoint_dir=None,
        target_scaling=True,
    ):
        # Stores each argument as is (scikit-learn reads them back by name).
        self._store_params(locals())

    def fit(self, X, y):
        """Fine-tune on images ``X`` and numeric targets ``y`` (1-D or 2-D).

        Parameters
        ----------
        X : images
            Any form :meth:`PretrainedFeatureExtractor.transform
            <sktransfer.PretrainedFeatureExtractor.transform>` accepts.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Numeric targets.

        Returns
        -------
        self : FineTunedRegressor
            The fitted regressor.
        """
        return self._fit(X, y)

    def _encode_target(self, y):
        y = np.asarray(y)
        if y.dtype.kind in "USV":
            raise ValueError(
                f"{self._name}: y must be numeric, got dtype {y.dtype}; "
                f"for class labels use FineTunedClassifier."
            )
        if y.ndim not in (1, 2):
            raise ValueError(
                f"{self._name}: y must be 1-D or 2-D, got shape {y.shape}."
            )
        # Object arrays of numbers become float; complex, NaN and infinity are
        # refused with scikit-learn's messages.
        y = check_array(y, ensure_2d=False, dtype="numeric", input_name="y")
        self._y_ndim = y.ndim
        y2 = y.reshape(len(y), -1).astype(np.float64)
        self._y_scaler = StandardScaler().fit(y2) if self.target_scaling else None
        if self._y_scaler is not None:
            y2 = self._y_scaler.transform(y2)
        return y2.astype(np.float32), y2.shape[1]

    def _probe_head(self, features, y):
        return probe_regressor(features, y)

    def _criterion(self, y):
        return nn.MSELoss()

    def _saved_criterion(self, weight):
        return nn.MSELoss()

    def _export_target(self):
        scaler = self._y_scaler
        saved = (
            None
            if scaler is None
            else {
                attr: to_plain(getattr(scaler, attr))
                for attr in (
                    "mean_",
                    "var_",
                    "scale_",
                    "n_samples_seen_",
                    "n_features_in_",
                )
            }
        )
        return {"y_ndim": self._y_ndim, "y_scaler": saved}

    def _restore_target(self, fitted):
        self._y_ndim = fitted["y_ndim"]
        saved = fitted["y_scaler"]
        self._y_scaler = None
        if saved is not None:
            scaler = StandardScaler()
            for attr, value in saved.items():
                setattr(
                    scaler,
                    attr,
                    np.asarray(value) if isinstance(value, list) else value,
                )
            self._y_scaler = scaler

    @staticmethod
    def _valid_score(pred, y):
        ss_res = ((y - pred) ** 2).sum()
        ss_tot = ((y - y.mean(0)) ** 2).sum()
        return float(1 - ss_res / ss_tot) if ss_tot > 0 else float("nan")

    def predict(self, X):
        """Predicted targets, shaped like the ``y`` given to fit.

        Parameters
        ----------
        X : images
            Any form :meth:`PretrainedFeatureExtractor.transform
            <sktransfer.PretrainedFeatureExtractor.transform>` accepts.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_targets)
            Predictions in the units of ``y`` (float64).
        """
        pred = self._decision(X).astype(np.float64)
        if self._y_scaler is not None:
            pred = self._y_scaler.inverse_transform(pred)
        return pred.ravel() if self._y_ndim == 1 else pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


def _has_batchnorm(body):
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in body.modules())


def _has_trained_bn(body):
    """Whether some BatchNorm layer of ``body`` has running statistics that
    differ from their initial values (mean 0, variance 1): pretrained ones."""
    for m in body.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            mean, var = m.running_mean, m.running_var
            if mean is not None and (mean.abs().max() > 0 or (var - 1).abs().max() > 0):
                return True
    return False


def _transfer_net(body, head, device, freeze_bn):
    """The TransferNet of ``body`` and ``head`` on ``device``, channels-last
    where that makes its convolutions faster."""
    channels_last = wants_channels_last(body, device)
    module = TransferNet(
        body,
        head,
        split_blocks(body),
        freeze_bn=freeze_bn,
        channels_last=channels_last,
    )
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    return module.to(device)


def _saved_module(loaded, tensors, owner, device):
    """The TransferNet of the saved ``tensors`` ("module.*"), on the CPU."""
    saved = {
        k[len("module.") :]: v for k, v in tensors.items() if k.startswith("module.")
    }
    body = FeatureModel(loaded.model, loaded.head, None, "avg")
    # Loading the body first also initialises lazy modules (nn.LazyLinear).
    load_state_dict_checked(
        body,
        {k[len("body.") :]: v for k, v in saved.items() if k.startswith("body.")},
        backbone_name=loaded.name,
        what="The saved weights",
    )
    weight = saved.get("head.weight")
    if weight is None or weight.ndim != 2:
        raise ValueError(
            f"{owner}: the saved weights have no linear head "
            f"('module.head.weight'); the file is damaged."
        )
    module = TransferNet(
        body, nn.Linear(weight.shape[1], weight.shape[0]), split_blocks(body)
    )
    module.channels_last = wants_channels_last(body, device)
    if module.channels_last:
        module.to(memory_format=torch.channels_last)
    load_state_dict_checked(
        module, saved, backbone_name=loaded.name, what="The saved weights"
    )
    return module
