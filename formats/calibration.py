"""The calibration file: what `stormbench calibrate` measured of a machine's server.

A shared format: the model reads its service times (`sim.calibration`), and a scenario that does not
state `system.restart_downtime` takes the measured time a real server took to come back from a restart,
which the virtual-clock emulation cannot measure itself (starting a server takes no scenario time
there). A measured default ships beside this module.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path(__file__).with_name("calibration_default.json")


def read(path: str | Path | None = None) -> tuple[dict[str, Any], str]:
    """The calibration file's JSON object (the shipped default when `path` is None) and its name."""
    p = Path(path) if path is not None else DEFAULT_PATH
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise ValueError(f"{p}: calibration file not found (make one with `stormbench calibrate --out {p}`)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a JSON object, got {type(data).__name__}")
    return data, str(p)


def restart_downtime(path: str | Path | None = None) -> float:
    """Seconds a restarting server accepted nothing, as `stormbench calibrate` measured it."""
    data, where = read(path)
    value = data.get("restart_downtime_s")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: field restart_downtime_s: expected a non-negative number of seconds, got {value!r}")
    return float(value)
