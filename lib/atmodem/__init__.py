"""AT engine: one reader task, serialized commands, URC dispatch.

Knows nothing about the Air724 or Aliyun. ``ATChannel`` is in ``atmodem.channel``, the typed
errors in ``atmodem.errors``; both are re-exported here.
"""

from atmodem.channel import (  # noqa: F401
    EV_CLOSED,
    EV_DATA_DROPPED,
    EV_HANDLER_ERROR,
    EV_OVERFLOW,
    EV_UNSOLICITED,
    PROBES,
    ATChannel,
)
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
