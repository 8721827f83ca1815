"""Property posts kept on flash (``aliyun.store``) until the cloud has them, with their time.

A record is ``b"<id> <t> <boot> <ticks> <params JSON>"``: the Alink message id given when the
reading was taken, its epoch time in ms (0 while the clock is unknown), the store's ``boot``
number and the ``ticks_ms`` value then (to date it once the clock is known in the same boot).
With a time, the params are stored already dated, ``{"P": {"value": v, "time": t}}``, so
sending them joins stored text instead of decoding it (RAM). ``next`` turns the oldest records
into one message:

- a normal ``thing.event.property.post`` of one reading (plain values when its time cannot be
  known: measured in an earlier boot that never had a clock);
- readings older than ``HISTORY_AFTER_MS`` (Aliyun takes a device time within 24 h on a normal
  post) go batched into ``thing.event.property.history.post`` (reference §4.3), up to
  ``_BATCH_BYTES`` of payload (which keeps a batch far below the platform's 200 values).

``next`` needs the clock (epoch ms, ticks at that instant) to date and age the readings; the
caller acknowledges a message it published with ``store.ack(token)``.
"""

import json

from micropython import const

from aliyun.spool import reading
from aliyun.store import Store

HISTORY_AFTER_MS = const(23 * 3600 * 1000)  # an hour inside the 24 h rule: clock skew
_WINDOW = const(6)  # records read ahead (RAM)
_BATCH_BYTES = const(900)  # payload of one history post (AT+MPUBEX takes 4100): RAM
_HEAD = b'{"id":"'
_POST = b'","version":"1.0","sys":{"ack":1},"method":"thing.event.property.post","params":'
_HISTORY = b'","version":"1.0","sys":{"ack":1},"method":"thing.event.property.history.post",'


class Backlog:
    def __init__(
        self, root: str, max_bytes: int, product_key: str, device_name: str, ticks_diff, boot=0
    ):
        self.store = Store(root, max_bytes)
        self.boot = boot or self.store.boot  # this run (kept when the store is reopened)
        self._ticks_diff = ticks_diff
        identity = {"productKey": product_key, "deviceName": device_name}
        self._identity = b'"params":[{"identity":' + json.dumps(identity).encode()
        self.errors = 0  # readings the filesystem refused (not kept)

    def add(self, msg_id: str, params: dict, epoch_ms, ticks) -> bool:
        """Keep a reading durably; False if older unsent readings were dropped for room.
        ValueError if it could not be sent in one message; OSError (counted in ``errors``)
        when the filesystem fails."""
        record = reading(msg_id, params, epoch_ms, self.boot, ticks)
        try:
            return self.store.append(record)
        except OSError:
            self.errors += 1
            raise

    def _parse(self, raw, clock):
        """``(id, epoch ms or None, params text)``: dated text whenever the time is known."""
        msg_id, t, boot, ticks, text = raw.split(b" ", 4)
        t = int(t)
        if t:
            return msg_id, t, text
        if clock is not None and int(boot) == self.boot:
            t = clock[0] + self._ticks_diff(int(ticks), clock[1])
            return msg_id, t, json.dumps(_dated(json.loads(text), t)).encode()
        return msg_id, None, text

    def next(self, clock, now_ms, topic: str):
        """``(topic, payload, token)`` for the oldest readings, or None when there are none or
        they wait for the clock (``clock`` None); ``now_ms``: epoch ms now. Once the message
        is published, ``store.ack(token)``."""
        raw = self.store.peek(_WINDOW)
        if not raw:
            return None
        if clock is None and (raw[0].split(b" ", 2)[1] != b"0" or self._this_boot(raw[0])):
            return None  # its time is or will be known: wait for the clock to age it
        msg_id, t, text = self._parse(raw[0], clock)
        if t is None or now_ms - t < HISTORY_AFTER_MS:
            payload = b"".join((_HEAD, msg_id, _POST, text, b"}"))
            return topic, payload, self.store.token(1)
        parts = [_HEAD, msg_id, _HISTORY, self._identity, b',"properties":[', text]
        size = len(text) + 200
        count = 1
        for item in raw[1:]:
            _id, t, text = self._parse(item, clock)
            size += len(text) + 1
            if t is None or now_ms - t < HISTORY_AFTER_MS or size > _BATCH_BYTES:
                break
            parts.append(b",")
            parts.append(text)
            count += 1
        parts.append(b"]}]}")
        history = topic[: -len("post")] + "history/post"
        return history, b"".join(parts), self.store.token(count)

    def _this_boot(self, raw) -> bool:
        return int(raw.split(b" ", 3)[2]) == self.boot

    def state(self, clock, now_ms) -> dict:
        """For ``stats``: records, bytes, age of the oldest (ms, None if unknown), drops."""
        store = self.store
        oldest = None
        raw = store.peek(1)
        if raw and now_ms is not None:
            t = self._parse(raw[0], clock)[1]
            oldest = None if t is None else now_ms - t
        return {
            "records": store.records,
            "bytes": store.bytes,
            "oldest_age_ms": oldest,
            "dropped": {"full": store.dropped, "torn": store.torn, "error": self.errors},
        }


def _dated(params: dict, t) -> dict:
    return {k: {"value": v, "time": t} for k, v in params.items()}
