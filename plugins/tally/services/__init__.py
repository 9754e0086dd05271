"""Embedded services: a PostgreSQL cluster and a SeaweedFS S3 server under TALLY_HOME, and the
workbench's web server (started by `tally web` only, stopped and shown with the others)."""

from __future__ import annotations

import fcntl
import json
import secrets as _secrets

from tally.config import Settings, load
from tally.services import postgres, s3, web


def ensure_secrets(settings: Settings) -> Settings:
    """Generate the embedded services' credentials once; they live only under TALLY_HOME."""
    path = settings.secrets_file
    values = json.loads(path.read_text()) if path.exists() else {}
    wanted = {
        "pg_password": lambda: _secrets.token_urlsafe(18),
        "s3_access_key": lambda: "tally" + _secrets.token_hex(6),
        "s3_secret_key": lambda: _secrets.token_urlsafe(24),
        # signs the workbench's session cookies; added to a home made by an earlier release
        "web_secret": lambda: _secrets.token_urlsafe(32),
    }
    missing = {name: make() for name, make in wanted.items() if name not in values}
    if missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**values, **missing}, indent=2))
        path.chmod(0o600)
    return load(settings.env)


def up(settings: Settings | None = None) -> Settings:
    settings = settings or load()
    settings.home.mkdir(parents=True, exist_ok=True)
    # Every `tally run` and `tally upload` sets the services up, and several may start at once:
    # one at a time, or two would generate different secrets or start the same server twice.
    with open(settings.home / ".services.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        settings = ensure_secrets(settings)
        if settings.pg.embedded:
            postgres.start(settings)
        postgres.bootstrap(settings)
        if settings.s3.embedded:
            s3.start(settings)
        s3.create_buckets(settings)
    return settings


def down(settings: Settings | None = None) -> list[str]:
    settings = settings or load()
    # The workbench first: it reads the warehouse and the zones.
    order = (("web", web.stop), ("s3", s3.stop), ("postgres", postgres.stop))
    return [name for name, stop in order if stop(settings)]


def status(settings: Settings | None = None) -> dict[str, str]:
    settings = settings or load()
    return {"postgres": postgres.status(settings), "s3": s3.status(settings),
            "web": web.status(settings)}
