"""The finance workbench's delivery: `tally web` (the real uvicorn, in the background and in the
foreground), its page in a real chromium, and the browser libraries it serves itself."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

from tally import cli, config, services
from tally.devtools import vendor_assets
from tally.services import process, web
from tests.browser import keep_screenshot

PACKAGE = config.PACKAGE_DIR
WORKBENCH = PACKAGE / "workbench"


def tally(settings, *args, timeout=120):
    """The `tally` command, as a user runs it, with the test settings."""
    return subprocess.run([sys.executable, "-m", "tally.cli", *args], env=settings.child_env(),
                          capture_output=True, text=True, timeout=timeout, check=True)


def test_tally_web_serves_the_login_page_to_chromium_and_stops(settings, page):
    first = tally(settings, "web").stdout
    address = web.url(settings)
    assert f"started: {address}" in first
    assert address == f"http://127.0.0.1:{settings.web.port}/"
    pid = process.read_pid(web.pid_file(settings))
    try:
        assert pid and process.alive(pid)
        assert web.log_file(settings).is_relative_to(settings.home / "logs")
        # A second start is harmless: the same server, its URL again.
        assert f"already running: {address}" in tally(settings, "web").stdout
        assert process.read_pid(web.pid_file(settings)) == pid
        assert services.status(settings)["web"] == f"running pid {pid} on {address}"

        requested = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(address + "login")
        form = page.locator("form")
        assert form.count() == 1
        assert page.locator("input[name=name]").is_visible()
        assert page.locator("input[type=password]").is_visible()
        assert page.locator("button[type=submit]").is_visible()
        # Its stylesheet and script came from the workbench itself, nothing from elsewhere.
        assert len(requested) >= 3 and all(url.startswith(address) for url in requested), \
            requested
        # The vendored libraries are served by the app too.
        for library in ("htmx.min.js", "echarts.min.js"):
            served = page.request.get(address + "static/vendor/" + library)
            assert served.status == 200 and len(served.body()) > 10_000
        shot = keep_screenshot(page, "workbench_login")
        assert shot == settings.home / "screenshots" / "workbench_login.png"
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        stopped = web.stop(settings)
    assert stopped
    assert not process.alive(pid)
    assert not process.port_open("127.0.0.1", settings.web.port)
    assert not web.pid_file(settings).exists()
    assert services.status(settings)["web"] == "stopped"


def test_tally_web_in_the_foreground_serves_until_terminated(settings):
    """As the compose service runs it: in the process itself, no PID file, ended by a signal."""
    server = subprocess.Popen([sys.executable, "-m", "tally.cli", "web", "--foreground"],
                              env=settings.child_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not web.healthy(settings):
            assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
            time.sleep(0.1)
        assert web.status(settings) == "stopped"  # not the background server's PID file
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    # A graceful stop: uvicorn finishes, then ends by the signal it was sent (as a container's
    # main process should).
    assert "Application shutdown complete." in output
    assert server.returncode in (0, -signal.SIGTERM), output
    assert f"Tally workbench on {web.url(settings)}" in output
    assert not process.port_open("127.0.0.1", settings.web.port)


def test_the_web_command_is_wired():
    args = cli.build_parser().parse_args(["web"])
    assert args.func is cli.cmd_web and not args.foreground


def test_the_vendored_libraries_are_those_of_vendored_md():
    assert vendor_assets.verify() == []
    vendored = {p.name for p in vendor_assets.VENDOR_DIR.iterdir()}
    assert {"htmx.min.js", "echarts.min.js", "htmx.org.LICENSE", "echarts.LICENSE",
            "VENDORED.md"} <= vendored
    text = (vendor_assets.VENDOR_DIR / "VENDORED.md").read_text()
    assert re.search(r"\| htmx\.org \| 2\.\d+\.\d+ \| `htmx\.min\.js` \|", text)
    assert re.search(r"\| echarts \| [56]\.\d+\.\d+ \| `echarts\.min\.js` \|", text)


def test_pages_load_nothing_from_another_host():
    """No CDN: every script, style and image of a template is the workbench's own."""
    pattern = re.compile(r"""(?:src|href)\s*=\s*["']\s*(?:https?:)?//""", re.IGNORECASE)
    offenders = [str(p.relative_to(WORKBENCH)) for p in WORKBENCH.rglob("*")
                 if p.suffix in (".html", ".css", ".js") and "vendor" not in p.parts
                 and pattern.search(p.read_text())]
    assert offenders == []


def test_the_package_build_takes_the_templates_and_static_files():
    """The wheel (hatchling, packages = ["plugins/tally"]) takes every file of the package that
    git does not ignore: none of the workbench's may be ignored."""
    files = [str(p.relative_to(config.load().project_dir)) for p in WORKBENCH.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts]
    assert any(f.endswith(".html") for f in files) and any(f.endswith(".js") for f in files)
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *files],
                             cwd=config.load().project_dir, capture_output=True, text=True)
    assert ignored.stdout.split() == []
