"""The backbone registry: names -> :class:`BackboneSpec`.

Sources, looked up in this order:

1. the backbones sktransfer ships (``_builtin.BUILTIN_BACKBONES``: the
   offline ``efficientnet_lite0``, ``_lite1`` and ``_lite2``) and those
   registered with :func:`register_backbone`;
2. ``"timm:<model name>"`` for any timm model (``pip install "sktransfer[timm]"``);
3. every torchvision classification model by its plain name (``"resnet18"``),
   also reachable as ``"torchvision:resnet18"``.

Nothing is imported or built until a spec is asked for, which happens in
``fit``. Imports run one way: ``_spec`` <- the sources (``_torchvision``,
``_timm``, ``_efficientnet_lite``) <- ``_builtin`` <- this module.
"""

from __future__ import annotations

import difflib

from .._preprocessing import Preprocessing
from ._builtin import BUILTIN_BACKBONES
from ._spec import BackboneSpec
from ._timm import list_timm_models, timm_spec
from ._torchvision import torchvision_model_names, torchvision_spec

_REGISTRY: dict[str, BackboneSpec] = {spec.name: spec for spec in BUILTIN_BACKBONES}


def register_backbone(
    name,
    create,
    *,
    weights=None,
    preprocessing=None,
    head=None,
    source="custom",
    description="",
    overwrite=False,
):
    """Make a backbone available by name to every sktransfer estimator.

    Parameters
    ----------
    name : str
        The name to pass as ``backbone=``.
    create : callable
        ``create(weights)`` returns an ``nn.Module``; ``weights`` is None for
        random initialisation, otherwise one of the names in ``weights``.
    weights : sequence of str, default=None
        Names of the pretrained weights ``create`` understands; ``"DEFAULT"``
        is always accepted and means the first of them. None means
        ``("DEFAULT",)``.
    preprocessing : Preprocessing, dict or callable, default=None
        The eval preprocessing of the weights: a :class:`Preprocessing`, a dict
        of its fields, or ``preprocessing(weights_name)`` returning one. None:
        ImageNet defaults (resize 256, crop 224, ImageNet mean and std).
    head : str, default=None
        Qualified module name of the classification head; None means the last
        ``nn.Linear``.
    source, description : str
        Shown by ``list_backbones(details=True)``.
    overwrite : bool, default=False
        Replace an existing registration of ``name``.

    Returns
    -------
    spec : BackboneSpec
        The registered specification (what ``fit`` will resolve ``name`` to).

    Examples
    --------
    >>> import torch
    >>> from sktransfer import register_backbone, list_backbones
    >>> spec = register_backbone(
    ...     "tiny_cnn", lambda weights: torch.nn.Sequential(
    ...         torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
    ...         torch.nn.Flatten()),
    ...     preprocessing={"resize_size": 32, "crop_size": 32}, overwrite=True)
    >>> "tiny_cnn" in list_backbones()
    True
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"Backbone name must be a non-empty str, got {name!r}.")
    if not callable(create):
        raise TypeError(f"create must be callable, got {type(create).__name__}.")
    if not overwrite and (name in _REGISTRY or name in torchvision_model_names()):
        raise ValueError(
            f"A backbone named {name!r} already exists; pass overwrite=True to "
            f"replace it, or choose another name."
        )
    names = tuple(weights) if weights is not None else ("DEFAULT",)
    spec = BackboneSpec(
        name=name,
        create=create,
        weights=names,
        preprocessing=_as_preprocessing_fn(preprocessing),
        head=head,
        source=source,
        description=description,
    )
    _REGISTRY[name] = spec
    return spec


def unregister_backbone(name):
    """Remove a backbone added with :func:`register_backbone`."""
    if name not in _REGISTRY:
        raise KeyError(f"No registered backbone named {name!r}.")
    del _REGISTRY[name]


def _as_preprocessing_fn(preprocessing):
    if preprocessing is None:
        return lambda weights: Preprocessing()
    if isinstance(preprocessing, Preprocessing):
        return lambda weights: preprocessing
    if isinstance(preprocessing, dict):
        value = Preprocessing().with_overrides(preprocessing)
        return lambda weights: value
    if callable(preprocessing):
        return preprocessing
    raise TypeError(
        f"preprocessing must be a Preprocessing, a dict or a callable, got "
        f"{type(preprocessing).__name__}."
    )


def list_backbones(source=None, *, details=False):
    """Names accepted as ``backbone=``, or a row of details for each.

    Parameters
    ----------
    source : {None, "registered", "torchvision", "timm"}, default=None
        None lists registered and torchvision backbones (timm's ~1,000 names
        are listed only when asked for, with their ``"timm:"`` prefix).
    details : bool, default=False
        Return one dict per backbone instead of its name, with keys:

        - ``"name"``: what to pass as ``backbone=``;
        - ``"source"``: ``"sktransfer"``, ``"torchvision"``, ``"timm"`` or
          ``"custom"``;
        - ``"weights"``: tuple of the names of its pretrained weights, the
          default (``weights="DEFAULT"``) first;
        - ``"preprocessing"``: the :class:`~sktransfer.Preprocessing` of the
          default weights (None for a timm model whose preprocessing
          sktransfer cannot reproduce);
        - ``"extra"``: the extra to install for it
          (``pip install "sktransfer[<extra>]"``), or None;
        - ``"offline"``: True if the default weights are already on this
          machine (fitting needs no network), False if they must be
          downloaded or installed first, None if unknown;
        - ``"description"``: one line.

        Nothing is downloaded or built; ``pandas.DataFrame(rows)`` makes a
        table of them.

    Returns
    -------
    names : list of str, or list of dict if ``details``
        Sorted registered names, or one dict per name (keys above).

    Examples
    --------
    >>> from sktransfer import list_backbones
    >>> "efficientnet_lite1" in list_backbones()
    True
    >>> rows = {row["name"]: row for row in list_backbones(details=True)}
    >>> lite1 = rows["efficientnet_lite1"]
    >>> lite1["source"], lite1["weights"], lite1["extra"]
    ('sktransfer', ('IMAGENET1K',), 'lite1')
    >>> lite1["preprocessing"].resize_size, lite1["preprocessing"].crop_size
    (272, 240)
    >>> rows["resnet50"]["weights"]
    ('IMAGENET1K_V2', 'IMAGENET1K_V1')
    """
    if source not in (None, "registered", "torchvision", "timm"):
        raise ValueError(
            f"source must be None, 'registered', 'torchvision' or 'timm', got "
            f"{source!r}."
        )
    names = []
    if source in (None, "registered"):
        names += sorted(_REGISTRY)
    if source in (None, "torchvision"):
        names += list(torchvision_model_names())
    if source == "timm":
        names += [f"timm:{n}" for n in list_timm_models()]
    if not details:
        return names
    return [_details(get_backbone_spec(name)) for name in names]


def _details(spec):
    """The row of ``list_backbones(details=True)`` for ``spec``."""
    try:
        designation, _ = spec.weights_for("DEFAULT")
    except ValueError:  # e.g. a timm architecture without pretrained weights
        designation = None
    try:
        preprocessing = (
            spec.preprocessing(designation) if spec.preprocessing else Preprocessing()
        )
    except NotImplementedError:  # timm configs sktransfer cannot reproduce
        preprocessing = None
    offline = None
    if spec.weights_present is not None:
        offline = designation is not None and bool(spec.weights_present(designation))
    return {
        "name": spec.name,
        "source": spec.source,
        "weights": spec.weights or ("DEFAULT",),
        "preprocessing": preprocessing,
        "extra": spec.extra,
        "offline": offline,
        "description": spec.description,
    }


def get_backbone_spec(name):
    """The :class:`BackboneSpec` for ``name``; unknown names suggest close ones."""
    if not isinstance(name, str):
        raise TypeError(
            f"backbone must be a name (str) or an nn.Module, got {type(name).__name__}."
        )
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name.startswith("timm:"):
        return timm_spec(name[len("timm:") :])
    plain = name[len("torchvision:") :] if name.startswith("torchvision:") else name
    if plain in torchvision_model_names():
        return torchvision_spec(plain)
    raise ValueError(_unknown_message(name))


def is_builtin_spec(spec):
    """Whether ``spec`` comes with sktransfer, torchvision or timm (its
    architecture follows from its name and the installed versions), not from
    :func:`register_backbone` in this process."""
    if any(spec is b for b in BUILTIN_BACKBONES):
        return True
    return all(spec is not s for s in _REGISTRY.values())


def _unknown_message(name):
    candidates = list(_REGISTRY) + list(torchvision_model_names())
    lowered = name.lower().replace("-", "_")
    starts = [c for c in candidates if c.startswith(lowered)]
    close = difflib.get_close_matches(lowered, candidates, n=5, cutoff=0.6)
    suggestions = list(dict.fromkeys(starts[:8] + close))
    if len(starts) > 1:
        what = (
            f"Ambiguous backbone {name!r}: {len(starts)} backbone names start with it."
        )
    else:
        what = f"Unknown backbone {name!r}."
    hint = f" Did you mean one of {suggestions}?" if suggestions else ""
    return (
        f"{what}{hint} See sktransfer.list_backbones() for the names "
        f"available, use 'timm:<name>' for timm models, or pass an nn.Module."
    )
