"""The monitoring page in a real browser, inside a running Airflow UI.

A registry with versions and a drift history (built like in ``test_plugin_api``), an
``airflow api-server`` of its own (temporary ``AIRFLOW_HOME``, migrated SQLite, SimpleAuthManager
users from ``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS`` with their passwords in the generated
password file, ``plugins/`` as plugins folder, a free port), and headless Chromium from Debian's
``chromium`` + ``chromium-driver`` driven by Selenium: log in by typing into the login form,
open "ML monitoring" from the Airflow navigation, check the champion and the drift plots, save
screenshots under ``test-output/plugin_browser/``. The api-server and the browser are always
stopped, and the test verifies that none of their processes is left.

``UPDATE_DOCS_SCREENSHOT=1`` (or a missing picture) also copies the Models and Drift history
screenshots to ``docs/img/monitoring.png`` and ``docs/img/monitoring-drift.png``
(docs/how-to/ui.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_plugin_api import RETRAIN_DAY, build_lifecycle

from conftest import PROJECT_ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.airflow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
OUTPUT = PROJECT_ROOT / "test-output" / "plugin_browser"
DOCS_SCREENSHOT = PROJECT_ROOT / "docs" / "img" / "monitoring.png"
DOCS_DRIFT_SCREENSHOT = PROJECT_ROOT / "docs" / "img" / "monitoring-drift.png"
MAX_DOCS_BYTES = 300_000
WINDOW = (1400, 900)
WAIT = 45  # seconds for one UI step (a loaded 2-core machine renders slowly)
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", f"--window-size={WINDOW[0]},{WINDOW[1]}",
)


# --------------------------------------------------------------------------- processes


def _proc_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, command line) of every live process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        table[int(entry)] = (int(fields[1]), fields[0].decode(), cmdline)
    return table


def descendants(pid: int) -> set[int]:
    table = _proc_table()
    found, frontier = set(), {pid}
    while frontier:
        children = {p for p, (parent, _, _) in table.items() if parent in frontier} - found
        found |= children
        frontier = children
    return found


def alive(pids: set[int]) -> set[int]:
    table = _proc_table()
    return {p for p in pids if p in table and table[p][1] != "Z"}


def browser_pids(profile: Path) -> set[int]:
    """Live processes started for this browser profile (the browser and its helpers)."""
    return {p for p, (_, state, cmd) in _proc_table().items()
            if state != "Z" and str(profile) in cmd}


def stop_pids(pids: set[int], timeout: float = 10) -> set[int]:
    """SIGTERM, wait, SIGKILL these PIDs (only these); return the ones still alive."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in alive(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while alive(pids) and time.monotonic() < deadline:
            time.sleep(0.2)
    return alive(pids)


# --------------------------------------------------------------------------- fixtures


def start_chromium(profile: Path, log: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not CHROMEDRIVER.is_file():
        raise RuntimeError(f"{CHROMEDRIVER} not found: apt-get install -y chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(log))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(WAIT)
    return driver


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A running api-server with the plugin, and a browser; both stopped and verified after."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: headless Chromium comes from Debian's packages "
                    "(apt-get install -y chromium chromium-driver)")
    from ml_lifecycle_airflow.embedded import EmbeddedAirflow

    base = tmp_path_factory.mktemp("plugin_browser")
    shutil.rmtree(OUTPUT, ignore_errors=True)
    OUTPUT.mkdir(parents=True)
    lifecycle = build_lifecycle(base / "lifecycle")
    users = {"admin": secrets.token_urlsafe(12), "viewer": secrets.token_urlsafe(12)}
    airflow = EmbeddedAirflow(PROJECT_ROOT, base / "airflow_home", extra_env={
        "ML_LIFECYCLE_CONFIG": str(lifecycle["config"]),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
    })
    airflow.home.mkdir(parents=True)
    airflow.password_file.write_text(json.dumps(users))  # SimpleAuthManager reads it
    profile = base / "chromium-profile"
    driver = None
    browser_tree: set[int] = set()
    try:
        airflow.migrate()
        airflow.start(components=("api-server",), ready_timeout=120)
        driver = start_chromium(profile, OUTPUT / "chromedriver.log")
        browser_tree = {driver.service.process.pid} | descendants(driver.service.process.pid)
        login(driver, airflow.base_url, "viewer", users["viewer"])
        yield {"driver": driver, "airflow": airflow, "lifecycle": lifecycle}
    finally:
        try:
            if driver is not None:
                browser_tree |= descendants(driver.service.process.pid)
                driver.quit()
        finally:
            airflow.stop()  # raises if an Airflow process survives SIGKILL
            left = stop_pids(alive(browser_tree) | browser_pids(profile))
            log = airflow.home / "logs" / "api-server.out"
            if log.is_file():
                shutil.copy(log, OUTPUT / "api-server.log")
        assert not left, f"browser processes left after quit: {sorted(left)}"
        assert not browser_pids(profile) and not airflow.leftover_pids()


# --------------------------------------------------------------------------- helpers


def wait_for(driver: Any, condition: Any, what: str, timeout: float = WAIT) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException:
        snap(driver, "timeout")
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; page "
                             f"{driver.current_url} saved in {OUTPUT}") from None


def snap(driver: Any, name: str) -> Path:
    """Save a screenshot (and the page source) under the test's output folder."""
    path = OUTPUT / f"{name}.png"
    driver.save_screenshot(str(path))
    with contextlib.suppress(Exception):
        (OUTPUT / f"{name}.html").write_text(driver.page_source, encoding="utf-8")
    return path


def update_docs(shot: Path, target: Path) -> None:
    """Copy a screenshot into docs/img/ (asked for, or missing): docs/how-to/ui.md shows them."""
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") != "1" and target.exists():
        return
    size = shot.stat().st_size
    assert size < MAX_DOCS_BYTES, f"{shot} is {size} bytes; keep docs pictures small"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, target)


def login(driver: Any, base_url: str, username: str, password: str) -> None:
    """Log in through Airflow's login form, typing into the fields as a person would."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(base_url + "/")
    user = wait_for(driver, ec.element_to_be_clickable((By.NAME, "username")), "the login form")
    assert "/auth/login" in driver.current_url, driver.current_url
    user.send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(driver, lambda d: "/auth/login" not in d.current_url, "the login to finish")


def open_monitoring(driver: Any, base_url: str) -> None:
    """From the Airflow home page, click "ML monitoring" in the navigation; enter its frame."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver.switch_to.default_content()
    driver.get(base_url + "/")
    entry = wait_for(driver, ec.element_to_be_clickable(
        (By.CSS_SELECTOR, 'a[aria-label="ML monitoring"]')), "the navigation entry")
    entry.click()
    wait_for(driver, lambda d: "/plugin/ml-monitoring" in d.current_url, "the plugin route")
    frame = wait_for(driver, ec.presence_of_element_located(
        (By.CSS_SELECTOR, 'iframe[title="ML monitoring"]')), "the plugin frame")
    driver.switch_to.frame(frame)
    wait_for(driver, ec.presence_of_element_located((By.CSS_SELECTOR, "main h1")),
             "the model list")
    assert driver.find_element(By.CSS_SELECTOR, "main h1").text == "Models"
    row = driver.find_element(By.CSS_SELECTOR, 'tr[data-model="late_delivery"]')
    assert "v2" in row.text  # the champion, on the list of every model
    row.find_element(By.LINK_TEXT, "late_delivery").click()
    wait_for(driver, ec.presence_of_element_located((By.ID, "champion")),
             "the model's versions page")


# --------------------------------------------------------------------------- tests


def test_the_models_page_shows_the_champion(ui: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    driver = ui["driver"]
    open_monitoring(driver, ui["airflow"].base_url)
    assert driver.find_element(By.CSS_SELECTOR, "main h1").text == "late_delivery: versions"
    champion = driver.find_element(By.ID, "champion")
    assert champion.is_displayed()
    assert champion.get_attribute("data-version") == str(ui["lifecycle"]["champion"])
    assert "v2" in champion.text and "champion" in champion.text
    rows = driver.find_elements(By.CSS_SELECTOR, "#versions tr[data-version]")
    assert [r.get_attribute("data-version") for r in rows] == ["3", "2", "1"]
    assert "rejected by the gate" in rows[0].text
    chart = driver.find_element(By.CSS_SELECTOR, 'svg[data-plot="version-metrics"]')
    assert chart.is_displayed() and chart.size["width"] > 300
    run = driver.find_element(By.CSS_SELECTOR, '#versions tr[data-version="2"] a.dag-run')
    day = ui["lifecycle"]["days"][RETRAIN_DAY]
    assert run.get_attribute("href").endswith(
        f"/dags/late_delivery__training/runs/drift_retrain__{day}")
    update_docs(snap(driver, "models"), DOCS_SCREENSHOT)


def test_the_drift_history_shows_the_effect_size_plots(ui: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver = ui["driver"]
    open_monitoring(driver, ui["airflow"].base_url)
    driver.find_element(By.LINK_TEXT, "Drift history").click()
    wait_for(driver, ec.presence_of_element_located(
        (By.CSS_SELECTOR, 'svg[data-plot="effect-size"]')), "the drift plots")
    plots = driver.find_elements(By.CSS_SELECTOR, 'svg[data-plot="effect-size"]')
    assert len(plots) >= 2
    assert plots[0].is_displayed() and plots[0].size["height"] > 100
    assert plots[0].find_elements(By.CSS_SELECTOR, '[data-role="threshold"]')
    assert driver.find_element(By.CSS_SELECTOR, 'svg[data-plot="performance"]').is_displayed()
    days = driver.find_elements(By.CSS_SELECTOR, "#drift-days tr[data-day]")
    assert len(days) == len(ui["lifecycle"]["days"])
    assert "drift" in driver.find_element(By.TAG_NAME, "main").text
    update_docs(snap(driver, "drift"), DOCS_DRIFT_SCREENSHOT)
    # the day's HTML report, served by the app, inside the same frame
    days[0].find_element(By.LINK_TEXT, "report").click()
    wait_for(driver, ec.presence_of_element_located((By.TAG_NAME, "h1")), "the day report")
    assert driver.find_element(By.TAG_NAME, "h1").text.startswith("Drift report")
    snap(driver, "report")


def test_a_version_page_shows_its_plots(ui: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver = ui["driver"]
    open_monitoring(driver, ui["airflow"].base_url)
    driver.find_element(By.CSS_SELECTOR, "#champion a.big").click()
    wait_for(driver, ec.presence_of_element_located(
        (By.CSS_SELECTOR, 'svg[data-plot="validation-curve"]')), "the version page")
    for kind in ("validation-curve", "importances", "confusion-matrix"):
        assert driver.find_element(By.CSS_SELECTOR, f'svg[data-plot="{kind}"]').is_displayed()
    snap(driver, "version")
    # the UI mirrors the frame's page in its own URL: that URL is a deep link to the page
    driver.switch_to.default_content()
    deep_link = driver.current_url
    assert deep_link.endswith(
        "/plugin/ml-monitoring/ml-monitoring/models/late_delivery/versions/2"), deep_link
    driver.get(ui["airflow"].base_url + "/")
    driver.get(deep_link)
    frame = wait_for(driver, ec.presence_of_element_located(
        (By.CSS_SELECTOR, 'iframe[title="ML monitoring"]')), "the plugin frame")
    driver.switch_to.frame(frame)
    wait_for(driver, ec.presence_of_element_located(
        (By.CSS_SELECTOR, 'svg[data-plot="validation-curve"]')), "the deep-linked version page")
