"""Benchmarks (not tests): ``python -m benchmarks.sweep|notify|chat``; see README "Performance"."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def report(result: Mapping[str, Any], as_json: bool) -> None:
    """Print a benchmark's figures: one JSON object (``--json``), or one aligned line per figure."""
    if as_json:
        print(json.dumps(result))
        return
    width = max(map(len, result), default=0)
    for k, v in result.items():
        print(f"{k:>{width}}: {v}")
