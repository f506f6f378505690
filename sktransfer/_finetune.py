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
from ._explain import explain_classifier
from ._features import FeatureModel
from ._input_spec import (
    preprocessing_from_dict,
    resolved_attributes,
    restore_input_attributes,
)
from ._multilabel import (
    MultiLabelLoss,
    check_indicator,
    check_multilabel_params,
    is_multilabel_target,
    multilabel_predict,
    multilabel_proba,
    multilabel_valid_score,
)
from ._params import (
    CLASSIFIER_PARAMS,
    FINETUNE_PARAMS,
    REGRESSOR_PARAMS,
    params_doc,
    validate_params,
)
from ._probe_head import (
    probe_classifier,
    probe_multilabel,
    probe_regressor,
    set_head,
)
from ._sample_weight import (
    WeightedCrossEntropy,
    WeightedMSE,
    check_sample_weight,
    identity_targets,
    weighted_targets,
)
from ._state import to_plain
from ._targets import as_target_array, check_class_labels, check_numeric_target
from ._torch_datasets import ImageDataset, TensorDataset, subset
from ._training import (
    TransferNet,
    make_net,
    restored_net,
    seeded_training,
    split_blocks,
    train,
)
from ._tta import tta_model
from ._warm_start import continued_fit
from .backbones._weights import load_state_dict_checked


class _FineTunedBase(PretrainedEstimator):
    _params = FINETUNE_PARAMS
    _fitted_attribute = "net_"

    # -- fit: named steps ----------------------------------------------
    def _fit(self, X, y, sample_weight=None):
        # A failed (re)fit must not leave a fitted-looking estimator behind;
        # only warm_start's refusals (checked first) leave the fit untouched.
        try:
            self._check_params()
        except ValueError:
            self.__dict__.pop("net_", None)
            raise
        warm = continued_fit(self, X, y)
        self.__dict__.pop("net_", None)
        y = self._check_y(X, y)
        sw = check_sample_weight(self._name, sample_weight, len(y))
        y_train, n_outputs = self._encode_target(y, warm, sw)
        loaded = self._resolve()
        data = self._read_training_data(X, y)
        augmentation = self._augmentation(loaded.preprocessing, data)
        seed = training_seed(self.random_state)
        with seeded_training(seed, self.device_):
            if warm is None:
                module = self._build_module(loaded, data, n_outputs)
            else:
                module = warm.network(self, n_outputs)
            train_ds, valid_ds, precompute, train_idx = self._datasets(
                module, data, y_train, seed, augmentation, sw
            )
            if warm is None and self._probe_head_init(module):
                self._init_head_from_probe(module, data, y_train, train_idx, sw)
            # The weights are part of the data a checkpoint belongs to.
            y_id = y_train if sw is None else identity_targets(y_train, sw)
            state = training_state(self, data, y_id, valid_ds is not None)
            criterion = self._criterion(y_train, sw is not None)
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

    def _init_head_from_probe(self, module, data, y, train_idx, sw=None):
        """LP-FT's first stage: the head becomes the linear probe fitted on
        the frozen body's features of the training images (no augmentation),
        with their sample weights."""
        feats, _ = self._infer(
            module.body,
            subset(data, train_idx),
            channels_last=module.channels_last,
        )
        sw = None if sw is None else sw[train_idx]
        weight, bias = self._probe_head(feats, y[train_idx], sw)
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
        self.n_iter_ = self.n_epochs_

    def _check_y(self, X, y):
        if y is None:
            raise ValueError(
                f"{self._name} requires y to be passed, but the target y is None."
            )
        y = as_target_array(y, self._name)
        if len(y) == 0:
            raise ValueError(
                f"{self._name}: y is empty; at least one sample is required."
            )
        return y

    def _augmentation(self, preprocessing, data):
        if preprocessing is None:
            # Rows of numbers (a tabular backbone): there is nothing for the
            # presets to augment, so every preset means no augmentation.
            tabular = isinstance(data, torch.Tensor) and data.ndim == 2
            if self.train_transform is not None:
                raise ValueError(
                    f"{self._name}: train_transform applies to images, which "
                    f"preprocessing='passthrough' does not make; set "
                    f"train_transform=None."
                )
            if self.augment != "off" and not tabular:
                raise ValueError(
                    f"{self._name}: augment={self.augment!r} applies to "
                    f"preprocessed images; with preprocessing='passthrough' "
                    f"and image-shaped X set augment='off'."
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

    def _datasets(self, module, data, y, seed, augmentation, sw=None):
        """Training and validation data sets (None without early stopping),
        whether the training set holds precomputed backbone features (linear
        probe without augmentation), and the training rows of ``data``. With
        sample weights ``sw`` the targets carry them (``_sample_weight``)."""
        train_idx, valid_idx = self._split(y, seed)
        if sw is not None and not sw[train_idx].any():
            raise ValueError(
                f"{self._name}: every sample of the training split has weight "
                f"zero (early_stopping holds out validation_fraction); give "
                f"more samples a positive weight."
            )
        precompute = self.freeze == "backbone" and augmentation is None
        y_t = weighted_targets(y, sw)
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
        tta = self.tta  # may be set after fit: checked here
        if tta is not None:
            validate_params(self, [p for p in self._params if p.name == "tta"])
        data = self._input_spec.read(self, X, reset=False)
        model = tta_model(
            self.net_.module_,
            tta,
            self._tta_combine,
            owner=self._name,
            images=self.preprocessing_ is not None,
        )
        return self._infer(model, data)[0]

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

    A 2-D ``y`` of 0/1 with at least two columns (a multi-label indicator
    matrix, as :class:`~sklearn.preprocessing.MultiLabelBinarizer` returns)
    trains one sigmoid output per label with binary cross-entropy (the probe
    head: one logistic regression per label); ``predict`` then returns the
    indicator matrix (see ``threshold``), ``predict_proba`` the probability
    of each label and ``classes_`` is ``np.arange(n_labels)``.

    Parameters
    ----------
{params_doc(FINETUNE_PARAMS + CLASSIFIER_PARAMS)}

    Attributes
    ----------
    classes_ : ndarray
        The class labels, in ``np.unique`` order (``np.arange(n_labels)`` for
        a multi-label ``y``).
    net_ : skorch.NeuralNet
        The trained net; ``net_.module_`` is the backbone body plus new head.
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``lr``, ``dur`` (seconds) and,
        with early stopping, ``valid_loss`` and ``valid_acc``.
    n_epochs_ : int
        Epochs run (fewer than ``max_epochs`` after early stopping).
    n_iter_ : int
        The same as ``n_epochs_`` (scikit-learn's name): epochs run by the
        last ``fit``.
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
    >>> from sktransfer.testing import TinyConvNet, make_shapes_dataset
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
    _multilabel = False  # set by fit: y was a multi-label indicator matrix

    @property
    def _tta_combine(self):
        # test-time augmentation averages probabilities: per label (sigmoid)
        # for a multi-label fit, over classes (softmax) otherwise
        return "sigmoid" if self._multilabel else "softmax"

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
        warm_start=False,
        tta=None,
        accelerator=None,
        precision="float32",
        n_jobs=0,
        compile=False,
        class_weight=None,
        label_smoothing=0.0,
        threshold=0.5,
    ):
        # Stores each argument as is (scikit-learn reads them back by name).
        self._store_params(locals())

    def fit(self, X, y, sample_weight=None):
        """Fine-tune on images ``X`` (any form the extractor accepts), labels ``y``.

        Parameters
        ----------
        X : images
            Any form :meth:`PretrainedFeatureExtractor.transform
            <sktransfer.PretrainedFeatureExtractor.transform>` accepts.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, of any type :func:`numpy.unique` sorts, or a
            multi-label indicator matrix of 0 and 1 (one column per label).
        sample_weight : array-like of shape (n_samples,), default=None
            Weights >= 0 of the samples in the loss (multiplied by
            ``class_weight``), the linear probe of ``head_init`` and the
            validation loss and accuracy of ``early_stopping``. None weighs
            every sample 1.

        Returns
        -------
        self : FineTunedClassifier
            The fitted classifier.
        """
        return self._fit(X, y, sample_weight)

    def _encode_target(self, y, warm=None, sw=None):
        y = check_class_labels(y, self._name)
        self._multilabel = is_multilabel_target(y)
        if self._multilabel:
            check_multilabel_params(self)
            self._indicator_dtype = y.dtype if y.dtype.kind in "biuf" else np.int64
            self.classes_ = np.arange(y.shape[1])
            return check_indicator(y, self._name), y.shape[1]
        y = column_or_1d(y, warn=True)
        try:
            check_classification_targets(y)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{self._name}: invalid y: {exc}") from None
        self._label_encoder = LabelEncoder().fit(y)
        self.classes_ = self._label_encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(
                f"{self._name} needs samples of at least 2 classes in the data, "
                f"but the data contains only one class: {self.classes_.tolist()[0]!r}."
            )
        return self._label_encoder.transform(y).astype(np.int64), len(self.classes_)

    def _stratify(self, y):
        if self._multilabel:
            return None
        counts = np.bincount(y)
        return y if counts.min() >= 2 else None

    def _probe_head(self, features, y, sample_weight=None):
        if self._multilabel:
            return probe_multilabel(features, y, sample_weight)
        weights = self._class_weights(y)
        weights = None if weights is None else weights.cpu().numpy()
        return probe_classifier(features, y, len(self.classes_), weights, sample_weight)

    def _criterion(self, y, weighted=False):
        if self._multilabel:  # its loss reads weighted targets as well
            return MultiLabelLoss(self.label_smoothing)
        weight = self._class_weights(y)
        if not weighted:
            return self._saved_criterion(weight)
        if weight is not None:
            weight = weight.to(self.device_)
        return WeightedCrossEntropy(weight, self.label_smoothing)

    def _saved_criterion(self, weight):
        if self._multilabel:
            return MultiLabelLoss(self.label_smoothing)
        if weight is not None:
            weight = weight.to(self.device_)
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=self.label_smoothing)

    def _export_target(self):
        return {
            "classes_": to_plain(self.classes_.tolist()),
            "classes_dtype": self.classes_.dtype.str,
            "multilabel_dtype": (
                np.dtype(self._indicator_dtype).str if self._multilabel else None
            ),
        }

    def _restore_target(self, fitted):
        indicator = fitted.get("multilabel_dtype")
        self._multilabel = indicator is not None
        if self._multilabel:
            self._indicator_dtype = np.dtype(indicator)
        dtype = np.dtype(fitted["classes_dtype"])
        classes = np.asarray(fitted["classes_"], dtype=dtype)
        self._label_encoder = LabelEncoder()
        self._label_encoder.classes_ = classes
        self.classes_ = classes

    def _class_weights(self, y):
        cw = self.class_weight
        if cw is None or self._multilabel:
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
    def _valid_score(logits, y, w=None):
        if y.ndim == 2:
            return multilabel_valid_score(logits, y, w)
        hits = (logits.argmax(1) == y).float()
        if w is None:
            return float(hits.mean())
        return float((hits * w).sum() / w.sum().clamp_min(1e-30))

    def predict_proba(self, X):
        """Class probabilities, columns in ``classes_`` order.

        With a multi-label ``y``: the probability of each label, (n, n_labels).

        Parameters
        ----------
        X : images
            Any form :meth:`PretrainedFeatureExtractor.transform
            <sktransfer.PretrainedFeatureExtractor.transform>` accepts.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), float32
            Softmax of the network's outputs (each row sums to 1); with a
            multi-label ``y``, (n_samples, n_labels): the sigmoid of each
            label's output.
        """
        logits = self._decision(X)
        if self._multilabel:
            return multilabel_proba(logits)
        return torch.softmax(torch.from_numpy(logits), dim=1).numpy()

    def predict_log_proba(self, X):
        """Logarithm of the class probabilities, columns in ``classes_`` order.

        Parameters
        ----------
        X : images
            Any form :meth:`fit` accepts.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            ``log_softmax`` of the logits (finite where ``predict_proba``
            underflows to 0); with a multi-label ``y``, the log of each
            label's probability, (n_samples, n_labels).

        Examples
        --------
        >>> import numpy as np
        >>> from sktransfer import FineTunedClassifier
        >>> from sktransfer.testing import TinyMLP
        >>> X = np.random.default_rng(0).normal(size=(20, 4)).astype("float32")
        >>> y = (X[:, 0] > 0).astype(int)
        >>> clf = FineTunedClassifier(TinyMLP(), preprocessing="passthrough",
        ...     max_epochs=2, random_state=0).fit(X, y)
        >>> clf.predict_log_proba(X).shape
        (20, 2)
        """
        logits = torch.from_numpy(self._decision(X))
        if self._multilabel:  # per label: log of its sigmoid probability
            return torch.nn.functional.logsigmoid(logits).numpy()
        return torch.log_softmax(logits, dim=1).numpy()

    def decision_function(self, X):
        """The network's logits, as scikit-learn's linear classifiers give them.

        Parameters
        ----------
        X : images
            Any form :meth:`fit` accepts.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            With two classes, the logit of ``classes_[1]`` minus that of
            ``classes_[0]`` (positive means ``classes_[1]``), shape
            ``(n_samples,)``; otherwise one logit per class (per label with
            a multi-label ``y``).

        Examples
        --------
        >>> import numpy as np
        >>> from sktransfer import FineTunedClassifier
        >>> from sktransfer.testing import TinyMLP
        >>> X = np.random.default_rng(0).normal(size=(20, 4)).astype("float32")
        >>> y = (X[:, 0] > 0).astype(int)
        >>> clf = FineTunedClassifier(TinyMLP(), preprocessing="passthrough",
        ...     max_epochs=2, random_state=0).fit(X, y)
        >>> clf.decision_function(X).shape
        (20,)
        """
        logits = self._decision(X)
        if self._multilabel:  # one logit per label, as OneVsRestClassifier
            return logits
        if logits.shape[1] == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def predict(self, X):
        """Predicted labels (of the type given in ``y``).

        With a multi-label ``y``: the indicator matrix (n, n_labels), 1 where
        a label's probability exceeds ``threshold``.

        Parameters
        ----------
        X : images
            Any form :meth:`PretrainedFeatureExtractor.transform
            <sktransfer.PretrainedFeatureExtractor.transform>` accepts.

        Returns
        -------
        labels : ndarray of shape (n_samples,) or (n_samples, n_labels)
            The class of highest probability, an element of ``classes_``;
            with a multi-label ``y``, the indicator matrix.
        """
        decision = self._decision(X)  # checks the fitted state first
        if self._multilabel:
            # set_params after fit changes the threshold without a new fit
            validate_params(self, [p for p in self._params if p.name == "threshold"])
            proba = multilabel_proba(decision)
            return multilabel_predict(proba, self.threshold, self._indicator_dtype)
        return self.classes_[decision.argmax(axis=1)]

    def explain(self, X, *, layer=None, target=None):
        """Grad-CAM saliency maps: where in each image the evidence lies.

        For each image, the gradient of the class score (the predicted
        class, or ``target``) weighs the channels of a convolutional feature
        map of the backbone; their positive sum, upsampled to the network's
        input and scaled to [0, 1], is the heatmap (Selvaraju et al., 2017).
        Draw one with :func:`sktransfer.plot_explanation`.

        Parameters
        ----------
        X : images
            Any form :meth:`predict` accepts (not passthrough arrays).
        layer : str or None, default=None
            The backbone module whose output is explained (a name from
            ``dict(backbone.named_modules())``, as the extractor's
            ``layer``). None: the last module that returns a feature map
            (N, C, h, w) with more than one position, the last
            convolutional stage.
        target : label or None, default=None
            Explain this class (one of ``classes_``) for every image; None
            explains each image's predicted class.

        Returns
        -------
        heatmaps : ndarray of shape (n_samples, H, W), float32
            In [0, 1]; (H, W) is the network's input size, the image after
            resizing and centre cropping.

        Examples
        --------
        >>> from sktransfer import FineTunedClassifier
        >>> from sktransfer.testing import TinyConvNet, make_shapes_dataset
        >>> X, y = make_shapes_dataset(n_per_class=10, size=16)
        >>> clf = FineTunedClassifier(TinyConvNet(), max_epochs=2, augment="off",
        ...     preprocessing={"resize_size": 16, "crop_size": 16}).fit(X, y)
        >>> clf.explain(X[:3]).shape
        (3, 16, 16)
        """
        check_is_fitted(self, "net_")
        return explain_classifier(self, X, layer, target)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = True
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
    n_iter_ : int
        Epochs run by the last ``fit`` (``n_epochs_``).
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
    >>> from sktransfer.testing import TinyConvNet, make_shapes_dataset
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
    _tta_combine = "mean"

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
        warm_start=False,
        tta=None,
        accelerator=None,
        precision="float32",
        n_jobs=0,
        compile=False,
        target_scaling=True,
    ):
        # Stores each argument as is (scikit-learn reads them back by name).
        self._store_params(locals())

    def fit(self, X, y, sample_weight=None):
        """Fine-tune on images ``X`` and numeric targets ``y`` (1-D or 2-D).

        Parameters
        ----------
        X : images
            Any form :meth:`PretrainedFeatureExtractor.transform
            <sktransfer.PretrainedFeatureExtractor.transform>` accepts.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Numeric targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights >= 0 of the samples in the loss, the ridge probe of
            ``head_init``, the target scaling and the validation loss and
            R^2 of ``early_stopping``. None weighs every sample 1.

        Returns
        -------
        self : FineTunedRegressor
            The fitted regressor.
        """
        return self._fit(X, y, sample_weight)

    def _encode_target(self, y, warm=None, sw=None):
        y = check_numeric_target(np.asarray(y), self._name)
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
        if warm is not None:
            self._y_scaler = warm.y_scaler  # the scale the head was trained in
        else:
            self._y_scaler = (
                StandardScaler().fit(y2, sample_weight=sw)
                if self.target_scaling
                else None
            )
        if self._y_scaler is not None:
            y2 = self._y_scaler.transform(y2)
        return y2.astype(np.float32), y2.shape[1]

    def _probe_head(self, features, y, sample_weight=None):
        return probe_regressor(features, y, sample_weight)

    def _criterion(self, y, weighted=False):
        return WeightedMSE() if weighted else nn.MSELoss()

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
    def _valid_score(pred, y, w=None):
        if w is None:
            ss_res = ((y - pred) ** 2).sum()
            ss_tot = ((y - y.mean(0)) ** 2).sum()
        else:
            w = w.reshape(-1, *([1] * (y.ndim - 1)))
            mean = (w * y).sum(0) / w.sum()
            ss_res = (w * (y - pred) ** 2).sum()
            ss_tot = (w * (y - mean) ** 2).sum()
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
