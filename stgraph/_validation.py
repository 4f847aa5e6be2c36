"""Argument checks shared by the whole package: one wording for every parameter."""
from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an ``int`` after checking that it is an integer ``>= minimum``.

    Raises
    ------
    TypeError
        If ``value`` is not an integer (booleans included).
    ValueError
        If ``value < minimum``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(value)


#: Largest seed: scikit-learn's ``random_state`` and NumPy's legacy seeding take 32 bits.
MAX_SEED = 2**32 - 1


def check_seed(value: Any, name: str = "seed") -> int:
    """``value`` as an ``int`` after checking that it is an integer in ``[0, MAX_SEED]``.

    Raises
    ------
    TypeError
        If ``value`` is not an integer (booleans included).
    ValueError
        If it is negative or above :data:`MAX_SEED`.
    """
    value = check_int(name, value, minimum=0)
    if value > MAX_SEED:
        raise ValueError(f"{name} must be at most 2**32 - 1 = {MAX_SEED}, got {value!r}")
    return value


def check_real(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """``value`` as a ``float`` after checking that it is a finite number ``> 0``
    (``>= 0`` with ``allow_zero``).

    Raises
    ------
    TypeError
        If ``value`` is not a real number (booleans included).
    ValueError
        If it is NaN, infinite, negative, or zero without ``allow_zero``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        wanted = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a {wanted} finite number, got {value}")
    return value


def check_dropout(value: Any, name: str = "dropout") -> float:
    """``value`` as a ``float`` after checking that it is a probability in ``[0, 1)``.

    Raises
    ------
    TypeError
        If ``value`` is not a real number (booleans included).
    ValueError
        If it is NaN or outside ``[0, 1)`` (1 would drop everything and divide by 0).
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value}")
    return float(value)


def check_non_negative(name: str, values: Any) -> np.ndarray:
    """``values`` as a ``float64`` array after checking that they are finite and ``>= 0``.

    Raises
    ------
    ValueError
        If a value is NaN, infinite or negative.
    """
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)) or (values.size and values.min() < 0):
        raise ValueError(f"{name} must be finite and non-negative")
    return values


def check_codes(name: str, values: Any, size: int | None = None, *, missing: bool = False) -> np.ndarray:
    """``values`` as a 1-D ``int64`` array after checking that it holds integer codes
    ``>= 0`` (``-1`` too, for "missing", with ``missing``) and ``< size`` when given.

    Codes index count tables (``code * size + other``): one out of range would be
    counted silently in another row.

    Raises
    ------
    TypeError
        If ``values`` does not hold integers.
    ValueError
        If it is not one-dimensional or a code lies outside the range.
    """
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integer codes, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    lowest = -1 if missing else 0
    if array.size and (array.min() < lowest or (size is not None and array.max() >= size)):
        upper = "" if size is None else f" and < {size}"
        raise ValueError(
            f"{name} must hold codes >= {lowest}{upper}, got codes from {array.min()} to {array.max()}"
        )
    return array


def check_path(name: str, value: Any) -> Path:
    """``value`` as a :class:`~pathlib.Path` after checking that it is a string or ``os.PathLike``.

    Raises
    ------
    TypeError
        If ``value`` is neither (a number, None): :class:`~pathlib.Path` would refuse it
        without naming the argument.
    """
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (a string or os.PathLike), got {type(value).__name__}")
    return Path(value)


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a ``bool`` after checking that it is one (Python or NumPy).

    Raises
    ------
    TypeError
        If ``value`` is not a boolean: a string such as ``"False"`` or a number would
        otherwise act by its truth value (``"False"`` is true).
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool (True or False), got {value!r}")
    return bool(value)


def check_key(name: str, value: Any, *, optional: bool = False) -> str | None:
    """``value`` after checking that it is a name (of an element, a column): a string,
    or None with ``optional``.

    A None or a number was looked up as a name and reported missing ("sdata has no
    shapes element None"), as if the data lacked it.

    Raises
    ------
    TypeError
        If ``value`` is not a string (nor None with ``optional``).
    """
    if isinstance(value, str) or (optional and value is None):
        return value
    wanted = "a string or None" if optional else "a string"
    raise TypeError(f"{name} must be {wanted}, got {type(value).__name__}")


def check_not_one_name(parameter: str, requested) -> None:
    """Refuse one string where a list of names is expected: it would be read letter by letter.

    Raises
    ------
    TypeError
        If ``requested`` is a string.
    """
    if isinstance(requested, str):
        raise TypeError(f"{parameter} must be a list of names, got the string {requested!r}: pass [{requested!r}]")


def check_names(parameter: str, requested: Iterable, available: Iterable, *, list_available: bool = False) -> list[str]:
    """``requested`` as strings, after checking that each is one of ``available``.

    Parameters
    ----------
    parameter
        Name of the argument that gave ``requested``, for the message.
    requested
        Names asked for (genes, cells).
    available
        Names the data has.
    list_available
        Also list (up to 10 of) ``available`` in the message, for short lists such
        as element keys.

    Raises
    ------
    TypeError
        If ``requested`` is one string (it would be read letter by letter).
    ValueError
        If ``requested`` is empty, or naming the requested names the data does not
        have (a plot of either would be empty).
    """
    check_not_one_name(parameter, requested)
    requested = [str(r) for r in requested]
    if not requested:
        raise ValueError(f"{parameter} is empty: name at least one, or pass None for all")
    available = {str(a) for a in available}
    unknown = [r for r in requested if r not in available]
    if unknown:
        message = f"{parameter}: not in the data: {unknown[:10]}" + (" ..." if len(unknown) > 10 else "")
        if list_available:
            names = sorted(available)
            message += f"; available: {names[:10]}" + (" ..." if len(names) > 10 else "")
        raise ValueError(message)
    return requested


def is_dask(value: Any) -> bool:
    """Whether ``value`` is a dask collection: a dask DataFrame's class is called as
    pandas' is, so a message naming only the type ("got DataFrame") would not tell them apart."""
    return type(value).__module__.split(".")[0] == "dask"


#: Types a checkpoint stores as they are: it is read back with ``torch.load(weights_only=True)``.
PLAIN_TYPES = (bool, int, float, str, type(None))


def check_plain(name: str, value: Any) -> Any:
    """``value`` as plain Python values, for a checkpoint: NumPy values and tensors
    become Python numbers or lists (``tolist()``); lists, tuples and dicts are
    converted item by item.

    A NumPy value makes the checkpoint unreadable with ``weights_only=True``, and a
    tensor of several values cannot be compared when a run is resumed.

    Raises
    ------
    TypeError
        If ``value`` holds anything else (a :class:`fractions.Fraction`, an enum, an
        object), naming the offending entry.
    """
    if isinstance(value, (np.generic, np.ndarray, torch.Tensor)):
        value = value.tolist()
    if isinstance(value, dict):
        return {check_plain(name, k): check_plain(f"{name}[{k!r}]", v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [check_plain(name, item) for item in value]
        return tuple(items) if isinstance(value, tuple) else items
    if type(value) not in PLAIN_TYPES:  # exact types: a subclass (an IntEnum) pickles as its class
        raise TypeError(
            f"{name} must hold plain Python values (bool, int, float, str, None, or lists, "
            f"tuples and dicts of them), NumPy values or tensors, got {type(value).__name__}"
        )
    return value
