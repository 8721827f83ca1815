"""Browser tests of the web console: Debian's Chromium driven through Selenium and chromedriver.

Without a Chromium at ``/usr/bin/chromium`` (and its driver) the tests here are not run, and the
run says so in a line of its own, at the top and in the summary; on CI (``CI`` set) a missing
browser fails the run instead (.ci/run installs it).

``CONSOLE_SCREENSHOTS=DIR`` also writes the README's screenshots (``DIR/console-*.png``);
every screenshot always goes to the test's own folder.
"""

import os
from pathlib import Path

import pytest

from .support import CHROMEDRIVER, CHROMIUM, Shots, missing

HERE = Path(__file__).parent


def _ours(item):
    return HERE in Path(str(item.path)).parents


def pytest_report_header(config):
    reason = missing()
    if reason:
        return "browser tests not run: %s (apt-get install chromium chromium-driver)" % reason
    return "browser tests: %s, %s" % (CHROMIUM, CHROMEDRIVER)


def pytest_collection_modifyitems(config, items):
    reason = missing()
    if reason is None or os.environ.get("CI"):
        return  # on CI a missing browser fails in the fixture, loudly
    ours = [item for item in items if _ours(item)]
    if ours:
        config.hook.pytest_deselected(items=ours)
        items[:] = [item for item in items if not _ours(item)]
        config._browser_not_run = (len(ours), reason)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    not_run = getattr(config, "_browser_not_run", None)
    if not_run:
        count, reason = not_run
        terminalreporter.write_line(
            "browser tests not run: %s (%d tests; apt-get install chromium chromium-driver)"
            % (reason, count),
            yellow=True,
            bold=True,
        )


@pytest.fixture
def shots(tmp_path):
    return Shots(tmp_path)
