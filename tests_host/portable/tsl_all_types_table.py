"""The thing model's checks, generated from tsl_all_types.json by ``python -m tools.tsl_table``.

Do not edit: export the TSL again and regenerate (README, example application)."""

P = {
    "Count": ("i", 0, 100),
    "Temp": ("f", -40.0, 120.0),
    "Ratio": ("f", 0.0, 1.0),
    "Mode": ("e", (0, 1, 2)),
    "Power": ("b",),
    "Label": ("t", 8),
    "Stamp": ("d",),
    "Point": ("s", {"x": ("i", -10, 10), "name": ("t", 4)}),
    "Levels": ("a", 3, ("i", 0, 9)),
    "Track": ("a", 2, ("s", {"t": ("f", 0.0, 100.0)})),
    "Serial": ("t", 16),
}
RO = ("Serial",)
S = {
    "Calibrate": (
        False,
        {"Offset": ("f", -40.0, 120.0), "Mode": ("e", (0, 1, 2))},
        {"Applied": ("b",)},
    ),
    "Query": (True, {"Delay": ("i", 0, 20000)}, {"Count": ("i", 0, 100)}),
}
E = {
    "Overheat": {"Temp": ("f", -40.0, 120.0), "Level": ("e", (0, 1, 2))},
}
