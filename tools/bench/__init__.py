"""``make bench``: performance figures of the firmware, measured, never asserted.

Runs on the unix-port ``micropython`` (the VM of the tests) against the emulated Air724UG
(``air724-sim``) and the local cloud (``aliyun-local``), all on 127.0.0.1, prints a table and
writes ``build/bench.json``. ``python -m tools.bench [FIGURE …]`` runs some of them:

1. ``heap``: the smallest ``-X heapsize`` at which the end-to-end scenario passes (online, 100
   QoS1 publishes, 20 downlinks echoed back, one ``drop_mqtt`` and recovery), by bisection,
   for each login (direct signing, HTTPS device auth, dynamic registration); the peak
   ``gc.mem_alloc()`` during the scenario at 128k and the peak live heap of each login.
2. ``footprint``: ``.mpy`` bytes of lib/ and firmware/.
3. ``throughput``: publishes per second through lib/air724 at 115200 baud against the UART
   line-rate bound for the same bytes (QoS0 with no module latency; QoS1 with the realistic
   PUBACK latency).
4. ``latency``: downlink, cloud publish -> application callback, median and p99, against the
   emulator's own forwarding time.
5. ``idle``: CPU seconds per minute of the firmware process while online and idle.
6. ``boot``: power-on -> online in the realistic profile against the seed's send-sleep-read
   procedure (tools/bench/seed_baseline.py) on the same emulator.
7. ``atmodem``: bytes allocated per URC and per command round trip (tools/bench_atmodem.py).

The parts: ``core`` (pure: bisection, bounds, statistics, the table), ``runs`` (the processes
and waits), ``vm_firmware`` and ``vm_throughput`` (MicroPython drivers), ``seed_baseline``.
"""

FIGURES = {
    "heap": (1, "Heap"),
    "footprint": (2, "Footprint"),
    "throughput": (3, "Throughput"),
    "latency": (4, "Downlink latency"),
    "idle": (5, "Idle cost"),
    "boot": (6, "Boot to online"),
    "atmodem": (7, "AT engine cost"),
}
