"""``machine`` on the virtual board: the unix port's module plus a board's ``reset()``.

Runs inside the VM; vm_main installs it as ``sys.modules["machine"]``. Every other name is the
built-in module's.
"""

import machine as _builtin

for _name in dir(_builtin):
    if not _name.startswith("__"):
        globals()[_name] = getattr(_builtin, _name)
del _name

_notify = None  # set by vm_main: sends a control message to the host


def reset():
    """Hard reset: the host restarts the VM (fresh state, boot.py then main.py)."""
    import time

    _notify(b"H")
    while True:  # the host kills this VM; a board never returns from reset()
        try:
            time.sleep_ms(1000)
        except KeyboardInterrupt:
            pass


def soft_reset():
    """Soft reset, as on a board: leave to the REPL, which reboots."""
    raise SystemExit
