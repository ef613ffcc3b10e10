"""Reading the JSON files this project and nuScenes write, with errors that name the file."""
from __future__ import annotations

import json
from typing import Any


def read_json(path: str) -> Any:
    """The content of the JSON file ``path``; ValueError naming it when it is not valid UTF-8 JSON (cut short,
    say)."""
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
