"""Reading the JSON files this project and nuScenes write, with errors that name the file; writing the records a
resumed job reads back, whole or not at all."""
from __future__ import annotations

import json
import os
from typing import Any


def read_json(path: str) -> Any:
    """The content of the JSON file ``path``; ValueError naming it when it is not valid UTF-8 JSON (cut short,
    say)."""
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None


def write_json_atomic(path: str, value: Any, **dump_options) -> None:
    """Writes ``value`` as JSON to ``path`` through a temporary file beside it and a rename: a job killed while
    writing leaves the old file or none (and the temporary one), never one cut short (``dump_options``:
    json.dump's)."""
    partial = f"{path}.{os.getpid()}.partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(value, handle, **dump_options)
    os.replace(partial, path)
