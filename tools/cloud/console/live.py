"""The console's message log: search (``/api/log``) and the live stream (``/api/events``).

Both take the same filters (``Registry.search_messages`` and ``registry.message_matches``): the
stream is a server-sent event ``row`` for every new log row that passes them, sent from the
registry's listener hook in the same loop step as the row's insert.
"""

import asyncio
import json

from aiohttp import web
from aiohttp_sse import sse_response

from tools.cloud import registry as reg

LOG_FILTERS = ("productKey", "deviceName", "type", "status", "messageId", "topic", "text")
LOG_LIMIT_MAX = 1000
STREAM_QUEUE = 1000  # live rows waiting for a slow browser; the oldest go first
PING_S = 15.0  # event-stream keep-alive; a failed ping ends a stream the browser left


def json_response(obj, status=200):
    """JSON with its non-ASCII text as is (names, payloads)."""
    return web.json_response(obj, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


class LogAPI:
    def __init__(self, cloud):
        self.cloud = cloud
        self.streams = set()  # queues of the open event streams

    @property
    def registry(self):
        return self.cloud.registry

    async def log(self, request):
        filters = log_filters(request.query)
        limit = min(int(request.query.get("limit") or 200), LOG_LIMIT_MAX)
        rows = self.registry.search_messages(filters, limit)
        return json_response({"ok": True, "rows": rows})

    async def events(self, request):
        """Server-sent events: every new log row passing the query's filters (event ``row``)."""
        try:
            filters = log_filters(request.query)
        except ValueError as err:
            return json_response({"ok": False, "error": str(err)}, 400)
        queue = asyncio.Queue()

        def listener(row):
            if reg.message_matches(row, filters):
                if queue.qsize() >= STREAM_QUEUE:
                    queue.get_nowait()
                queue.put_nowait(row)

        self.registry.listeners.append(listener)
        self.streams.add(queue)
        try:
            async with sse_response(request, ping_interval=PING_S) as stream:
                # Until the server closes the stream or the browser leaves (a ping fails).
                sender = asyncio.ensure_future(_forward(queue, stream))
                closed = asyncio.ensure_future(stream.wait())
                await asyncio.wait({sender, closed}, return_when=asyncio.FIRST_COMPLETED)
                sender.cancel()
                closed.cancel()
                return stream
        finally:
            self.streams.discard(queue)
            if listener in self.registry.listeners:
                self.registry.listeners.remove(listener)

    def close_streams(self):
        for queue in list(self.streams):
            queue.put_nowait(None)


async def _forward(queue, stream):
    """Send the queued rows as ``row`` events until the ``None`` of ``close_streams``."""
    try:
        while True:
            row = await queue.get()
            if row is None:
                return
            text = json.dumps(row, ensure_ascii=False)
            await stream.send(text, event="row", id=str(row["seq"]))
    except (ConnectionResetError, RuntimeError):
        return  # the browser went away


def log_filters(query) -> dict:
    """The log filters of a query string (``since``/``until`` in ms since the epoch)."""
    filters = {key: query[key] for key in LOG_FILTERS if query.get(key)}
    for key in ("since", "until"):
        if query.get(key):
            filters[key] = int(query[key])
    return filters
