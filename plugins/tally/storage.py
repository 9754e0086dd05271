"""Object storage: one S3 client, write-once puts, and the zone layout.

Zones are separate buckets so that access can be granted per zone:
raw (write-once original bytes), quarantine (rejected files with their reason), published.
"""

from __future__ import annotations

import contextlib
import time

import boto3
import botocore.config
import botocore.exceptions

from tally.config import Settings

# Retries after a request's first attempt, with the standard mode's short backoff (at most
# 0.05 s doubling): a blip is ridden over, an S3 that is down fails the step within seconds.
RETRIES = 5


class StorageUnavailable(RuntimeError):
    """The S3 endpoint could not be reached, even after the client's retries."""


@contextlib.contextmanager
def _reaching(s3, action: str, bucket: str, key: str):
    # botocore's own message names only a URL; say which endpoint, what for, and that it retried.
    try:
        yield
    except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as exc:
        raise StorageUnavailable(
            f"S3 at {s3.meta.endpoint_url} unreachable while {action} s3://{bucket}/{key}"
            f" (gave up after {RETRIES} retries): {exc}") from exc


def client(settings: Settings):
    return boto3.client(
        "s3",
        endpoint_url=settings.s3.endpoint or None,
        aws_access_key_id=settings.s3.access_key or None,
        aws_secret_access_key=settings.s3.secret_key or None,
        region_name=settings.s3.region,
        config=botocore.config.Config(
            retries={"max_attempts": RETRIES, "mode": "standard"},
            s3={"addressing_style": "path"},
            connect_timeout=5,
            read_timeout=60,
        ),
    )


def wait_until_ready(settings: Settings, timeout: float = 60.0) -> None:
    """The S3 port opens before the filer behind it is ready; wait for a real answer."""
    s3 = client(settings)
    deadline = time.monotonic() + timeout
    while True:
        try:
            s3.list_buckets()
            return
        except (botocore.exceptions.ClientError, botocore.exceptions.EndpointConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def ensure_bucket(s3, bucket: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError:
        try:
            s3.create_bucket(Bucket=bucket)
        except botocore.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou",
                                                      "BucketAlreadyExists"):
                raise


def put_if_absent(s3, bucket: str, key: str, body: bytes, **extra) -> bool:
    """Write an object only if no object has that key (If-None-Match: *).

    Returns True if this call wrote it, False if it was already there. Never overwrites.
    """
    try:
        with _reaching(s3, "writing", bucket, key):
            s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", **extra)
        return True
    except botocore.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] in ("PreconditionFailed", "ConditionalRequestConflict"):
            return False
        raise


def get_bytes(s3, bucket: str, key: str) -> bytes:
    with _reaching(s3, "reading", bucket, key):
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def list_keys(s3, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    with _reaching(s3, "listing", bucket, prefix):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys
