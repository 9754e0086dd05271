"""The finance workbench's server: uvicorn serving tally.workbench.app on settings.web.host:port.

`tally web` starts it in the background (PID file under the home's run/, log under its logs/)
and waits until /healthz answers; `tally web --foreground` serves in the calling process (a
container's command); `tally services down` stops it, `tally services status` shows it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tally import config
from tally.config import Settings
from tally.services import process

START_TIMEOUT = 30.0


def pid_file(settings: Settings) -> Path:
    return settings.run_dir / "web.pid"


def log_file(settings: Settings) -> Path:
    return settings.home / "logs" / "web.log"


def _local_host(settings: Settings) -> str:
    """The address this machine reaches the server on (a wildcard bind answers on loopback)."""
    host = settings.web.host
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def url(settings: Settings) -> str:
    host = _local_host(settings)
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.web.port}/"


def healthy(settings: Settings) -> bool:
    try:
        with urllib.request.urlopen(url(settings) + "healthz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def serve(settings: Settings) -> None:
    """Serve in this process until interrupted."""
    import uvicorn

    from tally.workbench.app import create_app

    uvicorn.run(create_app(settings), host=settings.web.host, port=settings.web.port,
                log_level="info", server_header=False)


def start(settings: Settings) -> str:
    """Start the server in the background unless it runs already; return its URL once /healthz
    answers."""
    pid_path = pid_file(settings)
    if process.read_pid(pid_path):
        return url(settings)
    if process.port_open(_local_host(settings), settings.web.port):
        raise RuntimeError(f"port {settings.web.port} is taken by another program: set "
                           "TALLY_WEB_PORT to a free one")
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    log = log_file(settings)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = settings.child_env()
    # The server imports this same tally package, wherever the command that starts it found it.
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(config.PACKAGE_DIR.parent), env.get("PYTHONPATH")]))
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tally.services.web"], env=env, stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            cwd=settings.home,
        )
    pid_path.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT
    while not healthy(settings):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(settings)
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the workbench did not answer {url(settings)}healthz within "
                               f"{START_TIMEOUT:.0f}s; {log}:\n{tail}")
        time.sleep(0.1)
    return url(settings)


def stop(settings: Settings) -> bool:
    # SIGTERM: uvicorn finishes the requests in flight, then exits.
    return process.stop(pid_file(settings))


def status(settings: Settings) -> str:
    pid = process.read_pid(pid_file(settings))
    return f"running pid {pid} on {url(settings)}" if pid else "stopped"


if __name__ == "__main__":
    serve(config.load())
