"""The emulated UART: byte pacing at the line rate, output fan-out and stalls.

With ``--baud N`` each direction is a wire: a byte takes 10/N s (8N1: start, 8 data, stop
bits), it starts no earlier than it was offered and no earlier than the byte before it ended,
and it is handed on only once its last bit arrived. An idle line gives no credit to the next
transfer, so no exchange can beat the line rate. Bytes are handed on in slices of about 5 ms
of line time, each at the end time of its last byte, whatever the timer's jitter.
"""

import asyncio
import time
from collections import deque


class Line:
    """One direction of the wire: ``offer`` queues bytes with the time they were offered,
    ``take`` returns the next slice and the time its last byte has crossed the line."""

    def __init__(self, baud):
        self.baud = baud or 0
        self.byte_s = 10.0 / baud if baud else 0.0
        self._queue = deque()  # [offered at, bytes], oldest first
        self._free_at = 0.0  # when the last byte taken has crossed
        self.pending = 0

    @property
    def slice_size(self):
        # about 5 ms of line time per slice; at least one byte
        return max(1, self.baud // 2000) if self.baud else 1 << 16

    def offer(self, data, now):
        if data:
            self._queue.append([now, bytes(data)])
            self.pending += len(data)

    def clear(self):
        self._queue.clear()
        self.pending = 0

    def idle_until(self, when):
        """Nothing crosses before ``when`` (a stall of the sender)."""
        self._free_at = max(self._free_at, when)

    def take(self):
        """``(bytes, due)``: up to ``slice_size`` bytes and the time the last one has crossed
        (each byte from max(its offer, the previous byte's end)); None when nothing waits."""
        if not self._queue:
            return None
        out = bytearray()
        end = self._free_at
        room = self.slice_size
        while self._queue and room:
            entry = self._queue[0]
            offered, data = entry
            part = data[:room]
            end = max(end, offered) + len(part) * self.byte_s
            out += part
            room -= len(part)
            if len(part) == len(data):
                self._queue.popleft()
            else:
                entry[1] = data[len(part) :]
        self._free_at = end
        self.pending -= len(out)
        return bytes(out), end


async def until(due):
    """Sleep until ``time.monotonic()`` reaches ``due`` (never wakes before it)."""
    while True:
        left = due - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(left)


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
        self._tx = Line(baud)  # module -> host
        self._rx = Line(baud)  # host -> module
        self._tx_ready = asyncio.Event()
        self._rx_ready = asyncio.Event()
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
            self._tx.offer(data, time.monotonic())
            self._tx_ready.set()

    def receive(self, data):
        """Host → module (called by endpoints)."""
        if data:
            self._rx.offer(data, time.monotonic())
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
            while self._tx.pending:
                if self._hold_until > time.monotonic():
                    await until(self._hold_until)
                    self._tx.idle_until(self._hold_until)  # the stall: nothing crossed
                    continue
                chunk, due = self._tx.take()
                await until(due)
                self.tx_bytes += len(chunk)
                if self.transcript:
                    self.transcript.module(chunk)
                for endpoint in list(self._endpoints):
                    endpoint.write(chunk)

    async def _rx_loop(self):
        while True:
            await self._rx_ready.wait()
            self._rx_ready.clear()
            while self._rx.pending:
                chunk, due = self._rx.take()
                await until(due)
                self.rx_bytes += len(chunk)
                if self.transcript:
                    self.transcript.host(chunk)
                if self.on_receive:
                    self.on_receive(chunk)
