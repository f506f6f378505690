"""Each estimator's parameters, declared once; one routine validates them.

A :class:`Param` gives a parameter's default, its constraint, its numpydoc
entry and how persistence treats it (``fit_only``: a saved estimator predicts
without it; ``affects_training``: a checkpoint of a run with another value
still resumes). From these tables come ``_check_params`` (one call of
:func:`validate_params` at the start of ``fit``), the estimators' docstring
``Parameters`` sections (:func:`params_doc`), what ``sktransfer.save`` says
about a parameter it cannot store, and which parameters a checkpoint's run
identity leaves out. ``tests/test_params.py`` checks that the ``__init__``
signatures (scikit-learn reads them), docstrings and ``docs/user_guide.md``
list the same parameters with the same defaults.

The idea is scikit-learn's ``_parameter_constraints``; its validation module
is private, so this is a small one of our own.
"""

from __future__ import annotations

import inspect
import numbers
import os
from dataclasses import dataclass

import numpy as np

from ._augment import AUGMENTS
from ._device import PRECISIONS
from ._features import POOLINGS


class InvalidParameterError(ValueError, TypeError):
    """A parameter value an estimator does not accept.

    Both a ValueError and a TypeError (as scikit-learn's), so that code
    catching either for a bad parameter keeps working.
    """


# -- constraints ------------------------------------------------------------------
class Constraint:
    """What a parameter accepts; ``description`` completes "<name> must be"."""

    description = ""

    def accepts(self, value):
        raise NotImplementedError

    def claims(self, value):
        """Whether the value is of this constraint's kind (for :class:`AnyOf`)."""
        return False

    def shown(self, value):
        return repr(value)


@dataclass(frozen=True)
class Interval(Constraint):
    """An int (``kind=int``) or a real number (``kind=float``) in a range;
    ``closed`` is "both", "left", "right" or "neither"."""

    kind: type
    low: float
    high: float | None = None
    closed: str = "both"
    none: bool = False

    @property
    def description(self):
        tail = " or None" if self.none else ""
        if self.kind is int:
            return f"an int >= {self.low}{tail}"
        lo = "[" if self.closed in ("both", "left") else "("
        hi = "]" if self.closed in ("both", "right") else ")"
        return f"a float in {lo}{self.low}, {self.high}{hi}{tail}"

    def claims(self, value):
        kind = numbers.Integral if self.kind is int else numbers.Real
        return isinstance(value, kind) and not isinstance(value, bool)

    def accepts(self, value):
        if value is None:
            return self.none
        if not self.claims(value):
            return False
        low_ok = (
            value >= self.low if self.closed in ("both", "left") else value > self.low
        )
        if self.high is None:
            return low_ok
        high_ok = (
            value <= self.high
            if self.closed in ("both", "right")
            else value < self.high
        )
        return low_ok and high_ok


@dataclass(frozen=True)
class Options(Constraint):
    """One of a few strings."""

    values: tuple

    @property
    def description(self):
        return f"one of {list(self.values)}"

    def accepts(self, value):
        return isinstance(value, str) and value in self.values


@dataclass(frozen=True)
class InstanceOf(Constraint):
    """An instance of ``types`` (or a callable: ``types=callable``), or None
    when ``none``; ``show="type"`` names the type of a refused value instead
    of its repr."""

    types: object
    description: str
    none: bool = False
    show: str = "repr"

    def accepts(self, value):
        if value is None:
            return self.none
        if self.types is callable:
            return callable(value)
        return isinstance(value, self.types)

    def shown(self, value):
        return type(value).__name__ if self.show == "type" else repr(value)


@dataclass(frozen=True)
class AnyOf(Constraint):
    """Any of ``constraints``. A refused value of the kind of one of them
    (an int for an int interval) gets that one's description."""

    constraints: tuple
    description: str = ""

    def accepts(self, value):
        return any(c.accepts(value) for c in self.constraints)

    def for_value(self, value):
        for c in self.constraints:
            if c.claims(value):
                return c
        return self


@dataclass(frozen=True)
class Resolved(Constraint):
    """Checked where ``fit`` resolves it (by ``by``), with its own message."""

    by: str

    def accepts(self, value):
        return True


@dataclass(frozen=True)
class _ImageShape(Constraint):
    description: str = "None, (H, W) or (H, W, C) with C in (1, 3, 4)"

    def accepts(self, value):
        return value is None or (
            isinstance(value, (tuple, list))
            and len(value) in (2, 3)
            and all(isinstance(s, numbers.Integral) and s > 0 for s in value)
            and (len(value) == 2 or value[2] in (1, 3, 4))
        )


BOOLEAN = InstanceOf(bool, "True or False")
IMAGE_SHAPE = _ImageShape()
RANDOM_STATE = InstanceOf(
    (numbers.Integral, np.random.RandomState),
    "None, an int or a numpy RandomState",
    none=True,
)
FOLDER = InstanceOf(
    (str, os.PathLike), "None or a folder path (str or pathlib.Path)", none=True
)
FREEZES = ("staged", "backbone", "none")
HEAD_INITS = ("auto", "probe", "random")
SCHEDULES = ("onecycle", "cosine", "constant")
FREEZE = AnyOf(
    (Options(FREEZES), Interval(int, 0)),
    f"one of {list(FREEZES)} or an int >= 0 (the number of last backbone "
    f"blocks to train)",
)


@dataclass(frozen=True)
class _TTA(Constraint):
    description: str = 'None, "flip" or an int in [1, 10] (the number of views)'

    def accepts(self, value):
        if value is None or value == "flip":
            return True
        return (
            isinstance(value, numbers.Integral)
            and not isinstance(value, bool)
            and 1 <= value <= 10
        )


TTA = _TTA()
CLASS_WEIGHT = AnyOf(
    (Options(("balanced",)), InstanceOf(dict, "a dict", none=True)),
    "None, 'balanced' or a dict {label: weight}",
)


# The ``legacy`` of a parameter added after 0.1.0 whose legacy value is None
# (``legacy=None`` means "not added later").
LEGACY_NONE = type("LegacyNone", (), {"__repr__": lambda self: "LEGACY_NONE"})()


# -- the tables -------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """One parameter: name, default, constraint, numpydoc type and text.

    ``fit_only``: only ``fit`` uses it, a fitted estimator predicts without it
    (``sktransfer.save`` suggests saving a copy without it).
    ``affects_training``: whether it changes what training computes (when
    not, a checkpoint of a run with another value still resumes).
    ``legacy``: for a parameter added after 0.1.0 (``added=True`` when that
    value is None), the value that does what
    sktransfer did before it existed; a pickle, save folder or checkpoint
    written without it reads as that value (not as the new default).
    """

    name: str
    default: object
    constraint: Constraint
    type_doc: str
    doc: str = ""
    fit_only: bool = False
    affects_training: bool = True
    default_doc: str | None = None  # how the docs write the default
    legacy: object = None
    added: bool = False  # added after 0.1.0: its legacy value may be None


EXTRACTOR_PARAMS = (
    Param(
        "backbone",
        "resnet18",
        Resolved("load_backbone"),
        "str or torch.nn.Module",
        """
        A name from :func:`sktransfer.list_backbones` (every torchvision
        classification model, ``"efficientnet_lite0"`` with offline ImageNet
        weights, ``"timm:<name>"``, or one added with
        :func:`sktransfer.register_backbone`), or an ``nn.Module`` (deep-copied
        in ``fit``, never modified; its last ``nn.Linear`` is taken as the
        classification head).
        """,
    ),
    Param(
        "weights",
        "DEFAULT",
        Resolved("load_backbone"),
        "str, torchvision WeightsEnum, path, dict or None",
        """
        ``"DEFAULT"`` (the best pretrained weights of the backbone), a weights
        name (``"IMAGENET1K_V1"``) or torchvision enum, a checkpoint file
        (``.pt``/``.pth``/``.safetensors``, loaded without running code), a
        state dict, or None for random initialisation. Pretrained weights
        that must be downloaded come from torch's hub cache; offline, a clear
        error says where the file is expected.
        """,
        fit_only=True,
    ),
    Param(
        "layer",
        None,
        Resolved("check_layers"),
        "str, list of str or None",
        """
        None: the pooled pre-classifier representation. A module name (as in
        ``dict(model.named_modules())``, e.g. ``"layer3"``) or a list of names
        whose pooled outputs are concatenated.
        """,
    ),
    Param(
        "pooling",
        "avg",
        Options(POOLINGS),
        '{"avg", "max", "cls", "flatten"}',
        """
        How spatial maps (N, C, H, W) or token sequences (N, T, D) become
        vectors; ``"cls"`` takes the first (class) token of a transformer.
        """,
    ),
    Param(
        "preprocessing",
        None,
        Resolved("resolve_preprocessing"),
        'None, "passthrough" or dict',
        """
        None uses the preprocessing the weights were trained with (resize,
        centre crop, interpolation, mean and std). A dict overrides fields of
        it, e.g. ``{"resize_size": 64, "crop_size": 64}``. ``"passthrough"``
        feeds numeric arrays to the backbone unchanged, as float32 tensors.
        """,
    ),
    Param(
        "image_shape",
        None,
        IMAGE_SHAPE,
        "tuple or None",
        """
        (H, W) or (H, W, C): read 2-D ``X`` as rows of flattened pixels (as
        :func:`~sklearn.datasets.fetch_openml` returns images).
        """,
    ),
    Param(
        "batch_size",
        16,
        Interval(int, 1),
        "int",
        """
        Images per forward pass.
        """,
    ),
    Param(
        "device",
        "auto",
        Resolved("resolve_device"),
        "str or torch.device",
        """
        ``"auto"`` picks cuda, then mps, then cpu.
        """,
    ),
    Param(
        "precision",
        "float32",
        Options(tuple(PRECISIONS)),
        '{"float32", "bfloat16", "float16"}',
        """
        Autocast precision of the forward pass; features are float32.
        """,
    ),
    Param(
        "n_jobs",
        None,
        Interval(int, 1, none=True),
        "int or None",
        """
        Background threads decoding and resizing images while the network
        runs (and hashing them for the cache); None means 2, which kept
        EfficientNet-Lite0 and ResNet-18 fed from PNG photos on 2 CPU cores
        better than 1 (measured: ``benchmarks/speed``).
        """,
    ),
    Param(
        "on_error",
        "raise",
        Options(("raise", "warn")),
        '{"raise", "warn"}',
        """
        For unreadable images in :meth:`transform`: raise, or warn (listing
        the files) and give their rows NaN.
        """,
    ),
    Param(
        "random_state",
        None,
        RANDOM_STATE,
        "int, RandomState or None",
        """
        Seeds the random initialisation when ``weights=None``, and that of
        lazy modules (``nn.LazyLinear``) on the first forward pass in ``fit``.
        None behaves as 0, so the features are reproducible.
        """,
        fit_only=True,
    ),
    Param(
        "verbose",
        0,
        Interval(int, 0),
        "int",
        """
        Show a progress bar (tqdm) when > 0.
        """,
    ),
    Param(
        "cache",
        None,
        Resolved("resolve_cache"),
        'None, "memory", str, path or FeatureCache',
        """
        Reuse the features of images seen before. ``"memory"``: a cache in
        this process's memory (1 GiB at most, least recently used vectors
        evicted). A folder path: a cache on disk, shared by processes and
        sessions. A :class:`~sktransfer.FeatureCache` to bound the size or
        share one cache explicitly. Features are cached per image, keyed by
        the image's content (file bytes or pixels, not its position) and
        everything else that determines them (backbone, weights, preprocessing,
        layers, pooling, precision, device type, library versions), so
        clones in the folds and grid points of ``GridSearchCV`` compute each
        image once. Cached features are the exact float32 values first
        computed. Rows of unreadable images (``on_error="warn"``) are never
        cached.
        """,
    ),
    Param(
        "compile",
        False,
        BOOLEAN,
        "bool",
        """
        Compile the network's forward pass with ``torch.compile``
        (``nn.Module.compile``, in place: weights and saved files are
        unchanged). The first batches take longer (compilation); worth it for
        long runs on a GPU. Results may differ from the eager network's in
        the last float32 bits.
        """,
        affects_training=False,
        legacy=False,
    ),
)


FINETUNE_PARAMS = (
    Param(
        "backbone",
        "resnet18",
        Resolved("load_backbone"),
        "str or torch.nn.Module",
        """
        As in :class:`~sktransfer.PretrainedFeatureExtractor`: a name from
        :func:`~sktransfer.list_backbones` or an ``nn.Module`` (deep-copied).
        Its classification head is replaced by a new ``nn.Linear``.
        """,
    ),
    Param(
        "weights",
        "DEFAULT",
        Resolved("load_backbone"),
        "str, WeightsEnum, path, dict or None",
        """
        Pretrained weights, as in the extractor; None trains from scratch.
        """,
        fit_only=True,
    ),
    Param(
        "freeze",
        "none",
        FREEZE,
        '{"none", "staged", "backbone"} or int',
        """
        ``"none"``: full fine-tuning (after the head starts at the linear
        probe, see ``head_init``). ``"staged"``: train the head alone for
        ``freeze_epochs`` epochs, then everything (fastai's ``fine_tune``).
        ``"backbone"``: linear probe, the backbone is frozen with its
        BatchNorm statistics (its features are computed once per fit when
        ``augment="off"``). An int ``k``: the last ``k`` backbone blocks are
        trained.
        """,
    ),
    Param(
        "freeze_epochs",
        1,
        Interval(int, 0),
        "int",
        """
        Head-only epochs of ``freeze="staged"``.
        """,
    ),
    Param(
        "head_init",
        "auto",
        Options(HEAD_INITS),
        '{"auto", "probe", "random"}',
        """
        ``"probe"`` (LP-FT, Kumar et al., ICLR 2022): before training, the
        new head is fitted to convergence on the frozen backbone's features
        of the training images, by the linear probe StandardScaler +
        LogisticRegression (classifier, with ``class_weight``) or + RidgeCV
        (regressor), so that fine-tuning starts from the probe's solution.
        ``"random"``: torch's default initialisation. ``"auto"``: ``"probe"``
        unless BatchNorm statistics are updated while training (see
        ``freeze_bn``: the probe would be fitted to features the training
        batches do not produce), then ``"random"``.
        """,
        legacy="random",
    ),
    Param(
        "freeze_bn",
        "auto",
        AnyOf((Options(("auto",)), BOOLEAN), 'True, False or "auto"'),
        '"auto" or bool',
        """
        Keep every BatchNorm layer's running statistics fixed while training
        (its scale and shift still train). ``"auto"``: True when the
        backbone's BatchNorm statistics are pretrained (differ from their
        initial mean 0, variance 1), False with ``weights=None`` or an
        untrained module. Small batches of a new domain
        give poor batch statistics: updating them collapsed the accuracy of
        fine-tuning at 10 labels per class (see ``benchmarks/finetune_recipe``).
        """,
        legacy=False,
    ),
    Param(
        "lr",
        3e-4,
        Interval(float, 0, np.inf, closed="right"),
        "float",
        """
        Learning rate of the head (peak learning rate of the schedule).
        """,
        default_doc="3e-4",
    ),
    Param(
        "backbone_lr_ratio",
        1.0,
        Interval(float, 0, np.inf),
        "float",
        """
        Backbone learning rate as a fraction of ``lr`` (discriminative
        learning rates).
        """,
    ),
    Param(
        "layer_decay",
        None,
        Interval(float, 0, 1, closed="right", none=True),
        "float or None",
        """
        Layer-wise decay: backbone block ``i`` from the top trains at
        ``lr * backbone_lr_ratio * layer_decay**i``.
        """,
    ),
    Param(
        "weight_decay",
        0.01,
        Interval(float, 0, np.inf),
        "float",
        """
        AdamW weight decay.
        """,
    ),
    Param(
        "schedule",
        "cosine",
        Options(SCHEDULES),
        '{"cosine", "onecycle", "constant"}',
        """
        Learning-rate schedule, stepped every batch; ``"cosine"`` warms up
        linearly first.
        """,
    ),
    Param(
        "warmup",
        0.1,
        Interval(float, 0, 1, closed="left"),
        "float",
        """
        Fraction of the steps spent warming up (``pct_start`` of one-cycle).
        """,
    ),
    Param(
        "max_epochs",
        "auto",
        AnyOf((Options(("auto",)), Interval(int, 1)), 'an int >= 1 or "auto"'),
        '"auto" or int',
        """
        Epochs of training. ``"auto"``: 5 epochs, or more when 5 epochs make
        fewer than 150 optimizer steps (small data sets train for 150 steps).
        """,
    ),
    Param(
        "batch_size",
        32,
        Interval(int, 1),
        "int",
        """
        Images per optimizer step while training, and per forward pass when
        predicting.
        """,
    ),
    Param(
        "augment",
        "light",
        Options(AUGMENTS),
        '{"light", "default", "off"}',
        """
        Training-only augmentation: ``"light"`` flips horizontally;
        ``"default"`` also takes random resized crops (70-100% of the area)
        and jitters brightness and contrast (it lost to ``"light"`` at every
        seed in ``benchmarks/finetune_recipe``). Never applied when predicting.
        """,
    ),
    Param(
        "train_transform",
        None,
        InstanceOf(callable, "callable or None", none=True),
        "callable or None",
        """
        Extra training-only transform on float images (C, H, W) in [0, 1],
        applied after the preset and before normalisation.
        """,
        fit_only=True,
    ),
    Param(
        "early_stopping",
        False,
        BOOLEAN,
        "bool",
        """
        Hold out ``validation_fraction`` of the training data, stop when the
        validation loss has not improved for ``n_iter_no_change`` epochs and
        restore the best epoch's weights. Off by default, so that every sample
        is used for training and GridSearchCV sees no hidden second split.
        """,
    ),
    Param(
        "validation_fraction",
        0.1,
        Interval(float, 0, 1, closed="neither"),
        "float",
        """
        Fraction of the training data held out as the validation set of
        ``early_stopping`` (unused without it).
        """,
    ),
    Param(
        "n_iter_no_change",
        3,
        Interval(int, 1),
        "int",
        """
        Epochs without improvement of the validation loss after which
        ``early_stopping`` stops training.
        """,
    ),
    Param(
        "preprocessing",
        None,
        Resolved("resolve_preprocessing"),
        'None, "passthrough" or dict',
        """
        As in the extractor.
        """,
    ),
    Param(
        "image_shape",
        None,
        IMAGE_SHAPE,
        "tuple or None",
        """
        Read 2-D ``X`` as flattened pixel rows of this shape.
        """,
    ),
    Param(
        "device",
        "auto",
        Resolved("resolve_device"),
        "str or torch.device",
        """
        As in the extractor: ``"auto"`` picks cuda, then mps, then cpu.
        """,
    ),
    Param(
        "random_state",
        None,
        RANDOM_STATE,
        "int, RandomState or None",
        """
        Seeds head initialisation, shuffling, augmentation and the validation
        split; CPU runs with the same seed give the same predictions. None
        behaves as 0 (as in the extractor); a ``RandomState`` gives a new
        seed at each fit. The global torch and numpy random states are left
        unchanged.
        """,
        fit_only=True,
    ),
    Param(
        "verbose",
        0,
        Interval(int, 0),
        "int",
        """
        Print a per-epoch table (skorch's) when > 0.
        """,
        affects_training=False,
    ),
    Param(
        "net_params",
        None,
        InstanceOf(dict, "a dict or None", none=True, show="type"),
        "dict or None",
        """
        Extra keyword arguments for the skorch ``NeuralNet`` (e.g.
        ``{"callbacks": [...], "iterator_train__num_workers": 2}``). Callbacks
        are added after sktransfer's own (freezing, schedule, early
        stopping); other keys override sktransfer's choices.
        """,
        fit_only=True,
    ),
    Param(
        "checkpoint_dir",
        None,
        FOLDER,
        "str, path or None",
        """
        A folder where, after every epoch, the module, optimizer, scheduler
        and early-stopping states, the history and the random state are saved
        (``checkpoint.pt``: state dicts and tensors only, written atomically,
        read back without running code). When ``fit`` finds there a
        checkpoint of the same parameters (``verbose`` aside) and the same
        data, training resumes from the epoch after it, and ends as an
        uninterrupted run would; a checkpoint of another run is ignored
        with a warning and overwritten. Do not share one folder between fits
        running at the same time (e.g. in ``GridSearchCV``).
        """,
        affects_training=False,
    ),
    Param(
        "warm_start",
        False,
        BOOLEAN,
        "bool",
        """
        When True and the estimator is fitted, ``fit`` continues training the
        fitted network (its weights; no new head, no linear probe) for
        ``max_epochs`` more epochs on the data given, with a new optimizer and
        the learning-rate schedule (and warmup) started again; the freezing
        strategy starts again too. Classes, outputs, backbone and input shape
        must stay the same. ``history_`` and ``n_iter_`` describe the last
        fit. (skorch's own ``warm_start`` cannot be set in ``net_params``.)
        """,
        legacy=False,
    ),
    Param(
        "tta",
        None,
        TTA,
        '"flip", int or None',
        """
        Test-time augmentation, at predict time only (training never sees
        it): predictions are averaged over deterministic views of each
        preprocessed image. ``"flip"``: the image and its horizontal mirror.
        An int ``n`` (1 to 10): the first ``n`` of identity, flip, shifts by
        1/16 of the side right, left, down, up, and the same shifts of the
        mirror (``1`` is the plain prediction). Classifiers average
        probabilities, regressors predictions. Costs ``n`` forward passes;
        can be set on a fitted estimator (``set_params(tta="flip")``).
        Images only (not ``preprocessing="passthrough"``).
        """,
        affects_training=False,
        added=True,
    ),
    Param(
        "accelerator",
        None,
        Resolved("make_accelerator"),
        'None, "auto" or accelerate.Accelerator',
        """
        Train through Hugging Face Accelerate (skorch's ``AccelerateMixin``):
        ``"auto"`` creates an ``Accelerator()`` in ``fit``; or pass your own
        (e.g. ``Accelerator(mixed_precision="bf16")``). The accelerator
        places the network (``device`` is then ignored) and, started with
        ``accelerate launch``, trains on several GPUs or processes. Needs
        ``pip install "sktransfer[accelerate]"``.
        """,
        fit_only=True,
        affects_training=False,
        legacy=LEGACY_NONE,
    ),
    Param(
        "precision",
        "float32",
        Options(tuple(PRECISIONS)),
        '{"float32", "bfloat16", "float16"}',
        """
        Autocast precision of the forward passes, in training and prediction
        (outputs and the loss stay float32). ``"float16"`` scales the loss
        (``torch.amp.GradScaler``) so that small gradients do not underflow.
        Meant for GPUs with tensor cores (``"bfloat16"`` needs Ampere or
        newer).
        """,
        legacy="float32",
    ),
    Param(
        "n_jobs",
        0,
        Interval(int, 0),
        "int",
        """
        DataLoader worker processes decoding and augmenting the training and
        validation images while the network trains (kept between epochs);
        0 does it in the training process. On CUDA, batches are in pinned
        memory and copied without blocking.
        """,
        affects_training=False,
        legacy=0,
    ),
    Param(
        "compile",
        False,
        BOOLEAN,
        "bool",
        """
        Compile the network's forward pass with ``torch.compile``
        (``nn.Module.compile``, in place: weights and saved files are
        unchanged). The first batches take longer (compilation); worth it for
        long runs on a GPU. Results may differ from the eager network's in
        the last float32 bits.
        """,
        affects_training=False,
        legacy=False,
    ),
)


CLASSIFIER_PARAMS = (
    Param(
        "class_weight",
        None,
        CLASS_WEIGHT,
        '"balanced", dict or None',
        """
        Weights of the classes in the loss.
        """,
    ),
    Param(
        "label_smoothing",
        0.0,
        Interval(float, 0, 1, closed="left"),
        "float",
        """
        Cross-entropy label smoothing in [0, 1).
        """,
    ),
    Param(
        "threshold",
        0.5,
        Interval(float, 0, 1, closed="neither"),
        "float",
        """
        Multi-label ``y`` only (a 2-D indicator matrix): ``predict`` gives a
        sample a label when that label's probability exceeds ``threshold``.
        Ignored for single-label ``y``.
        """,
        affects_training=False,
        legacy=0.5,
    ),
)


REGRESSOR_PARAMS = (
    Param(
        "target_scaling",
        True,
        BOOLEAN,
        "bool",
        """
        Standardise the targets (zero mean, unit variance) while training.
        """,
    ),
)


# -- what the tables give -----------------------------------------------------------
def validate_params(estimator, params):
    """Check the estimator's values of ``params`` (a table); raise
    :class:`InvalidParameterError` naming class, parameter, what is allowed
    and the value received."""
    for param in params:
        value = getattr(estimator, param.name)
        constraint = param.constraint
        if constraint.accepts(value):
            continue
        if isinstance(constraint, AnyOf):
            constraint = constraint.for_value(value)
        raise InvalidParameterError(
            f"{type(estimator).__name__}: {param.name} must be "
            f"{constraint.description}, got {constraint.shown(value)}."
        )


def params_doc(params):
    """The numpydoc ``Parameters`` entries of a table (indented for a class
    docstring)."""
    lines = []
    for p in params:
        default = p.default_doc or _default_doc(p.default)
        lines.append(f"    {p.name} : {p.type_doc}, default={default}")
        lines += [
            f"        {line}" if line else ""
            for line in inspect.cleandoc(p.doc).splitlines()
        ]
    return "\n".join(lines) + "\n"


def names(params, **where):
    """Names of the parameters of ``params`` whose fields equal ``where``."""
    return tuple(
        p.name for p in params if all(getattr(p, k) == v for k, v in where.items())
    )


def legacy_values(params, present):
    """``{name: legacy value}`` of the parameters of ``params`` that were
    added after 0.1.0 and are missing from ``present`` (names)."""
    return {
        p.name: None if p.legacy is LEGACY_NONE else p.legacy
        for p in params
        if (p.legacy is not None or p.added) and p.name not in present
    }


def _default_doc(value):
    return f'"{value}"' if isinstance(value, str) else repr(value)
