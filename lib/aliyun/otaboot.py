"""Boot-time selection of the application's file set, from one small state file (OTA).

The factory set is the board's own files (``/lib`` and the root). An update installs a complete
set in slot ``ota/s0`` or ``ota/s1`` and then, last, replaces ``ota/state.json`` (written to a
temporary file and renamed: a power cut leaves the old file or the new one, never half of one):

    {"slot": "s1", "version": "1.1.0", "status": "trial", "boots": 0, "trial_ms": 120000,
     "prev": ["s0", "1.0.0"], "failed": ["0.9.1"], "report": null}

``select()`` runs first in main.py, before any other project module is imported:

- no state file, or one that cannot be read: the factory set;
- ``confirmed``: that slot;
- ``trial`` not booted yet: mark it booted (``boots`` 1), then that slot;
- ``trial`` booted before (the new version crashed, was reset or lost power before it was
  confirmed): roll back to ``prev``, remember the version in ``failed`` (never installed
  again) and leave a ``report`` (step -1 and the reason) for the agent to send once online.

main.py drops this module and the ``aliyun`` package from ``sys.modules`` right after
``select()``, so the package is imported again from the set selected.
"""

import json
import os
import sys

DIR = "ota"
STATE = "ota/state.json"


def load():
    """The state dict, or None (no update installed, or an unreadable file: factory)."""
    try:
        with open(STATE) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    return state if type(state) is dict and state.get("slot") in ("s0", "s1", None) else None


def save(state) -> None:
    """Replace the state file atomically (see ``write_json``)."""
    write_json(STATE, state)


def write_json(path: str, obj) -> None:
    """Replace ``path`` (in ``ota/``) atomically: write a temporary file, then rename it."""
    tmp = path + ".tmp"
    try:
        os.mkdir(DIR)
    except OSError:
        pass  # exists
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, path)


def rollback(state, reason: str):
    """The state after a failed trial: the previous set, the version never retried."""
    prev = state.get("prev") or [None, None]
    failed = state.get("failed") or []
    if state["version"] not in failed:
        failed.append(state["version"])
    report = {"step": -1, "desc": reason, "version": state["version"]}
    return {"slot": prev[0], "version": prev[1], "status": "confirmed", "failed": failed[-8:],
            "report": report}  # fmt: skip


def select(drop: bool = False):
    """Apply the state file to ``sys.path`` (see the module doc); return the state in force.
    ``drop`` (main.py): forget this module and the ``aliyun`` package afterwards, so the
    package is imported again from the set selected."""
    state = load()
    if state is None:
        return None
    if state.get("status") == "trial":
        if state.get("boots", 0):
            state = rollback(state, "reset before the trial ended")
        else:
            state["boots"] = 1
        try:
            save(state)
        except OSError:
            pass  # a read-only or full filesystem: run what the state says
    slot = state.get("slot")
    if slot:
        base = DIR + "/" + slot
        sys.path.insert(0, base)
        sys.path.insert(0, base + "/lib")
    for name in ("aliyun.otaboot", "aliyun") if drop else ():
        sys.modules.pop(name, None)
    return state
