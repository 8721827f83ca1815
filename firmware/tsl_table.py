"""The thing model's checks, generated from tsl.json by ``python -m tools.tsl_table``.

Do not edit: export the TSL again and regenerate (README, example application)."""

P = {
    "Uptime": ("i", 0, 2147483647),
    "FreeHeap": ("i", 0, 2147483647),
    "DemoValue": ("i", 0, 100),
    "RSSI": ("i", -113, -51),
    "ReportInterval": ("i", 1, 86400),
    "LEDSwitch": ("b",),
}
RO = (
    "Uptime",
    "FreeHeap",
    "DemoValue",
    "RSSI",
)
S = {
    "Blink": (False, {"Times": ("i", 1, 10)}, {}),
    "Status": (
        True,
        {"WaitMs": ("i", 0, 10000)},
        {"Uptime": ("i", 0, 2147483647), "Reports": ("i", 0, 2147483647)},
    ),
}
E = {}
