"""Fixtures for the real-browser tests: the service in a subprocess, headless Chromium.

The service runs in its own process as ``twistd -n meetplatform``, exactly as an operator
starts it (Selenium calls block; the test's reactor must not serve).

Run them inside a network namespace with only loopback, so that WebRTC media never leaves
the machine::

    unshare --net sh -c 'ip link set lo up && python -m pytest -m browser tests/browser'

Every wait is a WebDriverWait on a condition, never a fixed sleep.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from lxml import etree
from selenium.common.exceptions import WebDriverException

CHROMIUM = os.environ.get("MEETPLATFORM_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MEETPLATFORM_CHROMEDRIVER", "/usr/bin/chromedriver")
HERE = Path(__file__).parent
REPO = HERE.parent.parent

#: Generous: two Chromiums share two cores with the rest of the suite.
WAIT = 60

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--window-size=1280,720",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-dev-shm-usage",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip browser tests (clearly) where Chromium or chromedriver is missing."""
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    skip = pytest.mark.skip(reason=f"needs {CHROMIUM} and {CHROMEDRIVER}")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


# --- the BigBlueButton API, called as an integration would -------------------------------


@dataclass
class Bbb:
    """A minimal BBB API client: real checksums (sha1 of call + query + secret)."""

    base_url: str
    secret: str

    def url(self, call: str, **params: Any) -> str:
        query = urlencode({k: str(v) for k, v in params.items()})
        checksum = hashlib.sha1((call + query + self.secret).encode()).hexdigest()
        sep = "&" if query else ""
        return f"{self.base_url}/bigbluebutton/api/{call}?{query}{sep}checksum={checksum}"

    def call(self, call: str, **params: Any) -> Any:
        with urllib.request.urlopen(self.url(call, **params), timeout=30) as response:
            body = response.read()
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        root = etree.fromstring(body, parser)
        assert root.findtext("returncode") == "SUCCESS", body.decode()
        return root

    def create(self, meeting_id: str, name: str, **params: Any) -> Any:
        return self.call("create", meetingID=meeting_id, name=name, **params)

    def join_url(self, meeting_id: str, full_name: str, role: str = "VIEWER",
                 **params: Any) -> str:
        return self.url("join", meetingID=meeting_id, fullName=full_name, role=role, **params)

    def end(self, meeting_id: str) -> Any:
        return self.call("end", meetingID=meeting_id)

    def send_chat(self, meeting_id: str, message: str, user_name: str = "") -> Any:
        params: dict[str, Any] = {"meetingID": meeting_id, "message": message}
        if user_name:
            params["userName"] = user_name
        return self.call("sendChatMessage", **params)

    def meeting_info(self, meeting_id: str) -> Any:
        return self.call("getMeetingInfo", meetingID=meeting_id)


# --- the service --------------------------------------------------------------------------


def stop_process(process: subprocess.Popen[Any]) -> None:
    """SIGTERM, up to 30 s to exit, then SIGKILL."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def checkout_env() -> dict[str, str]:
    """The environment of a service subprocess: unbuffered, running this checkout's code
    (the repository root first on PYTHONPATH, as tests/integration does), not a copy
    installed in site-packages."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def start_service(workdir: Path, options: list[str],
                  env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], list[str]]:
    """``twistd -n meetplatform OPTIONS`` in ``workdir`` running this checkout's code,
    once it listens; its output lines are collected in the list returned with it."""
    command = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
               "-n", "--pidfile=", "meetplatform", *options]
    process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               env=env or checkout_env())
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "listening on http://" in line:
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(60) or process.poll() is not None:
        process.kill()
        raise RuntimeError("the service did not start:\n" + "".join(lines))
    return process, lines


@dataclass
class Service:
    base_url: str
    secret: str
    process: subprocess.Popen[str]
    log_lines: list[str] = field(default_factory=list)

    @property
    def bbb(self) -> Bbb:
        return Bbb(self.base_url, self.secret)

    def log(self) -> str:
        return "".join(self.log_lines[-200:])


@pytest.fixture(scope="session")
def service() -> Iterator[Service]:
    """The real service on a loopback port, in a subprocess (short resume grace)."""
    workdir = Path(tempfile.mkdtemp(prefix="mp-browser-"))
    secret = hashlib.sha256(os.urandom(16)).hexdigest()[:40]
    secret_file = workdir / "secret"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    port = _free_port()
    options = [
        f"--listen=tcp:{port}:interface=127.0.0.1",
        f"--data-dir={workdir / 'data'}",
        f"--secret-file={secret_file}",
        "--resume-grace-seconds=20",
        "--server-name=meetplatform-test",
    ]
    process, lines = start_service(workdir, options)
    svc = Service(base_url=f"http://127.0.0.1:{port}", secret=secret, process=process,
                  log_lines=lines)
    try:
        yield svc
    finally:
        stop_process(process)
        shutil.rmtree(workdir, ignore_errors=True)
        failures = [line for line in lines if "Traceback" in line or "Unhandled" in line]
        assert not failures, "the service logged errors:\n" + "".join(lines)


@pytest.fixture
def bbb(service: Service) -> Bbb:
    return service.bbb


# --- browsers ------------------------------------------------------------------------------


@pytest.fixture
def new_browser(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """A factory of headless Chromium drivers, each with a fresh profile; all quit at the end.

    ``fake_media=False`` leaves out the fake devices, ``block_media=True`` denies camera and
    microphone, ``third_party_cookies=False`` blocks third-party cookies (embedded pages),
    ``lang="pt-BR"`` sets the browser's language (``--lang`` and Accept-Language), and
    ``phone=True`` emulates a 390×844 phone with touch (DevTools Emulation)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    drivers: list[Any] = []
    profiles: list[str] = []

    def make(*, fake_media: bool = True, block_media: bool = False,
             third_party_cookies: bool = True, lang: str | None = None,
             phone: bool = False) -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS:
            if not fake_media and flag in ("--use-fake-device-for-media-stream",
                                           "--use-fake-ui-for-media-stream"):
                continue
            if block_media and flag == "--use-fake-ui-for-media-stream":
                continue
            options.add_argument(flag)
        profile = tempfile.mkdtemp(prefix="mp-chromium-")
        profiles.append(profile)
        options.add_argument(f"--user-data-dir={profile}")
        prefs: dict[str, Any] = {}
        if block_media:
            prefs["profile.default_content_setting_values.media_stream_camera"] = 2
            prefs["profile.default_content_setting_values.media_stream_mic"] = 2
        if not third_party_cookies:
            prefs["profile.block_third_party_cookies"] = True
            prefs["profile.cookie_controls_mode"] = 1
        if lang:
            options.add_argument(f"--lang={lang}")
            prefs["intl.accept_languages"] = lang
        if prefs:
            options.add_experimental_option("prefs", prefs)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=DriverService(CHROMEDRIVER))
        driver.set_script_timeout(WAIT)
        driver.set_page_load_timeout(WAIT)
        drivers.append(driver)
        if phone:
            emulate_phone(driver)
        return driver

    yield make
    failed = getattr(request.node, "rep_call_failed", False)
    for index, driver in enumerate(drivers):
        if failed:
            _keep_evidence(driver, f"{request.node.name}-{index}")
        try:
            driver.quit()
        except WebDriverException as error:
            sys.stderr.write(f"could not quit chromedriver: {error}\n")
    for profile in profiles:
        shutil.rmtree(profile, ignore_errors=True)


#: A phone in portrait (CSS pixels), like an iPhone 12-15.
PHONE: dict[str, Any] = {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True}


def emulate_phone(driver: Any, landscape: bool = False) -> None:
    """Chrome DevTools emulation: the phone's viewport, mobile layout and touch events."""
    metrics: dict[str, Any] = dict(PHONE)
    if landscape:
        metrics.update(width=PHONE["height"], height=PHONE["width"],
                       screenOrientation={"type": "landscapePrimary", "angle": 90})
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled",
                           {"enabled": True, "maxTouchPoints": 5})


def _keep_evidence(driver: Any, name: str) -> None:
    """After a failure: a screenshot and the console log in a temporary directory."""
    out = Path(tempfile.gettempdir()) / "meetplatform-browser-failures"
    out.mkdir(exist_ok=True)
    try:
        driver.save_screenshot(str(out / f"{name}.png"))
        lines = [f"{e['level']} {e['message']}" for e in driver.get_log("browser")]
        (out / f"{name}.log").write_text("\n".join(lines))
        sys.stderr.write(f"screenshot and console log of {name} in {out}\n")
    except WebDriverException as error:
        sys.stderr.write(f"no evidence for {name}: {error}\n")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
        item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: Any = yield
    if report.when == "call":
        item.rep_call_failed = report.failed  # type: ignore[attr-defined]
    return report  # type: ignore[no-any-return]


def http_status(url: str) -> int:
    """The status of a GET on ``url`` (no redirects followed)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
