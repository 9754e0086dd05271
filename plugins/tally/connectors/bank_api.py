"""A bank's statement API: one CAMT.053 (ISO 20022) end-of-day statement per account and day.

GET <base>/statements?account=<id>&date=yyyy-MM-dd with a bearer token and
Accept: application/xml. Answers:
- 200: the statement XML (kept byte for byte; the file name from Content-Disposition, else
  `<account>_<yyyyMMdd>.camt053.xml`);
- 202 Accepted + Retry-After: the statement is still being produced -> `NotReady`;
- 404: unknown account; 401/403: credentials refused; other 4xx -> `FetchFailed`;
- 5xx, 429, timeouts -> retried within the bounds, then `FetchFailed`.
Banks differ in paths and parameter names; this is the shape our bank documents for us and
the shape the test server plays. A bank with another shape gets its own small connector.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import PurePosixPath
from urllib.parse import urlencode

from tally.connectors import (
    DEFAULT_RETRY,
    Fetched,
    FetchFailed,
    NotReady,
    Retry,
    attachment_name,
    request,
    retry_after,
    with_retries,
)


class BankStatementConnector:
    def __init__(self, *, base_url: str, token: str, account: str,
                 source: str = "bank_camt053", timeout: float = 30.0, retry: Retry = DEFAULT_RETRY,
                 sleep: Callable[[float], None] = time.sleep):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.account = account
        self.source = source
        self.timeout = timeout
        self.retry = retry
        self.sleep = sleep

    def fetch(self, business_date: date) -> Fetched:
        what = f"bank statement of account {self.account} for {business_date}"
        url = (f"{self.base_url}/statements?"
               f"{urlencode({'account': self.account, 'date': business_date.isoformat()})}")
        resp = with_retries(partial(request, "GET", url, timeout=self.timeout, headers={
            "Authorization": f"Bearer {self.token}", "Accept": "application/xml"}),
            what, self.retry, self.sleep)
        if resp.status == 200:
            name = (attachment_name(resp)
                    or f"{self.account}_{business_date:%Y%m%d}.camt053.xml")
            return Fetched(self.source, business_date, PurePosixPath(name).name, resp.body,
                           origin=url.split("?", 1)[0])
        if resp.status == 202:
            raise NotReady(f"{what}: not produced yet (202 Accepted)", retry_after(resp))
        if resp.status == 404:
            raise FetchFailed(f"{what}: the bank does not know the account (404):"
                              f" {resp.text()}")
        if resp.status in (401, 403):
            raise FetchFailed(f"{what}: credentials refused (HTTP {resp.status}):"
                              f" {resp.text()}")
        raise FetchFailed(f"{what}: unexpected HTTP {resp.status}: {resp.text()}")
