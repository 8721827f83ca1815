"""Runner for portable tests under the ``micropython`` VM: ``micropython prun.py ptest_module``.

Runs every ``test_*`` function of the module and reports one line per test on stdout, then the
files of the lib/ modules that were loaded (so the host can check the .mpy build was used):

    PTEST PASS <name>
    PTEST FAIL <name> <exception>
    PTEST MODULE <module> <file>
    PTEST DONE
"""

import asyncio
import sys


def run_one(func):
    result = func()
    if hasattr(result, "send"):  # a coroutine: the test is ``async def``
        asyncio.run(result)


def main(module_name):
    module = __import__(module_name)
    names = sorted(name for name in dir(module) if name.startswith("test_"))
    for name in names:
        try:
            run_one(getattr(module, name))
            print("PTEST PASS", name)
        except Exception as exc:  # report and go on with the next test
            print("PTEST FAIL", name, repr(exc).replace("\n", "\\n"))
            sys.print_exception(exc)
    for mod_name, mod in sorted(sys.modules.items()):
        path = getattr(mod, "__file__", None)
        if path:
            print("PTEST MODULE", mod_name, path)
    print("PTEST DONE")


main(sys.argv[1])
