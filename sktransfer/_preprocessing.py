"""Image preprocessing settings and the tensor pipeline that applies them.

A :class:`Preprocessing` travels with the weights (as in torchvision's weight
enums and timm's ``pretrained_cfg``): what resolution, crop, interpolation and
normalisation the backbone was trained with. Users may override any field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_INTERPOLATIONS = {
    "nearest": InterpolationMode.NEAREST,
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
}


@dataclass(frozen=True)
class Preprocessing:
    """How images are turned into the backbone's input tensor (eval mode).

    Parameters
    ----------
    resize_size : int or None
        The shorter side is resized to this many pixels (aspect ratio kept);
        ``None`` keeps the size.
    crop_size : int, tuple of int or None
        Centre crop to this size after resizing; ``None`` means no crop.
    interpolation : {"bilinear", "bicubic", "nearest"}
        Resampling used by the resize.
    mean, std : tuple of float
        Per-channel normalisation applied to pixels scaled to [0, 1].
    channels : int
        Number of colour channels the backbone expects (3 or 1).

    Examples
    --------
    >>> import torch
    >>> from sktransfer import Preprocessing
    >>> small = Preprocessing().with_overrides({"resize_size": 40, "crop_size": 32})
    >>> small.output_size
    [32, 32]
    >>> small.apply(torch.zeros(3, 60, 80, dtype=torch.uint8)).shape
    torch.Size([3, 32, 32])
    """

    resize_size: int | None = 256
    crop_size: int | tuple[int, int] | None = 224
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channels: int = 3

    def with_overrides(self, overrides):
        """Return a copy with the fields of the dict ``overrides`` replaced.

        Parameters
        ----------
        overrides : dict
            ``{field name: value}``; unknown names raise ``ValueError``.

        Returns
        -------
        preprocessing : Preprocessing
            A validated copy.
        """
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(
                f"Unknown preprocessing key(s) {unknown}; allowed keys are "
                f"{sorted(known)}."
            )
        new = replace(self, **overrides)
        new.validate()
        return new

    def validate(self):
        """Raise ``ValueError`` naming the first invalid field, if any."""
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"preprocessing interpolation must be one of "
                f"{sorted(_INTERPOLATIONS)}, got {self.interpolation!r}."
            )
        if self.channels not in (1, 3):
            raise ValueError(
                f"preprocessing channels must be 1 or 3, got {self.channels!r}."
            )
        for name in ("mean", "std"):
            value = getattr(self, name)
            if len(value) != self.channels:
                raise ValueError(
                    f"preprocessing {name} must have {self.channels} values "
                    f"(one per channel), got {value!r}."
                )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"preprocessing std must be positive, got {self.std!r}.")

    def to_dict(self):
        """A JSON-friendly dict (used in cache keys and saved configs).

        Returns
        -------
        fields : dict
            Every field, tuples as lists.
        """
        d = asdict(self)
        d["mean"] = list(d["mean"])
        d["std"] = list(d["std"])
        if isinstance(d["crop_size"], tuple):
            d["crop_size"] = list(d["crop_size"])
        return d

    def apply(self, image):
        """Preprocess one image tensor (C, H, W), uint8 or float in [0, 1].

        Mirrors torchvision's ``ImageClassification`` preset: resize (with
        antialiasing) on the tensor as given, centre crop, scale to float,
        normalise. uint8 images are resized in uint8, as torchvision resizes
        PIL images; the two round differently (by 1 of 255 on under 1% of
        pixels), so features match those of ``weights.transforms()`` to about
        1e-4 of their scale, and to float32 precision when no resize is needed.

        Parameters
        ----------
        image : torch.Tensor
            One image (C, H, W), uint8 or float in [0, 1].

        Returns
        -------
        tensor : torch.Tensor
            The normalised float32 image, (C, crop H, crop W).
        """
        return self.normalize(to_float(self.resize_crop(image)))

    def resize_crop(self, image):
        """The geometric part of :meth:`apply`; keeps the dtype.

        Parameters
        ----------
        image : torch.Tensor
            One image (C, H, W), uint8 or float in [0, 1].

        Returns
        -------
        tensor : torch.Tensor
            The resized and centre-cropped image, of the input's dtype.
        """
        if self.resize_size is not None:
            image = TF.resize(
                image,
                [self.resize_size],
                interpolation=_INTERPOLATIONS[self.interpolation],
                antialias=True,
            )
        if self.crop_size is not None:
            image = TF.center_crop(image, _pair(self.crop_size))
        return image

    def normalize(self, image):
        """Normalise a float image (C, H, W) or batch (N, C, H, W).

        Parameters
        ----------
        image : torch.Tensor
            Float pixels in [0, 1].

        Returns
        -------
        tensor : torch.Tensor
            ``(image - mean) / std`` per channel.
        """
        return TF.normalize(image, list(self.mean), list(self.std))

    @property
    def output_size(self):
        """(H, W) of a preprocessed image, or None when it depends on input."""
        if self.crop_size is not None:
            return _pair(self.crop_size)
        return None


def to_float(image):
    """uint8 tensor -> float32 in [0, 1]; float tensors -> float32."""
    if image.dtype == torch.uint8:
        return image.to(torch.float32).div_(255.0)
    return image.to(torch.float32)


def _pair(size):
    if isinstance(size, int):
        return [size, size]
    return [int(s) for s in size]


def preprocessing_from_torchvision(transforms):
    """Read a :class:`Preprocessing` from a torchvision ``ImageClassification``."""
    interpolation = transforms.interpolation.value
    return Preprocessing(
        resize_size=int(transforms.resize_size[0]),
        crop_size=int(transforms.crop_size[0]),
        interpolation=interpolation,
        mean=tuple(float(m) for m in transforms.mean),
        std=tuple(float(s) for s in transforms.std),
    )


def resolve_preprocessing(default, override):
    """Combine a backbone's default preprocessing with the user's override.

    ``override`` is None (use ``default``), ``"passthrough"`` (no image
    handling: numeric arrays go to the backbone as float32 tensors), or a dict
    of fields to replace.
    """
    if override is None:
        return default
    if isinstance(override, str):
        if override == "passthrough":
            return None
        raise ValueError(
            f"preprocessing must be None, 'passthrough' or a dict of overrides, "
            f"got {override!r}."
        )
    if isinstance(override, dict):
        base = default if default is not None else Preprocessing()
        return base.with_overrides(override)
    raise TypeError(
        f"preprocessing must be None, 'passthrough' or a dict of overrides, "
        f"got an object of type {type(override).__name__}."
    )
