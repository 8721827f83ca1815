"""The write path of stored readings, small enough to stay loaded while the rest of the store
(``aliyun.store``, ``aliyun.backlog``) is unloaded for a bring-up.

``frame`` is the store's record framing: ``length (u16 LE) | crc32(length bytes + payload)
(u32 LE) | payload``; ``append`` adds one framed record to a segment file and closes it (on
flash when it returns). ``reading`` is the backlog's record of one reading.
"""

import json
from binascii import crc32
from struct import pack

from micropython import const

HEAD = const(6)  # u16 length + u32 crc32
_MAX_TEXT = const(1000)  # a reading's params, dated: one message carries it (aliyun.backlog)


def frame(data) -> bytes:
    size = pack("<H", len(data))
    return size + pack("<I", crc32(data, crc32(size))) + data


def append(path: str, data) -> int:
    """Append ``data`` framed to file ``path``; the bytes written."""
    framed = frame(data)
    with open(path, "ab") as f:
        f.write(framed)
    return len(framed)


def reading(msg_id: str, params: dict, epoch_ms, boot: int, ticks) -> bytes:
    """``b"<id> <t> <boot> <ticks> <params JSON>"``, the params dated when ``epoch_ms`` is
    known; ValueError if too large for one message."""
    if epoch_ms:
        params = {k: {"value": v, "time": epoch_ms} for k, v in params.items()}
    text = json.dumps(params)
    if len(text) + 16 * len(params) > _MAX_TEXT:
        raise ValueError("reading too large for one message")
    return ("%s %d %d %d " % (msg_id, epoch_ms or 0, boot, ticks) + text).encode()
