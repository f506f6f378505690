"""Checks of the ``y`` a fine-tuner is given, before it is encoded.

What users pass as labels comes from CSV files and DataFrames: object arrays
holding None, NaN or ``pd.NA`` for a missing label, numbers mixed with
strings, complex or date values. numpy, pandas and scikit-learn fail on these
deep inside (``'<' not supported between 'float' and 'str'``, ``could not
convert string to float``, ``boolean value of NA is ambiguous``); these
checks name ``y``, the first offending entry and the fix instead. Arrays of
one plain dtype are left to the estimators (and scikit-learn) as before.
"""

from __future__ import annotations

import numbers

import numpy as np


def as_target_array(y, owner):
    """``y`` (a list, array, pandas object or scipy sparse matrix) as a numpy
    array of at least one dimension."""
    if hasattr(y, "toarray"):  # a scipy sparse indicator matrix
        y = y.toarray()
    if hasattr(y, "to_numpy"):
        return y.to_numpy()
    try:
        array = np.asarray(y)  # ragged input: ValueError (numpy >= 1.24)
    except (ValueError, TypeError) as exc:
        # Ragged rows: label sets rather than an indicator matrix, or a
        # sequence among the labels.
        raise ValueError(
            f"{owner}: y cannot be read as an array ({exc}). Pass one label per "
            f"sample (1-D), or for several labels per sample an indicator matrix: "
            f"MultiLabelBinarizer().fit_transform(label_sets)."
        ) from None
    if array.ndim == 0:
        raise ValueError(
            f"{owner}: y must be a sequence of targets (one per sample), got a "
            f"scalar {_short(y)}."
        )
    return array


def check_class_labels(y, owner):
    """``y`` (1-D or 2-D, from ``np.asarray``) with object entries checked:
    strings stay strings, an all-number object array becomes numeric.

    Raises ``ValueError`` for missing entries, labels mixing strings and
    numbers, complex values and y of more than 2 dimensions, and
    ``TypeError`` for entries that are no labels (dicts, lists, bytes).
    """
    if y.ndim > 2:
        raise ValueError(
            f"{owner}: y must be 1-D (one label per sample) or 2-D (a "
            f"multi-label indicator matrix), got shape {y.shape}."
        )
    if y.dtype.kind == "c":
        raise ValueError(
            f"{owner}: Complex data not supported in y (dtype {y.dtype}); class "
            f"labels must be strings, integers or booleans."
        )
    if y.dtype.kind != "O":
        return y
    kinds = _entry_kinds(y, owner, allowed=(str, numbers.Number))
    if "str" in kinds and "number" in kinds:
        first_str, first_num = kinds["str"], kinds["number"]
        raise ValueError(
            f"{owner}: y mixes strings and numbers as labels (y[{first_str}] is "
            f"{_shown(y, first_str)}, y[{first_num}] is {_shown(y, first_num)}); "
            f"use one type, e.g. y.astype(str)."
        )
    if "number" in kinds:
        return _numeric_array(y)
    return y


def check_numeric_target(y, owner):
    """``y`` of a regressor: an object array must hold real numbers only
    (it becomes float); complex and date values are refused."""
    if y.dtype.kind == "c":
        raise ValueError(
            f"{owner}: Complex data not supported in y (dtype {y.dtype}); "
            f"regression targets must be real numbers."
        )
    if y.dtype.kind in "Mm":
        raise ValueError(
            f"{owner}: y must be numeric, got dtype {y.dtype} (dates or "
            f"durations); convert them to numbers first, e.g. y.astype('int64')."
        )
    if y.dtype.kind != "O":
        return y
    kinds = _entry_kinds(y, owner, allowed=(numbers.Number,))
    if "str" in kinds:
        at = kinds["str"]
        raise ValueError(
            f"{owner}: y must be numeric, but y[{at}] is the string "
            f"{_shown(y, at)}; for class labels use FineTunedClassifier."
        )
    return _numeric_array(y)


def _entry_kinds(y, owner, allowed):
    """``{"str" | "number": index of the first such entry}`` of object ``y``;
    raises on a missing entry or one of a type not in ``allowed``."""
    kinds = {}
    for index, value in np.ndenumerate(y):
        at = index[0] if y.ndim == 1 else index
        if _is_missing(value):
            raise ValueError(
                f"{owner}: y has a missing value at y[{_index(at)}] "
                f"({value!r}); every sample needs a target: drop those samples "
                f"or fill them in."
            )
        if isinstance(value, str) and str in allowed:
            kinds.setdefault("str", _index(at))
        elif isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
            raise ValueError(
                f"{owner}: y[{_index(at)}] is the complex number {value!r}; "
                f"targets must be real numbers or labels."
            )
        elif isinstance(value, numbers.Number):
            kinds.setdefault("number", _index(at))
        elif isinstance(value, str):
            kinds.setdefault("str", _index(at))
        else:
            raise TypeError(
                f"{owner}: y[{_index(at)}] is a {type(value).__name__} "
                f"({_short(value)}); each target must be a string, a number or "
                f"a boolean."
            )
    return kinds


def _is_missing(value):
    if value is None:
        return True
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing values
        return True
    return isinstance(value, numbers.Real) and value != value  # NaN


def _numeric_array(y):
    """An object array of real numbers as a numeric array (bool stays bool)."""
    values = y.tolist()
    flat = y.ravel().tolist()
    if all(isinstance(v, (bool, np.bool_)) for v in flat):
        return np.asarray(values, dtype=bool)
    if all(isinstance(v, numbers.Integral) for v in flat):
        try:
            return np.asarray(values, dtype=np.int64)
        except OverflowError:
            return np.asarray(values, dtype=np.float64)
    return np.asarray(values, dtype=np.float64)


def _index(at):
    return ", ".join(map(str, at)) if isinstance(at, tuple) else str(at)


def _shown(y, at):
    index = tuple(int(i) for i in at.split(", ")) if ", " in at else int(at)
    return _short(y[index])


def _short(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
