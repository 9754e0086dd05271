"""Connectors: fetch one business day's file from a channel the way the channel documents it.

Every connector returns a `Fetched` (the bytes exactly as received) and raises one of:
- `NotReady`: the channel has not produced the file yet. Not a failure: wait and ask again
  (`fetch_when_ready` does that, bounded).
- `FetchFailed`: a permanent problem (bad credentials or signature, unknown account, hash
  mismatch, transient errors that outlasted the retry bound), with a message that says which.

Connectors never read the environment and never import Airflow: configuration comes in as
constructor arguments. HTTP goes through `request` (urllib, proxies off) so the package gains
no dependency.
"""

from __future__ import annotations

import hashlib
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Fetched:
    source: str
    business_date: date
    file_name: str
    data: bytes = field(repr=False)
    origin: str = ""  # where it came from (endpoint or key), for the logs

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class NotReady(Exception):  # noqa: N818 - a state the caller waits out, not an error
    """The file for that day is not produced yet; ask again later."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after  # seconds the channel asked us to wait, if it said


class FetchFailed(Exception):  # noqa: N818 - the name the callers know
    """A permanent failure; retrying the same call will not help."""


class NoStatement(FetchFailed):
    """The channel states that no file exists for that day (e.g. no trades at all)."""


class Transient(Exception):  # noqa: N818
    """A passing failure (HTTP 5xx, 429, timeout, connection reset): worth retrying."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Retry:
    """Bounds for retrying transient errors: at most `attempts` calls within `max_seconds`,
    waiting `delay`, then twice as long each time (capped at `max_delay`)."""

    attempts: int = 4
    max_seconds: float = 120.0
    delay: float = 1.0
    max_delay: float = 30.0


DEFAULT_RETRY = Retry()


def with_retries(call: Callable[[], T], what: str, retry: Retry = DEFAULT_RETRY,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> T:
    """Call `call()`; on `Transient` wait and call again within the bounds of `retry`.

    Gives up with `FetchFailed` naming the last error. Other exceptions pass through at once.
    """
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except Transient as exc:
            last = exc
            wait = min(retry.delay * 2 ** (attempt - 1), retry.max_delay)
            if exc.retry_after is not None:
                wait = max(wait, min(exc.retry_after, retry.max_delay))
        elapsed = clock() - started
        if attempt >= retry.attempts or elapsed + wait > retry.max_seconds:
            raise FetchFailed(
                f"{what} failed after {attempt} attempt(s) in {elapsed:.1f}s;"
                f" last error: {last}") from last
        sleep(wait)


def fetch_when_ready(fetch: Callable[[], Fetched], *, interval: float = 1800.0,
                     max_polls: int = 12, max_seconds: float = 6 * 3600.0,
                     sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.monotonic) -> Fetched:
    """Call `fetch()` until the file is there, waiting `interval` (or the channel's
    Retry-After) between polls; at most `max_polls` calls within `max_seconds`.

    When the bound is reached the last `NotReady` is raised again: the file is still not
    there, and whether that is alarming (a deadline passed) is the caller's decision.
    `FetchFailed` is raised at once.
    """
    started = clock()
    polls = 0
    while True:
        polls += 1
        try:
            return fetch()
        except NotReady as exc:
            wait = max(interval, exc.retry_after or 0.0)
            elapsed = clock() - started
            if polls >= max_polls or elapsed + wait > max_seconds:
                raise NotReady(
                    f"still not ready after {polls} poll(s) in {elapsed:.1f}s: {exc}",
                    exc.retry_after) from exc
        sleep(wait)


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes = field(repr=False)

    def text(self, limit: int = 300) -> str:
        """The start of the body, for error messages."""
        return self.body[:limit].decode("utf-8", "replace")


# No ProxyHandler lookup of *_proxy variables: connectors do not read the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def request(method: str, url: str, *, headers: dict[str, str] | None = None,
            body: bytes | None = None, timeout: float = 30.0) -> Response:
    """One HTTP call. Returns any 1xx-4xx answer; raises `Transient` for 5xx, 429 and
    network trouble (timeouts, refused or reset connections)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            answer = Response(resp.status, _lower(resp.headers), resp.read())
    except urllib.error.HTTPError as exc:
        answer = Response(exc.code, _lower(exc.headers), exc.read())
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise Transient(f"{method} {_no_query(url)}: {exc}") from exc
    if answer.status >= 500 or answer.status == 429:
        raise Transient(f"{method} {_no_query(url)}: HTTP {answer.status} {answer.text()}",
                        retry_after(answer))
    return answer


def retry_after(resp: Response) -> float | None:
    """Seconds from a Retry-After header given as a number (the HTTP-date form is ignored)."""
    value = resp.headers.get("retry-after", "").strip()
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None


def attachment_name(resp: Response) -> str | None:
    """The file name a server gives in Content-Disposition, if any (directories stripped)."""
    match = re.search(r'filename="?([^";]+)"?', resp.headers.get("content-disposition", ""))
    if not match:
        return None
    return match.group(1).rsplit("/", 1)[-1].strip() or None


def _lower(headers) -> dict[str, str]:
    return {k.lower(): v for k, v in (headers or {}).items()}


def _no_query(url: str) -> str:
    # Download links carry one-time tokens: keep them out of messages and logs.
    return url.split("?", 1)[0]
