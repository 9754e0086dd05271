"""File drop: files a channel (or a person) puts under inbox/<source>/<business_date>/, in a
local folder or in an S3 bucket under a prefix.

Picked-up files are never moved, deleted or overwritten: the drop stays as the sender left it.
Instead, each pick-up writes a small marker, once, beside the tree:
    <root>/.picked/<source>/<business_date>/<name>@<version>
where version identifies the file's content without reading it (S3: the ETag; local: size
and modification time). `pending()` lists files that have no marker for their current version,
so a file is handed out once, and a file replaced under the same name counts as new (landing
then records identical bytes as a duplicate, so handing out twice is harmless; missing a
corrected file would not be).

Markers are written with create-if-absent (local O_EXCL, S3 If-None-Match: *), so two workers
cannot both claim a file, and `collect()` marks a file only after the caller's handler (e.g.
landing in the raw zone) succeeded: a crash in between means the file is handed out again, not
lost. Names starting with "." are ignored (writers drop `.name.part` and rename into place).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from tally import storage
from tally.connectors import Fetched, FetchFailed

MARKERS = ".picked"
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class InboxFile:
    source: str
    business_date: date
    name: str
    key: str  # full path (local) or object key (S3)
    version: str
    size: int

    @property
    def marker(self) -> str:
        """The marker's path relative to the root, e.g. .picked/bank_csv/2026-11-20/x.csv@v."""
        day = self.business_date.isoformat()
        return f"{MARKERS}/{self.source}/{day}/{self.name}@{self.version}"


def _day_folder(source: str, business_date: date) -> str:
    if not _SAFE_NAME.fullmatch(source):
        raise ValueError(f"not a source name: {source!r}")
    return f"{source}/{business_date.isoformat()}"


class _Inbox:
    def pending(self, source: str, business_date: date) -> list[InboxFile]:
        return [f for f in self.listing(source, business_date) if not self.is_marked(f)]

    def collect(self, source: str, business_date: date,
                handle: Callable[[Fetched], object]) -> list[Fetched]:
        """Fetch each pending file, pass it to `handle`, then mark it picked up."""
        done = []
        for item in self.pending(source, business_date):
            fetched = self.fetch(item)
            handle(fetched)
            self.mark(item, fetched)
            done.append(fetched)
        return done

    @staticmethod
    def _marker_body(item: InboxFile, fetched: Fetched) -> bytes:
        return json.dumps({"key": item.key, "version": item.version, "size": len(fetched.data),
                           "sha256": fetched.sha256}).encode()

    def listing(self, source: str, business_date: date) -> list[InboxFile]:
        raise NotImplementedError

    def is_marked(self, item: InboxFile) -> bool:
        raise NotImplementedError

    def fetch(self, item: InboxFile) -> Fetched:
        raise NotImplementedError

    def mark(self, item: InboxFile, fetched: Fetched) -> bool:
        raise NotImplementedError


class LocalInbox(_Inbox):
    """A folder holding <source>/<business_date>/<file> (e.g. the settings' inbox_dir)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def listing(self, source: str, business_date: date) -> list[InboxFile]:
        folder = self.root / _day_folder(source, business_date)
        if not folder.is_dir():
            return []
        files = []
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            stat = path.stat()
            files.append(InboxFile(source, business_date, path.name, str(path),
                                   f"{stat.st_size}-{stat.st_mtime_ns}", stat.st_size))
        return files

    def is_marked(self, item: InboxFile) -> bool:
        return (self.root / item.marker).exists()

    def fetch(self, item: InboxFile) -> Fetched:
        try:
            data = Path(item.key).read_bytes()
        except OSError as exc:
            raise FetchFailed(f"cannot read inbox file {item.key}: {exc}") from exc
        return Fetched(item.source, item.business_date, item.name, data, origin=item.key)

    def mark(self, item: InboxFile, fetched: Fetched) -> bool:
        """Write the marker once; False if it was there already (picked up elsewhere)."""
        path = self.root / item.marker
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as out:
            out.write(self._marker_body(item, fetched))
        return True


class S3Inbox(_Inbox):
    """Objects under s3://<bucket>/<prefix><source>/<business_date>/<file>, through a boto3 S3
    client given by the caller (its endpoint and credentials are the caller's business)."""

    def __init__(self, s3, bucket: str, prefix: str = "inbox/"):
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"

    def listing(self, source: str, business_date: date) -> list[InboxFile]:
        folder = f"{self.prefix}{_day_folder(source, business_date)}/"
        files = []
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                   Prefix=folder)
        for page in pages:
            for obj in page.get("Contents", []):
                name = obj["Key"][len(folder):]
                if not name or "/" in name or name.startswith("."):
                    continue
                files.append(InboxFile(source, business_date, name, obj["Key"],
                                       obj["ETag"].strip('"'), obj["Size"]))
        return sorted(files, key=lambda f: f.name)

    def is_marked(self, item: InboxFile) -> bool:
        resp = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix + item.marker,
                                       MaxKeys=1)
        return any(o["Key"] == self.prefix + item.marker for o in resp.get("Contents", []))

    def fetch(self, item: InboxFile) -> Fetched:
        return Fetched(item.source, item.business_date, item.name,
                       storage.get_bytes(self.s3, self.bucket, item.key),
                       origin=f"s3://{self.bucket}/{item.key}")

    def mark(self, item: InboxFile, fetched: Fetched) -> bool:
        """Write the marker once; False if it was there already (picked up elsewhere)."""
        return storage.put_if_absent(self.s3, self.bucket, self.prefix + item.marker,
                                     self._marker_body(item, fetched))
