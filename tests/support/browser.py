"""Headless Chromium for the console's browser tests: where Debian's chromium and
chromedriver are, how the browser is started, and two helpers a person's path needs
(a screenshot, a click that loads another page). The ``browser`` fixture is in
tests/ui/conftest.py."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.support import FAKETIME_VARIABLES, ROOT

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MISSING = not (CHROMEDRIVER and CHROMIUM)
SHOTS = ROOT / os.environ.get("SLM_SCREENSHOTS", "tests/artifacts")


def started_browser() -> Iterator[webdriver.Chrome]:
    """Yield a headless Chromium with its console and network logs kept; quit it after."""
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000",
                "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-default-apps"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # The pages are drawn by the server, whose clock is the one under test; the browser keeps
    # the real clock (CI's second run sets the clock ahead with libfaketime, under which
    # Chromium's renderer stops answering).
    real_clock = {k: v for k, v in os.environ.items() if k not in FAKETIME_VARIABLES}
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, env=real_clock), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def shot(driver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.execute_script("window.scrollTo(0, 0)")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height, 800), 2400))
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
    driver.set_window_size(1280, 1000)


def go(driver, find) -> None:
    """Click what ``find()`` finds, which loads another page, and wait until that page has
    loaded: a click returns before the browser has navigated, and reading the old page then
    is a race. Chromium now and then answers a click on a node it has just laid out again
    (after a screenshot's resize) with "does not belong to the document": the node is found
    again and clicked again, while the old page is still the one shown."""
    old = driver.find_element(By.TAG_NAME, "html")
    for attempt in range(3):
        try:
            find().click()
            break
        except WebDriverException as err:
            if attempt == 2 or "does not belong to the document" not in str(err) and \
                    not isinstance(err, StaleElementReferenceException):
                raise
            if not _current(old):
                break                         # it did navigate: the click went through
    # Asked of a page that is navigating away, Chromium now and then answers "unhandled
    # inspector error" instead of "stale": WebDriverWait asks again on it.
    WebDriverWait(driver, 30, ignored_exceptions=(WebDriverException,)).until(lambda d: not _current(old))
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")


def _current(element) -> bool:
    try:
        element.is_enabled()
        return True
    except StaleElementReferenceException:
        return False

