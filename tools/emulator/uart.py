"""The emulated UART: byte pacing at the line rate, output fan-out and stalls.

With ``--baud N`` every byte takes 10/N s in each direction (8N1: start, 8 data, stop bits), so
the throughput is bounded by N/10 bytes per second as on the wire. Bytes are released in small
slices against an absolute schedule, so timer jitter does not accumulate.
"""

import asyncio
import time

_IDLE = 0.02  # s behind schedule that counts as an idle line rather than a late wake-up


class Pacer:
    """Releases bytes no faster than the line rate."""

    def __init__(self, baud):
        self.baud = baud or 0
        self._next = 0.0

    @property
    def slice_size(self):
        # about 5 ms of line time per slice; at least one byte
        return max(1, self.baud // 2000) if self.baud else 1 << 16

    async def wait(self, count):
        """Sleep until ``count`` more bytes have had time to cross the line."""
        if not self.baud:
            return
        now = time.monotonic()
        if now - self._next > _IDLE:
            self._next = now  # the line was idle: start a new schedule
        # otherwise keep the absolute schedule: a late wake-up is caught up, not lost
        self._next += count * 10.0 / self.baud
        delay = self._next - now
        if delay > 0:
            await asyncio.sleep(delay)


class Uart:
    """Joins the host endpoints (pty, TCP clients) to the modem.

    ``send`` queues module→host bytes; ``receive`` queues host→module bytes, which reach
    ``on_receive`` (the modem) paced. Output is held while the module stalls.
    """

    def __init__(self, baud=None, transcript=None):
        self.transcript = transcript
        self.on_receive = None
        self.on_attach = None  # called when a host endpoint connects
        self._endpoints = []
        self._tx = bytearray()
        self._rx = bytearray()
        self._tx_ready = asyncio.Event()
        self._rx_ready = asyncio.Event()
        self._tx_pacer = Pacer(baud)
        self._rx_pacer = Pacer(baud)
        self._hold_until = 0.0
        self.tx_bytes = 0
        self.rx_bytes = 0
        self._tasks = []

    def start(self):
        self._tasks = [
            asyncio.ensure_future(self._tx_loop()),
            asyncio.ensure_future(self._rx_loop()),
        ]

    async def stop(self):
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def attach(self, endpoint):
        """Add an endpoint: an object with ``write(bytes)``."""
        self._endpoints.append(endpoint)
        if self.on_attach:
            self.on_attach()

    def detach(self, endpoint):
        if endpoint in self._endpoints:
            self._endpoints.remove(endpoint)

    def send(self, data):
        """Module → host."""
        if data:
            self._tx += data
            self._tx_ready.set()

    def receive(self, data):
        """Host → module (called by endpoints)."""
        if data:
            self._rx += data
            self._rx_ready.set()

    def hold(self, seconds):
        """Send nothing for ``seconds`` (a stall); queued output follows afterwards."""
        self._hold_until = max(self._hold_until, time.monotonic() + seconds)
        self._tx_ready.set()

    def discard_input(self):
        """Drop host bytes not yet delivered (the module lost them, e.g. during a reboot)."""
        self._rx.clear()

    async def _tx_loop(self):
        while True:
            await self._tx_ready.wait()
            self._tx_ready.clear()
            while self._tx:
                wait = self._hold_until - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                chunk = bytes(self._tx[: self._tx_pacer.slice_size])
                del self._tx[: len(chunk)]
                await self._tx_pacer.wait(len(chunk))
                self.tx_bytes += len(chunk)
                if self.transcript:
                    self.transcript.module(chunk)
                for endpoint in list(self._endpoints):
                    endpoint.write(chunk)

    async def _rx_loop(self):
        while True:
            await self._rx_ready.wait()
            self._rx_ready.clear()
            while self._rx:
                chunk = bytes(self._rx[: self._rx_pacer.slice_size])
                del self._rx[: len(chunk)]
                await self._rx_pacer.wait(len(chunk))
                self.rx_bytes += len(chunk)
                if self.transcript:
                    self.transcript.host(chunk)
                if self.on_receive:
                    self.on_receive(chunk)
