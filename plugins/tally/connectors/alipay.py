"""Alipay daily bill, as Alipay documents it.

1. Call the open-platform gateway with method `alipay.data.dataservice.bill.downloadurl.query`
   and biz_content {"bill_type": "trade", "bill_date": "yyyy-MM-dd"}; the answer holds
   `bill_download_url`, valid for about 30 seconds.
2. GET that URL: a zip (`<PID>0156_<yyyyMMdd>.csv.zip`) with the detail and summary CSVs.

Day D's bill exists from the morning of D+1 (Beijing time). Until then, and also for a day
that has no bill at all, Alipay answers sub_code `isp.bill_not_exist`: that is `NotReady`;
`fetch_when_ready` bounds the wait. A link used too late fails: we ask for a new one (bounded).

Signing: requests carry app_id, method, format, charset, sign_type RSA2, timestamp, version and
`sign` over the sorted parameters, as the gateway expects. For now `sign` is an HMAC-SHA256
placeholder with a shared key given to the constructor; real RSA2 signing (application private
key) and verification of the response with Alipay's public key are a later step that only
replaces `placeholder_sign` and `_verify`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from functools import partial
from pathlib import PurePosixPath
from urllib.parse import parse_qs, urlencode, urlsplit

from tally.connectors import (
    DEFAULT_RETRY,
    Fetched,
    FetchFailed,
    NotReady,
    Retry,
    Transient,
    attachment_name,
    request,
    with_retries,
)

METHOD = "alipay.data.dataservice.bill.downloadurl.query"
RESPONSE_NODE = "alipay_data_dataservice_bill_downloadurl_query_response"
SUCCESS = "10000"
UNAVAILABLE = "20000"  # "Service Currently Unavailable": the gateway's own transient answer
NOT_READY_SUB_CODES = frozenset({"isp.bill_not_exist"})
BEIJING = timezone(timedelta(hours=8))  # the gateway's timestamps are Beijing time (no DST)
ZIP_MAGIC = b"PK\x03\x04"
# The source configurations (include/sources/) that read each bill type.
SOURCES = {"trade": "alipay_bill", "signcustomer": "alipay_account_bill"}


def sign_content(params: dict[str, str]) -> str:
    """The text Alipay signs: non-empty parameters except `sign`, sorted, as k=v&k=v."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params)
                    if k != "sign" and params[k] not in ("", None))


def placeholder_sign(content: str, key: bytes) -> str:
    """Stand-in for RSA2 (SHA256withRSA) until real keys are wired: base64 HMAC-SHA256."""
    return base64.b64encode(hmac.new(key, content.encode("utf-8"), hashlib.sha256).digest()
                            ).decode("ascii")


def response_node_text(body: str, node: str) -> str | None:
    """The exact text of one top-level JSON member's value, as the response sign covers it."""
    start = body.find(f'"{node}"')
    if start < 0:
        return None
    colon = body.index(":", start + len(node) + 2)
    value_start = colon + 1
    while body[value_start] in " \t\r\n":
        value_start += 1
    _, end = json.JSONDecoder().raw_decode(body, value_start)
    return body[value_start:end]


class AlipayConnector:
    def __init__(self, *, gateway_url: str, app_id: str, sign_key: bytes | str,
                 bill_type: str = "trade", source: str | None = None, timeout: float = 30.0,
                 retry: Retry = DEFAULT_RETRY, link_attempts: int = 3,
                 sleep: Callable[[float], None] = time.sleep):
        self.gateway_url = gateway_url
        self.app_id = app_id
        self.key = sign_key.encode() if isinstance(sign_key, str) else sign_key
        self.bill_type = bill_type
        self.source = source or SOURCES.get(bill_type, f"alipay_{bill_type}")
        self.timeout = timeout
        self.retry = retry
        self.link_attempts = link_attempts
        self.sleep = sleep

    def fetch(self, business_date: date) -> Fetched:
        """The day's bill zip, byte for byte. Raises NotReady or FetchFailed."""
        last = ""
        for _ in range(self.link_attempts):
            url = with_retries(lambda: self.download_url(business_date),
                               f"Alipay bill URL query for {business_date}", self.retry,
                               self.sleep)
            resp = with_retries(partial(request, "GET", url, timeout=self.timeout),
                                f"Alipay bill download for {business_date}", self.retry,
                                self.sleep)
            # A used-up or expired link answers with an error page, not the zip: ask again.
            if resp.status == 200 and resp.body.startswith(ZIP_MAGIC):
                return Fetched(self.source, business_date, self._file_name(url, resp,
                               business_date), resp.body, origin=url.split("?", 1)[0])
            last = f"HTTP {resp.status} {resp.headers.get('content-type', '')}: {resp.text()}"
        raise FetchFailed(
            f"Alipay bill download for {business_date}: the link was refused"
            f" {self.link_attempts} time(s) (expired or invalid); last answer {last}")

    def download_url(self, business_date: date) -> str:
        """Ask the gateway for the bill's short-lived download URL."""
        params = {
            "app_id": self.app_id,
            "method": METHOD,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
            "version": "1.0",
            "biz_content": json.dumps({"bill_type": self.bill_type,
                                       "bill_date": business_date.isoformat()},
                                      separators=(",", ":")),
        }
        params["sign"] = placeholder_sign(sign_content(params), self.key)
        resp = request(
            "POST", self.gateway_url, body=urlencode(params).encode("utf-8"), timeout=self.timeout,
            headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"})
        if resp.status != 200:
            raise FetchFailed(f"Alipay gateway answered HTTP {resp.status}: {resp.text()}")
        body = resp.body.decode("utf-8")
        try:
            doc = json.loads(body)
            node = doc.get(RESPONSE_NODE) or doc["error_response"]
        except (ValueError, KeyError, AttributeError) as exc:
            raise FetchFailed(f"Alipay gateway answer is not a bill URL response: "
                              f"{resp.text()}") from exc
        code, sub_code = str(node.get("code", "")), node.get("sub_code", "")
        what = (f"code {code} {node.get('msg', '')}; sub_code {sub_code}"
                f" {node.get('sub_msg', '')}").strip()
        if code == SUCCESS:
            self._verify(body, doc.get("sign", ""))
            url = node.get("bill_download_url")
            if not url:
                raise FetchFailed("Alipay answered success without bill_download_url")
            return url
        if sub_code in NOT_READY_SUB_CODES:
            raise NotReady(f"Alipay has no {self.bill_type} bill for {business_date} yet"
                           f" ({what})")
        if code == UNAVAILABLE:
            raise Transient(f"Alipay gateway unavailable ({what})")
        raise FetchFailed(f"Alipay refused the bill URL query for {business_date} ({what})")

    def _verify(self, body: str, sign: str) -> None:
        # The response sign covers the exact text of the response node.
        expected = placeholder_sign(response_node_text(body, RESPONSE_NODE) or "", self.key)
        if not hmac.compare_digest(expected, sign):
            raise FetchFailed("Alipay response signature does not verify: wrong key or"
                              " tampered response")

    def _file_name(self, url: str, resp, business_date: date) -> str:
        # The link names the file (downloadFileName=<PID>0156_<yyyyMMdd>.csv.zip).
        name = (parse_qs(urlsplit(url).query).get("downloadFileName", [None])[0]
                or attachment_name(resp)
                or f"{self.app_id}_{self.bill_type}_{business_date:%Y%m%d}.csv.zip")
        return PurePosixPath(name).name
