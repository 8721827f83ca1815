"""``os`` on the virtual board: the unix port's module with a board's ``ilistdir()``.

Runs inside the VM; vm_main installs it as ``sys.modules["os"]``. The unix port's VfsPosix lists
(name, type, inode); boards also give the size, which ``mpremote fs ls`` shows.
"""

import os as _builtin

for _name in dir(_builtin):
    if not _name.startswith("__"):
        globals()[_name] = getattr(_builtin, _name)
del _name


def ilistdir(path="."):
    text = isinstance(path, str)
    base = path if text else path.decode()
    base = "" if base in ("", ".") else base.rstrip("/") + "/"
    for entry in _builtin.ilistdir(path):
        if len(entry) == 3:
            size = 0
            if entry[1] == 0x8000:
                size = _builtin.stat(base + (entry[0] if text else entry[0].decode()))[6]
            entry = (entry[0], entry[1], entry[2], size)
        yield entry
