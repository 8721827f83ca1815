"""Link events: the Air724's URCs that mean the link (or the module) changed state.

``LinkEvents`` registers the URCs on the channel and publishes each event by name to the
subscribed callbacks, ``callback(name, line)``, and into its ring, read by ``await get()``.
Names are the module-level strings below. ``Ring`` also queues the MQTT client's incoming
messages and, as ``aliyun.outbox.Outbox``, the session's QoS1 messages.
"""

from atmodem.waits import Ring

CLOSED = "closed"  # URC CLOSED: the MQTT TCP link closed (§7.5; reliable since V838)
PDP_DEACT = "pdp_deact"  # PDP context deactivated: any spelling holding DEACT (§5.3)
BEARER_DEACT = "bearer_deact"  # +SAPBR 1: DEACT, the HTTP bearer dropped (§5.1)
REBOOT = "reboot"  # RDY: the module (re)started; echo is on again, settings lost (§3.2)
SIM_REMOVED = "sim_removed"  # +CPIN: NOT INSERTED (Air724) / SIM REMOVED (manual) (§3.2)
SIM_READY = "sim_ready"  # +CPIN: READY


class LinkEvents(Ring):
    """Publishes link events from the URCs; ``size`` bounds the ring read by ``get``.

    ``await get(timeout_ms)`` returns the oldest unread event as ``(name, line)``.
    """

    def __init__(self, channel, size: int = 8):
        super().__init__(size)
        self._subs = []
        # +PDP DEACT, +PDP: DEACT, +PDP:DEACT and +CGEV: NW PDN DEACT 1 (§5.3, §12.6);
        # "+SAPBR 1: DEACT" (the query answer is "+SAPBR:"). The boot and network URCs after
        # +CPIN: carry no event but must not land in a bare-line answer such as AT+CGSN's
        # (air724-at.md §3.2 "a robust driver should treat ... as URCs").
        urc = self.unsolicited
        for prefix in (
            b"CLOSED",
            b"+PDP",
            b"+CGEV:",
            b"PDP DEACT",
            b"+SAPBR ",
            b"RDY",
            b"+CPIN:",
            b"^MODE:",
            b"+NITZ:",
            b"SMS READY",
            b"+E_UTRAN",
            b"UART Boot",
            b"+CREG:",
            b"+CEREG:",
            b"+CGREG:",
        ):
            channel.add_urc(prefix, urc)

    def subscribe(self, callback) -> None:
        """``callback(name: str, line: bytes)``, called from the reader task: must not block."""
        if callback not in self._subs:
            self._subs.append(callback)

    def unsubscribe(self, callback) -> None:
        if callback in self._subs:
            self._subs.remove(callback)

    def unsolicited(self, line: "bytes | memoryview") -> None:
        """Classify a URC, or a line no URC took (any PDP-deactivation spelling counts), and
        publish its event. ``line`` may be a memoryview valid during the call only."""
        line = bytes(line)
        if line.startswith(b"CLOSED"):
            name, line = CLOSED, b"CLOSED"
        elif line.startswith(b"RDY"):
            name, line = REBOOT, b"RDY"
        elif b"DEACT" in line:  # "+CGEV: ME PDN ACT 1" is not a loss
            name = BEARER_DEACT if line.startswith(b"+SAPBR ") else PDP_DEACT
        elif not line.startswith(b"+CPIN:"):
            return
        elif b"NOT INSERTED" in line or b"REMOVED" in line:
            name = SIM_REMOVED
        elif b"READY" in line:
            name = SIM_READY
        else:
            return
        self.put((name, line))
        for callback in self._subs:
            callback(name, line)
