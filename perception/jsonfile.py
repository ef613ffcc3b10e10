"""Reading the JSON files this project and nuScenes write, with errors that name the file; writing the records a
resumed job reads back, whole or not at all."""
from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, List, Mapping, Optional, TextIO


def read_json(path: str) -> Any:
    """The content of the JSON file ``path``; ValueError naming it when it is not valid UTF-8 JSON (cut short,
    say)."""
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None


def as_read_back(value: Any, default: Optional[Callable[[Any], Any]] = None) -> Any:
    """``value`` as a JSON file would give it back (tuples as lists, keys as strings; what ``default`` makes of
    what JSON cannot hold): what a record written now reads as, for comparing it with one read from a file."""
    return json.loads(json.dumps(value, default=default))


def finite_or_null(value: Any) -> Any:
    """``value`` (numbers, nested in dicts, lists and tuples) with every float that is not finite None: JSON has no
    NaN or infinity, and a strict parser refuses Python's."""
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(item) for item in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _differing_keys(recorded: Mapping[str, Any], identity: Mapping[str, Any], prefix: str = "") -> List[str]:
    """The keys whose values differ or that one side lacks, an object's by its own (``options.lidar_sweeps``)."""
    differing = []
    for key in sorted(set(recorded) | set(identity)):
        if key in recorded and key in identity and isinstance(recorded[key], dict) and isinstance(identity[key], dict):
            differing += _differing_keys(recorded[key], identity[key], f"{prefix}{key}.")
        elif key not in recorded or key not in identity or recorded[key] != identity[key]:
            differing.append(f"{prefix}{key}")
    return differing


_IN_THE_FILE = object()


def check_same_run(path: str, identity: Mapping[str, Any], what: str, advice: str,
                   recorded: Any = _IN_THE_FILE) -> None:
    """Nothing when the record of the run that made ``what``, the JSON file ``path`` (or ``recorded``, a value read
    from it), is this run's ``identity``; else a ValueError naming ``path``, what differs and ending with ``advice``
    (what the user can do)."""
    if recorded is _IN_THE_FILE:
        if not os.path.isfile(path):
            raise ValueError(f"{path}: missing, so the run that made {what} is unknown; {advice}")
        recorded = read_json(path)
    if recorded == identity:
        return
    if not isinstance(recorded, dict):
        problem = f"the record of the run is a JSON {type(recorded).__name__}, not an object"
    else:
        problem = f"{what} are of a run with another {', '.join(_differing_keys(recorded, identity))}"
    raise ValueError(f"{path}: {problem}; {advice}")


def _write_atomic(path: str, write: Callable[[TextIO], None]) -> None:
    """``write(handle)`` into a temporary file beside ``path``, then renamed to it: a job killed while writing
    leaves the old file or none (and the temporary one), never one cut short."""
    partial = f"{path}.{os.getpid()}.partial"
    with open(partial, "w", encoding="utf-8") as handle:
        write(handle)
    os.replace(partial, path)


def write_json_atomic(path: str, value: Any, **dump_options) -> None:
    """Writes ``value`` as JSON to ``path`` atomically (_write_atomic; ``dump_options``: json.dump's)."""
    _write_atomic(path, lambda handle: json.dump(value, handle, **dump_options))


def read_json_lines(path: str, validate: Optional[Callable[[Any, str], None]] = None) -> List[Any]:
    """The values of the JSON-lines file ``path``, one a line (none when there is no such file), each passed to
    ``validate(value, where)`` when given (``where``: the file and line, for its errors). A last line cut short (a
    job killed while writing it) is dropped; any other line that is not JSON raises ValueError naming the file and
    the line (not UTF-8 JSON)."""
    if not os.path.isfile(path):
        return []
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    values = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            if number == len(lines):  # the last line, without its newline: cut short
                break
            raise ValueError(f"{path}: line {number} is not JSON ({error})") from None
        if validate is not None:
            validate(value, f"{path}: line {number}")
        values.append(value)
    return values


def write_json_lines(path: str, values: List[Any]) -> None:
    """Writes ``values`` to ``path``, one JSON line each, atomically (_write_atomic): what a resumed job keeps of a
    file it then appends to, without a line cut short."""
    _write_atomic(path, lambda handle: handle.writelines(json.dumps(value) + "\n" for value in values))
