"""The raw zone: every received file, byte for byte, under a content-addressed key, written once.

The manifest (tally.files) records each receipt. The same bytes a second time are recorded as a
duplicate of the first receipt and never loaded again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import quote

import psycopg

from tally import storage
from tally.config import Settings
from tally.sources import SourceConfig


@dataclass(frozen=True)
class Landed:
    file_id: int
    source: str
    name: str
    sha256: str
    raw_key: str
    status: str  # 'landed' or 'duplicate'


def raw_key(source: str, business_date: date, sha256: str, name: str) -> str:
    ext = Path(name).suffix.lstrip(".").lower() or "bin"
    return f"raw/{source}/{business_date.isoformat()}/{sha256}.{ext}"


def land_bytes(settings: Settings, conn: psycopg.Connection, s3, config: SourceConfig,
               business_date: date, data: bytes, name: str) -> Landed:
    sha256 = hashlib.sha256(data).hexdigest()
    key = raw_key(config.source, business_date, sha256, name)
    # Write-once: a key that exists already holds these very bytes (the key is their hash).
    storage.put_if_absent(
        s3, settings.s3.raw_bucket, key, data,
        Metadata={"source": config.source, "original-name": quote(name)},
    )
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (sha256,))
        first = conn.execute(
            "select file_id from tally.files where sha256 = %s and status <> 'duplicate'",
            (sha256,),
        ).fetchone()
        status = "duplicate" if first else "landed"
        (file_id,) = conn.execute(
            """insert into tally.files (sha256, source, business_date, original_name, size_bytes,
                                        raw_key, parser, parser_version, status, duplicate_of)
               values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) returning file_id""",
            (sha256, config.source, business_date, name, len(data), key, config.parser,
             config.parser_version, status, first[0] if first else None),
        ).fetchone()
    return Landed(file_id, config.source, name, sha256, key, status)


def quarantine(settings: Settings, conn: psycopg.Connection, s3, file_id: int, data: bytes,
               reason: str) -> str:
    """Keep a rejected file's bytes and reason in the quarantine zone; mark it in the manifest."""
    row = conn.execute(
        "select source, business_date, sha256, raw_key, original_name from tally.files"
        " where file_id = %s", (file_id,),
    ).fetchone()
    source, business_date, sha256, key, name = row
    q_key = key.replace("raw/", "quarantine/", 1)
    storage.put_if_absent(s3, settings.s3.quarantine_bucket, q_key, data)
    reason_doc = {"file_id": file_id, "source": source, "business_date": str(business_date),
                  "original_name": name, "sha256": sha256, "raw_key": key, "reason": reason}
    storage.put_if_absent(
        s3, settings.s3.quarantine_bucket, f"{q_key}.reason.json",
        json.dumps(reason_doc, ensure_ascii=False, indent=2).encode(),
    )
    with conn.transaction():
        conn.execute(
            "update tally.files set status = 'quarantined', quarantine_key = %s, error = %s"
            " where file_id = %s",
            (q_key, reason, file_id),
        )
    return q_key
