"""AT engine: one reader task, serialized commands, URC dispatch.

Knows nothing about the Air724 or Aliyun. ``ATChannel`` (channel.py, on ``LineReader`` in
reader.py) and the typed errors (errors.py) are re-exported here.
"""

from atmodem.channel import PROBES, ATChannel  # noqa: F401
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
from atmodem.reader import (  # noqa: F401
    EV_CLOSED,
    EV_DATA_DROPPED,
    EV_HANDLER_ERROR,
    EV_OVERFLOW,
    EV_UNSOLICITED,
)
