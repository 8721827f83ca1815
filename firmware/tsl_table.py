"""The thing model's checks, generated from tsl.json by ``python -m tools.tsl_table``.

Do not edit: export the TSL again and regenerate (README, example application)."""

P = {
    "Uptime": ("i", 0, 2147483647),
    "FreeHeap": ("i", 0, 2147483647),
    "DemoValue": ("i", 0, 100),
    "RSSI": ("i", -113, -51),
    "ReportInterval": ("i", 5, 3600),
    "LEDSwitch": ("b",),
    "DemoShape": ("e", (0, 1, 2)),
    "DemoThreshold": ("f", 0.0, 100.0),
    "Label": ("t", 16),
    "QuietHours": ("s", {"Start": ("i", 0, 23), "End": ("i", 0, 23)}),
    "LastSet": ("d",),
    "DemoHistory": ("a", 5, ("i", 0, 100)),
}
RO = (
    "Uptime",
    "FreeHeap",
    "DemoValue",
    "RSSI",
    "LastSet",
    "DemoHistory",
)
S = {
    "Blink": (False, {"Times": ("i", 1, 10)}, {}),
    "Status": (
        True,
        {"WaitMs": ("i", 0, 10000)},
        {"Uptime": ("i", 0, 2147483647), "Reports": ("i", 0, 2147483647)},
    ),
}
E = {
    "Threshold": {"Value": ("i", 0, 100)},
}
