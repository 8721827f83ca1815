"""The secret a dynamic registration obtained, saved so that no power cut can lose it: the
platform issues it once. ``save_secret`` writes a checked backup first, then the file, each
replaced atomically (``write_file``); ``aliyun.login.load_secret`` reads the file, else the
backup. Imported only after a registration's HTTPS request, to save its answer.
"""

import json
import os


def save_secret(path: str, record: dict) -> None:
    """Save the registration ``record``: a checked backup ``path + ".bak"`` first, then ``path``,
    each replaced atomically, so a power cut at any point leaves one whole copy (the platform
    issues the secret once)."""
    data = json.dumps(record).encode()
    write_file(path + ".bak", data)
    write_file(path, data)


def write_file(path: str, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically: written to ``path + ".tmp"``, read back and
    compared (OSError if it differs), then renamed over ``path``. A power cut leaves the old
    content or the new, never a mix."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    with open(tmp, "rb") as f:
        if f.read() != data:
            raise OSError(5)  # EIO: the flash did not keep what was written
    try:
        os.rename(tmp, path)
    except OSError:  # a filesystem whose rename does not replace (FAT)
        try:
            os.remove(path)
        except OSError:
            pass
        os.rename(tmp, path)
