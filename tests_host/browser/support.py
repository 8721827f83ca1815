"""Chromium for the browser tests: where Debian installs it, a headless driver, screenshots."""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def missing():
    """Why the browser tests cannot run here, or None."""
    for path, what in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")):
        if not path.exists():
            return "no %s at %s" % (what, path)
    return None


def new_driver(download_dir=None):
    """A headless Chromium of Debian's packages (Selenium's own driver download is not used)."""
    reason = missing()
    if reason:
        pytest.fail("browser tests need Chromium: %s" % reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1200,820",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    return driver


class Shots:
    """Screenshots into the test's folder, and the README's with CONSOLE_SCREENSHOTS=DIR."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.readme = os.environ.get("CONSOLE_SCREENSHOTS")

    def take(self, driver, name, readme=False):
        path = self.folder / ("console-%s.png" % name)
        assert driver.save_screenshot(str(path)), "screenshot %s failed" % name
        if readme and self.readme:
            Path(self.readme).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(self.readme) / path.name)
        return path
