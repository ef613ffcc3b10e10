"""Values read from a table (a nuScenes record's lists, a JSON file's fields) checked to be there and numbers."""
from __future__ import annotations

import numbers
from typing import Sequence, Union

import numpy as np


def is_number(value, kind: type = numbers.Real) -> bool:
    """Whether a table's value is a number of ``kind`` (numbers.Real or numbers.Integral): a string is none, nor is
    a bool (JSON's true / false)."""
    return isinstance(value, kind) and not isinstance(value, bool)


def record_fields(record: dict, names: Sequence[str], source: str) -> list:
    """The values of a table record's fields ``names``; ValueError naming ``source`` and the fields it lacks."""
    missing = [name for name in names if name not in record]
    if missing:
        raise ValueError(f"{source}: the record has no {', '.join(missing)}")
    return [record[name] for name in names]


def numeric_array(values: Union[Sequence, np.ndarray], what: str, source: str) -> np.ndarray:
    """``values`` (numbers, nested or not) as a float64 array; ValueError naming ``source`` when an entry is not a
    number (is_number): a string (numpy would convert one that reads as a number silently), None, a bool, a ragged
    nesting."""
    array = values if isinstance(values, np.ndarray) else np.array(values, dtype=object)
    if array.dtype.kind not in "iuf" and not (array.dtype == object and all(map(is_number, array.ravel()))):
        raise ValueError(f"{source}: {what} must be numbers, got {values!r}")
    return array.astype(np.float64)
