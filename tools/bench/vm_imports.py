"""MicroPython: heap taken by importing the firmware's module sets from ``.mpy`` (``make mpy``).

Each set is imported after the previous ones; the figure is ``gc.mem_alloc()`` after a
collection, before and after. A board with lib/ frozen into its firmware (manifest.py) keeps
this bytecode in flash instead of the heap::

    MICROPYPATH=.frozen:build/lib:build/firmware .venv/bin/micropython tools/bench/vm_imports.py

prints ``bench imports {"asyncio": …, "firmware": …, "online": …, "bring_up": …,
"login": …}`` (bytes).
"""

import gc

SETS = (
    ("asyncio", ("asyncio",)),
    ("firmware", ("logger", "boards", "boards.unix", "app")),
    (
        "online",
        ("aliyun.session", "aliyun.alink", "aliyun.thing", "air724", "air724.mqtt", "atmodem"),
    ),
    ("bring_up", ("air724.module",)),
    (
        "login",
        (
            "aliyun.login",
            "aliyun.sign",
            "aliyun.digest",
            "aliyun.auth",
            "aliyun.dynreg",
            "air724.http",
            "air724.bearer",
        ),
    ),
)


def main():
    sizes = []
    for name, modules in SETS:
        gc.collect()
        before = gc.mem_alloc()
        for module in modules:
            __import__(module)
        gc.collect()
        sizes.append('"%s": %d' % (name, gc.mem_alloc() - before))
    print("bench imports {" + ", ".join(sizes) + "}")


main()
