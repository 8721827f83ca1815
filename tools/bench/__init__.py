"""``make bench``: performance figures of the firmware, measured, never asserted.

Runs on the unix-port ``micropython`` (the VM of the tests) against the emulated Air724UG
(``air724-sim``) and the local cloud (``aliyun-local``), all on 127.0.0.1, prints a table and
writes ``build/bench.json``; ``python -m tools.bench.readme`` puts its table into README.md.
``python -m tools.bench [FIGURE …]`` runs some of them: ``FIGURES`` below is the one list of
the figures, each measured by ``measure(ctx, options)`` in its own module of this package
(``fig_<name>.py``).

Every row has its bound or aim and the ratio to it. Against a physical bound (the UART's line
rate) the ratio is the share of the bound reached: above 1 is impossible, and the figure
fails instead of printing it (``core.bound_row``). Against an aim or a comparison the ratio
is value / aim.

The other parts: ``core`` (pure: bisection, bounds, statistics, the table), ``context``
(the processes and waits), ``scenario`` (the end-to-end run of figure 1), the MicroPython
drivers ``vm_firmware``, ``vm_imports``, ``vm_throughput``, ``vm_atmodem`` and ``vm_costs``,
``seed_baseline`` (figure 6's baseline) and ``pacing`` (the emulator's UART pacing alone).
"""


class Figure:
    """One figure: its number and title in the table, the module measuring it
    (``fig_<module>``), its stage (1 first; 2 the heap, which picks the heap of the later
    runs; 3 after it; 4 side by side, as these mostly wait), what it measures, and the command
    that reproduces it (None: ``PY NAME``)."""

    def __init__(self, number, title, module, stage, description, command=None):
        self.number = number
        self.title = title
        self.module = "fig_" + module
        self.stage = stage
        self.description = description
        self.command = command


PY = ".venv/bin/python -m tools.bench"

FIGURES = {
    "heap": Figure(
        1,
        "Heap",
        "heap",
        2,
        "the smallest -X heapsize at which the end-to-end scenario passes (online, 40 QoS1 "
        "publishes, 20 downlinks echoed, one drop_mqtt and recovery), by bisection, for each "
        "login; the peak gc.mem_alloc() and the peak live heap of each login",
        "%s heap (one size: %s scenario --heapsize 128k --auth http)" % (PY, PY),
    ),
    "footprint": Figure(
        2, "Footprint", "footprint", 1, ".mpy bytes of lib/ and firmware/; heap taken by imports"
    ),
    "throughput": Figure(
        3,
        "Throughput",
        "throughput",
        1,
        "publishes/s through lib/air724 at 115200 baud against the UART line-rate bound",
    ),
    "latency": Figure(
        4,
        "Downlink latency",
        "latency",
        3,
        "cloud publish -> application callback against the emulator's own forwarding",
    ),
    "idle": Figure(5, "Idle cost", "idle", 4, "CPU of the firmware process, online and idle"),
    "boot": Figure(
        6,
        "Boot to online",
        "boot",
        4,
        "power-on -> online against the seed's procedure; attached -> online against the "
        "module's own latencies in the profile",
    ),
    "atmodem": Figure(
        7,
        "AT engine cost",
        "atmodem",
        1,
        "bytes allocated per URC line and per command round trip (lib/atmodem alone)",
        "MICROPYPATH=.frozen:lib:tests_host/portable .venv/bin/micropython "
        "tools/bench/vm_atmodem.py",
    ),
    "costs": Figure(
        8,
        "Downlink and publish cost",
        "costs",
        1,
        "bytes and time per +MSUB downlink (alone; one byte per read) and per QoS0 publish "
        "at 16 B..4 KB, and per downlink at 1, 10 and 50 subscriptions",
    ),
    "ota": Figure(
        9,
        "Update over the air",
        "ota",
        3,
        "one update 1.0.0 -> 1.1.0 at 115200 baud: bytes over the air and on the UART against "
        "the package, download time against the UART bound, live heap during the download",
    ),
}
