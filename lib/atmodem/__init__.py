"""AT engine: one reader task, serialized commands, URC dispatch.

Knows nothing about the Air724 or Aliyun. ``ATChannel`` (channel.py) and the typed errors
(errors.py) are re-exported here.
"""

from atmodem.channel import ATChannel  # noqa: F401
from atmodem.errors import (  # noqa: F401
    AbortError,
    ArgumentError,
    ATError,
    ATTimeoutError,
    ClosedError,
    CMEError,
    CommandError,
    DataError,
    ResponseError,
)

# Events passed to ``ATChannel.on_event(kind, data)`` (channel.py sends these values).
EV_OVERFLOW = 1  # a line longer than the buffer was dropped (data: None)
EV_DATA_DROPPED = 2  # a counted payload over data_max was skipped (data: its length)
EV_HANDLER_ERROR = 3  # a URC handler raised (data: the exception)
EV_UNSOLICITED = 4  # a line nobody took (data: memoryview, valid during the call)
EV_CLOSED = 5  # the stream ended or failed; the channel is closed (data: None)
