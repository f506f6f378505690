"""Parameter checks run at ``fit``, with messages naming class and parameter."""

from __future__ import annotations

import numbers


def check_choice(owner, name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"{owner}: {name} must be one of {list(choices)}, got {value!r}."
        )


def check_int(owner, name, value, *, minimum=1, allow_none=False):
    if value is None and allow_none:
        return
    if (
        not isinstance(value, numbers.Integral)
        or isinstance(value, bool)
        or value < minimum
    ):
        raise ValueError(
            f"{owner}: {name} must be an int >= {minimum}"
            f"{' or None' if allow_none else ''}, got {value!r}."
        )


def check_float(
    owner,
    name,
    value,
    *,
    low,
    high,
    low_inclusive=True,
    high_inclusive=True,
    allow_none=False,
):
    if value is None and allow_none:
        return
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        ok = (value >= low if low_inclusive else value > low) and (
            value <= high if high_inclusive else value < high
        )
    if not ok:
        lo = "[" if low_inclusive else "("
        hi = "]" if high_inclusive else ")"
        raise ValueError(
            f"{owner}: {name} must be a float in {lo}{low}, {high}{hi}"
            f"{' or None' if allow_none else ''}, got {value!r}."
        )


def check_bool(owner, name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{owner}: {name} must be True or False, got {value!r}.")


def check_image_shape(owner, image_shape):
    if image_shape is None:
        return None
    if (
        not isinstance(image_shape, (tuple, list))
        or len(image_shape) not in (2, 3)
        or not all(isinstance(s, numbers.Integral) and s > 0 for s in image_shape)
        or (len(image_shape) == 3 and image_shape[2] not in (1, 3, 4))
    ):
        raise ValueError(
            f"{owner}: image_shape must be None, (H, W) or (H, W, C) with C in "
            f"(1, 3, 4), got {image_shape!r}."
        )
    return tuple(int(s) for s in image_shape)
