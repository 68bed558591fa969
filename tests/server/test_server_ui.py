"""The web UI of ``pentora server`` in a real browser: Debian's chromium, driven by
selenium through chromium-driver, against the server run as a user runs it (a subprocess
on a free 127.0.0.1 port, a token made with ``pentora server token create``), scanning
listeners the tests start on 127.0.0.1.

Screenshots of each step are kept under the pytest base temp folder
(``screenshots/``); each test prints where.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pentora.testing import free_port

from .helpers import stop

PENTORA = str(Path(sys.executable).with_name("pentora"))
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HANG_GUARD = 120  # seconds: a step taking longer is a hang (the machine may be busy)
XSS = "<img src=x onerror=alert(1)>"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


class Server:
    """``pentora server`` on 127.0.0.1, a state folder and a scan store of its own."""

    def __init__(self, tmp: Path) -> None:
        self.state = tmp / "state"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (tmp / "server.yaml").write_text(f"store: {tmp / 'scans.db'}\n")
        made = subprocess.run([PENTORA, "server", "token", "create", "--scope", "scan", "--name",
                               "ui-test", "--state", str(self.state)],
                              capture_output=True, text=True, check=True)
        self.token = made.stdout.strip()
        self.log = (tmp / "server.log").open("w+")
        self.proc = subprocess.Popen(
            [PENTORA, "server", "--bind", f"127.0.0.1:{self.port}", "--state", str(self.state),
             "--config", str(tmp / "server.yaml")], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30  # a hang guard
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=5).close()
                return
            except OSError:
                assert self.proc.poll() is None, self.output()
                time.sleep(0.1)
        pytest.fail(f"the server did not answer: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
        """One request, redirects not followed (so a 303 and its Set-Cookie are seen)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read(), response.headers
        finally:
            conn.close()

    def login(self, token: str) -> tuple[int, bytes, Any]:
        form = urllib.parse.urlencode({"token": token}).encode()
        return self.request("POST", "/login", form,
                            {"Content-Type": "application/x-www-form-urlencoded"})

    def stop(self) -> None:
        stop(self.proc)
        self.log.close()


def _browser_or_skip() -> None:
    """chromium and chromium-driver are Debian packages (.ci/setup installs them); when
    missing, install them if this user can, else skip saying why."""
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    reason = None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        reason = "not root or no apt-get, so they cannot be installed here"
    else:
        done = subprocess.run(["apt-get", "install", "-y", "chromium", "chromium-driver"],
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            reason = f"apt-get install failed: {done.stderr.strip()[-300:]}"
    if reason or not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        message = f"{CHROMIUM} or {CHROMEDRIVER} is missing ({reason or 'still missing'})"
        print(f"SKIP: {message}")
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Any]:
    _browser_or_skip()
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (the test extra) "
                                    "is not installed: pip install -e '.[test]'")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1100", "--disable-gpu"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("ui-server"))
    yield running
    running.stop()


@pytest.fixture
def shot(browser, tmp_path_factory, request):
    """``shot("step")``: a screenshot, kept as a test artefact and named in the output."""
    folder = tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(exist_ok=True)

    def take(step: str) -> Path:
        path = folder / f"{request.node.name}-{step}.png"
        browser.save_screenshot(str(path))
        print(f"screenshot: {path}")
        return path

    return take


def wait(browser: Any, condition: Any, what: str) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(browser, HANG_GUARD, poll_frequency=0.2).until(condition)
    except TimeoutException:
        pytest.fail(f"the page never showed {what}; page text: {_text(browser)[:2000]}")


def _text(browser: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.find_element(By.TAG_NAME, "body").text)


def log_in(browser: Any, server: Server, token: str) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()  # another server's login (cookies ignore the port)
    browser.get(f"{server.url}/ui/")
    wait(browser, lambda d: d.current_url.endswith("/ui/login"), "the login page")
    field = browser.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    browser.find_element(By.ID, "login-button").click()


def no_alert(browser: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        alert = browser.switch_to.alert
    except NoAlertPresentException:
        return
    text = alert.text
    alert.dismiss()
    pytest.fail(f"a script of the page's data ran: an alert said {text!r}")


def start_scan(browser: Any, ports: list[int], profile: str = "service-scan") -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.find_element(By.ID, "nav-new").click()
    wait(browser, lambda d: d.find_elements(By.ID, "scan-form"), "the new scan form")
    Select(browser.find_element(By.ID, "profile")).select_by_value(profile)
    browser.find_element(By.ID, "targets").send_keys("127.0.0.1")
    browser.find_element(By.ID, "ports").send_keys(",".join(map(str, ports)))
    browser.find_element(By.ID, "start").click()
    wait(browser, lambda d: "#/scan/" in d.current_url, "the scan's page")
    return str(browser.current_url.rsplit("/", 1)[1])


def node_states(browser: Any) -> dict[str, str]:
    # read in one script: the page redraws the DAG and the tables as events arrive, so
    # element handles kept between calls could go stale
    return dict(browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#dag g.node')]"
        ".map(g => [g.getAttribute('data-node'), g.getAttribute('data-status')]))"))


def table_rows(browser: Any, table: str) -> list[list[str]]:
    return list(browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])]"
        ".map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent))",
        f"#{table} tbody tr"))


def test_a_scan_started_from_the_form_fills_its_dag_ports_and_report(
        browser, server, shot, tcp_server):
    from selenium.webdriver.common.by import By

    listeners = [tcp_server(), tcp_server(), tcp_server(banner=b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")]
    ports = sorted(s.port for s in listeners)
    log_in(browser, server, server.token)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#scans"), "the scan list")
    assert browser.find_element(By.ID, "who").text == "ui-test (scan)"
    shot("scan-list")
    scan_id = start_scan(browser, ports)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#dag g.node"), "the DAG")
    shot("running")
    ended = ("completed", "skipped", "failed", "cancelled")
    wait(browser, lambda d: (s := node_states(d)) and all(v in ended for v in s.values()),
         "every node of the DAG ended")
    wait(browser, lambda d: d.find_element(By.ID, "scan-status").get_attribute("data-status")
         == "completed", "the scan completed")
    states = node_states(browser)
    assert states["port_scan"] == "completed" or states["connect_scan"] == "completed", states
    assert states["banner_grab"] == "completed" and states["report"] == "completed", states
    wait(browser, lambda d: len(table_rows(d, "ports")) >= len(ports), "a row per open port")
    rows = table_rows(browser, "ports")
    assert sorted(int(r[1]) for r in rows) == ports and {r[0] for r in rows} == {"127.0.0.1"}
    ssh = next(r for r in rows if int(r[1]) == listeners[2].port)
    assert ssh[3] == "open" and "SSH-2.0-OpenSSH_9.2p1" in ssh[5]
    assert "of" in browser.find_element(By.ID, "progress-nodes").text
    shot("completed")

    # the scan list shows it completed, and the HTML report opens with the login cookie
    browser.find_element(By.ID, "nav-scans").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'#scans tr[data-id="{scan_id}"]'
                                                           f'[data-status="completed"]'),
         "the scan completed in the list")
    report = f"{server.url}/api/v1/scans/{scan_id}/results?format=html"
    browser.get(report)
    wait(browser, lambda d: str(listeners[2].port) in _text(d), "the report's ports")
    shot("report")
    no_alert(browser)


def test_a_banner_holding_markup_shows_as_text_and_runs_nothing(browser, server, shot, tcp_server):
    from selenium.webdriver.common.by import By

    hostile = tcp_server(banner=f"{XSS}\r\n".encode())
    log_in(browser, server, server.token)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#scans"), "the scan list")
    start_scan(browser, [hostile.port])
    wait(browser, lambda d: any(XSS in r[5] for r in table_rows(d, "ports") if len(r) > 5),
         "the banner in the ports table")
    wait(browser, lambda d: d.find_element(By.ID, "scan-status").get_attribute("data-status")
         == "completed", "the scan completed")
    shot("banner")
    no_alert(browser)
    # the markup stayed text: no element was made of it anywhere in the page
    assert browser.find_elements(By.CSS_SELECTOR, "#view img") == []
    cell = next(r for r in table_rows(browser, "ports") if XSS in r[5])
    assert cell[5].strip() == XSS
    # and the list of scans and the report render it as text too
    browser.find_element(By.ID, "nav-scans").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#scans tbody tr"), "the scan list")
    no_alert(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "img") == []


def test_a_wrong_token_is_refused_and_the_sixth_try_in_a_minute_gets_429(
        browser, tmp_path, shot):
    from selenium.webdriver.common.by import By

    fresh = Server(tmp_path)  # a failure count of its own
    try:
        for attempt in range(1, 6):
            log_in(browser, fresh, f"pnt_wrong{attempt}")
            error = wait(browser, lambda d: d.find_elements(By.ID, "login-error"), "an error")[0]
            assert "not valid" in error.text, error.text
            assert browser.get_cookie("pentora_login") is None
        shot("wrong-token")
        log_in(browser, fresh, "pnt_wrong6")
        error = wait(browser, lambda d: d.find_elements(By.ID, "login-error"), "an error")[0]
        assert "Too many failed logins" in error.text, error.text
        shot("rate-limited")
        # the limit holds for the right token too, with the status and Retry-After a client reads
        status, body, headers = fresh.login(fresh.token)
        assert status == 429 and b"Too many failed logins" in body
        assert 1 <= int(headers["Retry-After"]) <= 60
        assert headers.get("Set-Cookie") is None
        audit = [json.loads(line) for line in (fresh.state / "audit.log").read_text().splitlines()]
        assert [a["action"] for a in audit].count("login-failed") == 5
        assert fresh.token not in (fresh.state / "audit.log").read_text()
    finally:
        fresh.stop()


def test_the_login_cookie_is_httponly_strict_and_needs_the_csrf_token_to_change_anything(
        browser, server, shot):
    from selenium.webdriver.common.by import By

    log_in(browser, server, server.token)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#scans"), "the scan list")
    cookie = browser.get_cookie("pentora_login")
    assert cookie is not None and cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/" and cookie["secure"] is False  # plain HTTP on loopback
    assert browser.execute_script("return document.cookie") == ""  # no script reads it
    status, _, headers = server.login(server.token)
    set_cookie = headers["Set-Cookie"]
    assert status == 303 and "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert "Path=/" in set_cookie

    body = json.dumps({"targets": "127.0.0.1", "ports": "1", "profile": "port-scan"})
    # from the page itself: a POST with the cookie but without the token is refused
    script = """const done = arguments[arguments.length - 1];
    fetch('/api/v1/scans', {method: 'POST', credentials: 'same-origin',
        headers: {'Content-Type': 'application/json'}, body: arguments[0]})
      .then(r => r.json().then(j => done([r.status, j.error])));"""
    status, error = browser.execute_async_script(script, body)
    assert status == 403 and "CSRF" in error, error
    # and outside the browser, the same cookie: refused without the token, taken with it
    jar = {"Cookie": f"pentora_login={cookie['value']}", "Content-Type": "application/json"}
    assert server.request("POST", "/api/v1/scans", body.encode(), jar)[0] == 403
    assert server.request("POST", "/logout", b"", jar)[0] == 403
    login = json.loads(server.request("GET", "/ui/me", None, jar)[1])
    refused = {**jar, "X-CSRF-Token": login["csrf_token"][:-1] + "x"}
    assert server.request("POST", "/api/v1/scans", body.encode(), refused)[0] == 403
    taken = server.request("POST", "/api/v1/scans", body.encode(),
                           {**jar, "X-CSRF-Token": login["csrf_token"]})
    assert taken[0] == 201, taken[1]
    # a bearer request needs no CSRF token; reading with the cookie needs none either
    bearer = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    assert server.request("POST", "/api/v1/scans", body.encode(), bearer)[0] == 201
    assert server.request("GET", "/api/v1/scans", None, jar)[0] == 200
    # logging out ends the login on the server: the cookie no longer opens anything
    browser.find_element(By.CSS_SELECTOR, "#logout-form button").click()
    wait(browser, lambda d: d.current_url.endswith("/ui/login"), "the login page")
    shot("logged-out")
    assert server.request("GET", "/api/v1/scans", None, jar)[0] == 401


def test_every_page_carries_the_csp_and_the_other_security_headers(server):
    status, _, headers = server.login(server.token)
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    for path, logged_in in (("/ui/login", False), ("/ui/", True), ("/ui/app.js", False),
                            ("/ui/style.css", False), ("/api/v1/health", False),
                            ("/api/v1/scans", True)):
        status, _, headers = server.request("GET", path, None,
                                            {"Cookie": cookie} if logged_in else {})
        assert status == 200, path
        assert headers["Content-Security-Policy"] == CSP, path
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "no-referrer", path
    assert server.request("GET", "/ui/app.js", None)[2]["Content-Type"].startswith("text/javascript")
    assert server.request("GET", "/ui/../_ui.py", None)[0] == 404
    assert server.request("GET", "/ui/", None)[2]["Location"] == "/ui/login"


def test_two_scans_picked_in_the_list_show_their_diff(browser, server, shot, tcp_server):
    from selenium.webdriver.common.by import By

    kept, dropped = tcp_server(), tcp_server()
    bearer = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    ids = []
    for ports in (f"{kept.port},{dropped.port}", str(kept.port)):
        body = json.dumps({"targets": "127.0.0.1", "ports": ports, "profile": "port-scan"})
        status, answer, _ = server.request("POST", "/api/v1/scans", body.encode(), bearer)
        assert status == 201, answer
        ids.append(json.loads(answer)["id"])
        deadline = time.monotonic() + HANG_GUARD  # a hang guard
        while (shown := json.loads(server.request("GET", f"/api/v1/scans/{ids[-1]}", None,
                                                  bearer)[1]))["scan"]["status"] != "completed":
            assert time.monotonic() < deadline, (f"scan {ids[-1]} did not complete: {shown}; "
                                                 f"the server said: {server.output()[-3000:]}")
            time.sleep(0.2)
    log_in(browser, server, server.token)
    for scan_id in ids:
        box = wait(browser, lambda d, i=scan_id: d.find_elements(
            By.CSS_SELECTOR, f'#scans input.pick[data-id="{i}"]'), f"scan {scan_id} in the list")[0]
        box.click()
    wait(browser, lambda d: d.find_element(By.ID, "compare").is_enabled(), "Compare enabled")
    browser.find_element(By.ID, "compare").click()
    wait(browser, lambda d: f"#/diff/{ids[0]}/{ids[1]}" in d.current_url, "the diff page")
    table = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, 'table[data-aspect="ports"]'),
                 "the ports that changed")[0]
    rows = [tr.text for tr in table.find_elements(By.TAG_NAME, "tr")]
    assert rows == [f"removed 127.0.0.1  {dropped.port}/tcp  open"], rows
    shot("diff")


def test_last_event_id_in_the_query_replays_a_scan_from_its_first_event(server, tcp_server):
    listener = tcp_server()
    bearer = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    body = json.dumps({"targets": "127.0.0.1", "ports": str(listener.port), "profile": "port-scan"})
    status, answer, _ = server.request("POST", "/api/v1/scans", body.encode(), bearer)
    assert status == 201, answer
    scan_id = json.loads(answer)["id"]
    # the stream ends after scan_end: read it whole, from the first event
    status, text, headers = server.request("GET", f"/api/v1/scans/{scan_id}/events?last_event_id=0",
                                           None, bearer)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = [dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
              for block in text.decode().split("\n\n") if block.strip() and not block.startswith(":")]
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
    types = [e["event"] for e in events]
    assert "state" not in types and types[-1] == "scan_end" and "node_start" in types
    ports = [json.loads(e["data"])["record"] for e in events
             if e["event"] == "record" and json.loads(e["data"])["kind"] == "port"]
    assert [(p["host"], p["port"]) for p in ports] == [("127.0.0.1", listener.port)]
    # from N on: exactly the events after N
    status, text, _ = server.request("GET", f"/api/v1/scans/{scan_id}/events?last_event_id=3",
                                     None, bearer)
    assert text.decode().startswith("id: 4\n")


def test_the_schedules_page_lists_a_schedule_and_an_admin_disables_it(browser, server, shot):
    from selenium.webdriver.common.by import By

    admin = subprocess.run([PENTORA, "server", "token", "create", "--scope", "admin", "--name",
                            "ui-admin", "--state", str(server.state)],
                           capture_output=True, text=True, check=True).stdout.strip()
    headers = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
    body = json.dumps({"name": "nightly <b>bold</b>", "cron": "0 3 * * *",
                       "request": {"targets": "127.0.0.1", "ports": "22"}})
    status, answer, _ = server.request("POST", "/api/v1/schedules", body.encode(), headers)
    assert status == 201, answer
    schedule = json.loads(answer)["id"]

    def row(d: Any) -> list[str] | None:
        rows = [r for r in table_rows(d, "schedules") if r and r[0] == schedule]
        return rows[0] if rows else None

    # a scan token reads the schedules but may not change them: the page says why
    log_in(browser, server, server.token)
    wait(browser, lambda d: d.find_elements(By.ID, "nav-schedules"), "the Schedules link")
    browser.find_element(By.ID, "nav-schedules").click()
    assert wait(browser, row, "the schedule in the list")[1:3] == ["0 3 * * *", "yes"]
    browser.find_element(By.XPATH, "//table[@id='schedules']//button[text()='Disable']").click()
    wait(browser, lambda d: "admin" in _text(d), "the refusal naming the admin scope")
    assert json.loads(server.request("GET", f"/api/v1/schedules/{schedule}", None,
                                     headers)[1])["enabled"] is True
    # an admin's click disables it, through the login cookie and its CSRF token
    log_in(browser, server, admin)
    wait(browser, lambda d: d.find_elements(By.ID, "nav-schedules"), "the Schedules link")
    browser.find_element(By.ID, "nav-schedules").click()
    wait(browser, row, "the schedule in the list")
    browser.find_element(By.XPATH, "//table[@id='schedules']//button[text()='Disable']").click()
    wait(browser, lambda d: (row(d) or [None] * 3)[2] == "no", "the schedule disabled")
    shot("schedules")
    assert json.loads(server.request("GET", f"/api/v1/schedules/{schedule}", None,
                                     headers)[1])["enabled"] is False
    no_alert(browser)
