"""timm models as a backbone source.

timm is optional (``pip install "sktransfer[timm]"``) and imported only inside
these functions. Pretrained weights come from the Hugging Face hub (repo id in
the model's ``pretrained_cfg``, e.g. ``timm/resnet18.a1_in1k``) through the
huggingface_hub cache, so a cached file is used without network; the
preprocessing is read from timm's registry of pretrained configs and never
downloads anything.
"""

from __future__ import annotations

import difflib
import importlib
import math
import os
import urllib.error

from .._preprocessing import Preprocessing
from ._spec import BackboneSpec, WeightsUnavailableError

_TIMM_MISSING = (
    "{what} needs timm, which is not installed ({exc}). Install it with: "
    'pip install "sktransfer[{extra}]"'
)


def timm_spec(model_name):
    """The :class:`BackboneSpec` of ``"timm:<model_name>"``; imports nothing."""
    return BackboneSpec(
        name=f"timm:{model_name}",
        create=lambda weights: create_timm_model(
            model_name, pretrained=weights is not None
        ),
        preprocessing=lambda weights: Preprocessing(**timm_preprocessing(model_name)),
        source="timm",
        description=f"timm.create_model({model_name!r})",
        extra="timm",
        weights_present=lambda weights: timm_weights_present(model_name),
    )


def _import_timm(what="Using a timm backbone", extra="timm"):
    """Import timm or raise an ImportError giving the pip command to fix it."""
    try:
        return importlib.import_module("timm")
    except ImportError as exc:
        raise ImportError(
            _TIMM_MISSING.format(what=what, exc=exc, extra=extra)
        ) from exc


def list_timm_models():
    """Names of the timm architectures sktransfer can build.

    Those of ``timm.list_models()`` that have a pretrained config (their
    preprocessing comes from it); some timm releases list architectures without
    one (timm 0.9.2: ``efficientnet_b2a``, ``mnasnet_a1`` and four more).

    Returns
    -------
    names : list of str
    """
    timm = _import_timm()
    get_cfg = timm.models.get_pretrained_cfg
    return [name for name in timm.list_models() if get_cfg(name) is not None]


def _pretrained_cfg(name):
    """timm's pretrained config of ``name`` (``arch`` or ``arch.tag``).

    Raises ValueError for unknown architectures (suggesting close names) and
    unknown pretrained tags (listing the known ones). Offline: reads timm's
    in-package registry only.
    """
    timm = _import_timm()
    if not isinstance(name, str) or not name:
        raise TypeError(f"timm model name must be a non-empty str, got {name!r}.")
    arch, _, tag = name.partition(".")
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, list_timm_models(), n=5, cutoff=0.6)
        hint = f" Did you mean one of {close}?" if close else ""
        raise ValueError(
            f"Unknown timm model {name!r}.{hint} The names are listed by "
            f"sktransfer.list_backbones(source='timm') (as 'timm:<name>') or "
            f"timm.list_models()."
        )
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError as exc:  # timm: "Invalid pretrained tag (x) for arch."
        tags = timm.list_pretrained(f"{arch}.*")
        raise ValueError(
            f"timm model {arch!r} has no pretrained tag {tag!r}; known: "
            f"{tags}. Or use the plain name {arch!r} for its default weights."
        ) from exc
    if cfg is None:
        raise ValueError(
            f"timm has no pretrained config for model {name!r}; use a name "
            f"from timm.list_pretrained()."
        )
    return cfg


def _hub_cache_dir():
    try:
        from huggingface_hub import constants
    except ImportError:
        return "the huggingface_hub cache (huggingface_hub is not installed)"
    return constants.HF_HUB_CACHE


def _download_errors():
    """Exceptions meaning 'the weights could not be fetched'."""
    errors = [urllib.error.URLError]  # timm's URL fallback (torch.hub)
    try:
        from huggingface_hub import errors as hf_errors
    except ImportError:
        return tuple(errors)
    return (
        *errors,
        hf_errors.LocalEntryNotFoundError,  # no network / HF_HUB_OFFLINE=1, not cached
        hf_errors.OfflineModeIsEnabled,
        hf_errors.HfHubHTTPError,  # 401/403/404/5xx from the hub
    )


def create_timm_model(name, pretrained):
    """``timm.create_model(name, pretrained=pretrained)`` with clear errors.

    Parameters
    ----------
    name : str
        A timm architecture (``"resnet18"``) or ``"arch.tag"`` for specific
        pretrained weights (``"resnet18.tv_in1k"``).
    pretrained : bool
        Load the pretrained weights of the config; False builds the
        architecture with random initialisation (offline, no download).

    Returns
    -------
    model : torch.nn.Module
        As timm returns it (train mode); callers set the mode they need.

    Raises
    ------
    ValueError
        Unknown model name or pretrained tag (close names are suggested), or
        ``pretrained=True`` for a model timm has no weights for.
    WeightsUnavailableError
        ``pretrained=True`` and the weights are neither in the local
        huggingface_hub cache nor downloadable (offline, ``HF_HUB_OFFLINE=1``).
    """
    timm = _import_timm()
    cfg = _pretrained_cfg(name)
    if not pretrained:
        return timm.create_model(name, pretrained=False)
    if not (cfg.hf_hub_id or cfg.url or cfg.file or cfg.state_dict):
        raise ValueError(
            f"timm has no pretrained weights for model {name!r} (pretrained "
            f"tag {cfg.tag!r}). Pass weights=None for random initialisation, "
            f"or your own weights='path/to/file.safetensors' or a state dict."
        )
    try:
        return timm.create_model(name, pretrained=True)
    except _download_errors() as exc:
        raise WeightsUnavailableError(_offline_message(name, cfg, exc)) from exc


def _hub_files(filename):
    """The files timm's hub loader may read for ``filename``: its safetensors
    alternative first (as ``timm.models._hub._get_safe_alternatives``)."""
    safe = {
        "pytorch_model.bin": "model.safetensors",
        "open_clip_pytorch_model.bin": "open_clip_model.safetensors",
    }
    if filename in safe:
        return (safe[filename], filename)
    if filename.endswith(".bin"):
        return (filename[: -len(".bin")] + ".safetensors", filename)
    return (filename,)


def timm_weights_present(name):
    """Whether the pretrained weights of timm model ``name`` are cached here.

    Looks in the huggingface_hub cache (or torch's hub cache for weights
    timm fetches by URL) for the file timm would load; nothing is downloaded
    or read.

    Parameters
    ----------
    name : str
        A timm architecture or ``"arch.tag"``.

    Returns
    -------
    present : bool
        False also when timm has no pretrained weights for ``name``.
    """
    cfg = _pretrained_cfg(name)
    if cfg.hf_hub_id:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return False
        repo_id, _, revision = cfg.hf_hub_id.partition("@")
        files = _hub_files(cfg.hf_hub_filename or "pytorch_model.bin")
        return any(
            isinstance(
                try_to_load_from_cache(repo_id, file, revision=revision or None),
                str,
            )
            for file in files
        )
    if cfg.url:
        from ._torchvision import hub_checkpoint_path

        return os.path.exists(hub_checkpoint_path(cfg.url))
    return bool(cfg.file) and os.path.exists(cfg.file)


def _offline_message(name, cfg, exc):
    if cfg.hf_hub_id:
        where = (
            f"from the Hugging Face hub repo {cfg.hf_hub_id!r} "
            f"(https://huggingface.co/{cfg.hf_hub_id}), cached in "
            f"{_hub_cache_dir()} (HF_HOME or HF_HUB_CACHE move it; "
            f"HF_HUB_OFFLINE=1 forbids downloads)"
        )
    else:
        import torch

        where = (
            f"from {cfg.url}, cached in {torch.hub.get_dir()}/checkpoints "
            f"(set TORCH_HOME to move it)"
        )
    return (
        f"Cannot get the pretrained weights of timm model {name!r}: timm "
        f"fetches them {where}. The download failed: "
        f"{type(exc).__name__}: {str(exc).rstrip('.')}. Run once with "
        f"internet to fill the cache, or pass the weights to sktransfer yourself: "
        f"weights='path/to/file.safetensors' (or a .pth state dict file, or a "
        f"state dict), or weights=None for random initialisation."
    )


def timm_preprocessing(name):
    """The eval preprocessing of timm model ``name``'s pretrained weights.

    Computed like timm's eval transform (``resize = floor(crop / crop_pct)``,
    shorter side, then a centre crop) from the in-package pretrained config;
    nothing is downloaded.

    Parameters
    ----------
    name : str
        A timm architecture or ``"arch.tag"``.

    Returns
    -------
    preprocessing : dict
        ``resize_size``, ``crop_size`` (int), ``interpolation`` (str),
        ``mean`` and ``std`` (tuples of float).

    Raises
    ------
    NotImplementedError
        The config uses a non-square input or a crop mode other than
        ``"center"`` (``"squash"``, ``"border"``), which a shorter-side resize
        and centre crop cannot reproduce.
    """
    cfg = _pretrained_cfg(name)
    _import_timm()
    timm_data = importlib.import_module("timm.data")
    data = timm_data.resolve_data_config({}, pretrained_cfg=cfg.to_dict())
    _, height, width = data["input_size"]
    crop_mode = data.get("crop_mode", "center")
    if height != width or crop_mode != "center":
        raise NotImplementedError(
            f"timm model {name!r} is evaluated with input_size="
            f"{data['input_size']} and crop_mode={crop_mode!r}; sktransfer "
            f"reproduces only square inputs with crop_mode='center'. Pass the "
            f"preprocessing yourself (preprocessing={{'resize_size': ..., "
            f"'crop_size': ...}})."
        )
    return {
        "resize_size": math.floor(height / data["crop_pct"]),
        "crop_size": int(height),
        "interpolation": str(data["interpolation"]),
        "mean": tuple(float(m) for m in data["mean"]),
        "std": tuple(float(s) for s in data["std"]),
    }


def timm_head_name(model):
    """Qualified module name of a timm model's classifier.

    Read from ``model.pretrained_cfg["classifier"]`` (``default_cfg`` on older
    timm); when that is not a single module of ``model``, the module returned
    by ``model.get_classifier()`` is looked up by identity.

    Parameters
    ----------
    model : torch.nn.Module
        A model built by timm.

    Returns
    -------
    name : str
    """
    modules = dict(model.named_modules())
    cfg = (
        getattr(model, "pretrained_cfg", None)
        or getattr(model, "default_cfg", None)
        or {}
    )
    name = cfg.get("classifier")
    if isinstance(name, str) and name in modules:
        return name
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    for qualified, module in modules.items():
        if qualified and module is head:
            return qualified
    raise ValueError(
        f"Cannot tell the classifier of {type(model).__name__}: its config "
        f"names {name!r} and get_classifier() returned "
        f"{type(head).__name__}, not one submodule. Give the head's qualified "
        f"module name explicitly."
    )
