"""Property posts kept on flash (``aliyun.store``) until the cloud has them, with their time.

A record is the JSON list ``[id, t, boot, ticks, params]``: the Alink message id given when
the reading was taken, its epoch time in ms (0 while the clock is unknown), the store's
``boot`` number and the ``ticks_ms`` value at that moment (to date it once NTP answers in the
same boot). ``next`` turns the oldest records into one message:

- a normal ``thing.event.property.post`` of one reading, each property as
  ``{"value": v, "time": t}`` (plain values when its time cannot be known: measured in an
  earlier boot that never had the clock);
- readings older than ``HISTORY_AFTER_MS`` (Aliyun takes a device time within 24 h on a normal
  post) go batched into ``thing.event.property.history.post`` (reference §4.3), up to
  ``_BATCH_VALUES`` values and ``_BATCH_BYTES`` of payload.

``next`` needs the clock (epoch ms, ticks at that instant) to date and age the readings; the
caller acknowledges a message it published with ``store.ack(token)``.
"""

import json

from micropython import const

from aliyun.alink import encode_request
from aliyun.store import Store

HISTORY_AFTER_MS = const(23 * 3600 * 1000)  # an hour inside the 24 h rule: clock skew
_WINDOW = const(16)  # records read ahead (RAM)
_BATCH_VALUES = const(200)  # values of one history post (the platform's limit of a post)
_BATCH_BYTES = const(3800)  # payload of one history post (AT+MPUBEX takes 4100 bytes)
_HISTORY = "thing.event.property.history.post"


class Backlog:
    def __init__(self, root: str, max_bytes: int, product_key: str, device_name: str, ticks_diff):
        self.store = Store(root, max_bytes)
        self._ticks_diff = ticks_diff
        self.identity = {"productKey": product_key, "deviceName": device_name}
        self.errors = 0  # readings the filesystem refused (not kept)

    def add(self, msg_id: str, params: dict, epoch_ms, ticks) -> bool:
        """Keep a reading durably; False if older unsent readings were dropped for room.
        ValueError if it could not be sent in one message; OSError (counted in ``errors``)
        when the filesystem fails."""
        if len(json.dumps(_dated(params, 1 << 42))) > _BATCH_BYTES - 200:
            raise ValueError("reading too large for one message")
        record = json.dumps([msg_id, epoch_ms or 0, self.store.boot, ticks, params])
        try:
            return self.store.append(record.encode())
        except OSError:
            self.errors += 1
            raise

    def _time(self, record, clock):
        """Epoch ms of a record, or None when it cannot be known."""
        if record[1]:
            return record[1]
        if clock is not None and record[2] == self.store.boot:
            return clock[0] + self._ticks_diff(record[3], clock[1])
        return None

    def next(self, clock, now_ms, topic: str):
        """``(topic, payload, token)`` for the oldest readings, or None when there are none or
        they wait for the clock (``clock`` None); ``now_ms``: epoch ms now. Once the message
        is published, ``store.ack(token)``."""
        raw = self.store.peek(_WINDOW)
        if not raw:
            return None
        first = json.loads(raw[0])
        t = self._time(first, clock)
        if clock is None and (t is not None or first[2] == self.store.boot):
            return None  # its time is or will be known: wait for NTP to date it
        if t is None or now_ms - t < HISTORY_AFTER_MS:
            params = first[4]
            if t is not None:
                params = _dated(params, t)
            payload = encode_request(first[0], "thing.event.property.post", params)
            return topic, payload, self.store.token(1)
        return self._history(raw, first, clock, now_ms, topic)

    def _history(self, raw, first, clock, now_ms, topic):
        values = []
        count = size = 0
        for item in raw:
            record = first if count == 0 else json.loads(item)
            t = self._time(record, clock)
            if t is None or now_ms - t < HISTORY_AFTER_MS:
                break
            entry = _dated(record[4], t)
            size += len(json.dumps(entry)) + 2
            if count and (len(values) + len(entry) > _BATCH_VALUES or size > _BATCH_BYTES):
                break
            values.append(entry)
            count += 1
        params = [{"identity": self.identity, "properties": values}]
        history_topic = topic[: -len("post")] + "history/post"
        return history_topic, encode_request(first[0], _HISTORY, params), self.store.token(count)

    def state(self, clock, now_ms) -> dict:
        """For ``stats``: records, bytes, age of the oldest (ms, None if unknown), drops."""
        store = self.store
        oldest = None
        raw = store.peek(1)
        if raw and now_ms is not None:
            t = self._time(json.loads(raw[0]), clock)
            oldest = None if t is None else now_ms - t
        return {
            "records": store.records,
            "bytes": store.bytes,
            "oldest_age_ms": oldest,
            "dropped": {"full": store.dropped, "torn": store.torn, "error": self.errors},
        }


def _dated(params: dict, t) -> dict:
    return {k: {"value": v, "time": t} for k, v in params.items()}
