"""WeChat Pay daily bills (API v3), as WeChat Pay documents them.

1. Apply: GET /v3/bill/tradebill?bill_date=yyyy-MM-dd&bill_type=ALL[&tar_type=GZIP]
   (or /v3/bill/fundflowbill?bill_date=...&account_type=BASIC[&tar_type=GZIP]) answers
   {"download_url", "hash_type": "SHA1", "hash_value"}; the link is short-lived.
2. GET download_url (signed like any v3 request; the answer itself is not signed).
3. Check SHA1 of the bill against hash_value. The hash is of the plain bill: a GZIP download is
   decompressed to check it. We keep the bytes exactly as downloaded.

Day D's bills are generated from 09:00 of D+1 (China time); WeChat Pay advises asking after
10:00. Answers we act on: 400 STATEMENT_CREATING ("bill being generated") is `NotReady`;
400 NO_STATEMENT_EXIST ("no bill": no trades or no fund movement that day) is `NoStatement`,
final per WeChat Pay's advice to stop retrying; a download link that is no longer valid
(400 INVALID_REQUEST) makes us apply again, bounded; 5xx and 429 are retried.

Signing: the Authorization header is built over the same message as the v3 scheme
WECHATPAY2-SHA256-RSA2048 ("METHOD\\nURL\\ntimestamp\\nnonce\\nbody\\n"), but with a
placeholder scheme TALLY-HMAC-SHA256 and a shared key from the constructor. Likewise the apply
answer's Wechatpay-Signature is checked with that key. Real RSA signing with the merchant key
and verification with the WeChat Pay platform key are a later step.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import secrets
import time
import zlib
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import PurePosixPath
from urllib.parse import urlencode, urlsplit

from tally.connectors import (
    DEFAULT_RETRY,
    Fetched,
    FetchFailed,
    NoStatement,
    NotReady,
    Response,
    Retry,
    attachment_name,
    request,
    with_retries,
)

SCHEME = "TALLY-HMAC-SHA256"  # stands in for WECHATPAY2-SHA256-RSA2048
NOT_READY_CODES = frozenset({"STATEMENT_CREATING"})
NO_STATEMENT_CODES = frozenset({"NO_STATEMENT_EXIST"})


def request_message(method: str, url: str, timestamp: str, nonce: str, body: str = "") -> str:
    """What a v3 request signature covers: method, path with query, timestamp, nonce, body."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return f"{method}\n{target}\n{timestamp}\n{nonce}\n{body}\n"


def response_message(timestamp: str, nonce: str, body: str) -> str:
    return f"{timestamp}\n{nonce}\n{body}\n"


def placeholder_signature(message: str, key: bytes) -> str:
    return base64.b64encode(hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
                            ).decode("ascii")


def error_code(resp: Response) -> tuple[str, str]:
    """(code, message) of a v3 error answer {"code": ..., "message": ...}."""
    try:
        doc = json.loads(resp.body)
        return str(doc.get("code", "")), str(doc.get("message", ""))
    except (ValueError, AttributeError):
        return "", resp.text()


class WeChatPayConnector:
    def __init__(self, *, base_url: str, mchid: str, serial_no: str, sign_key: bytes | str,
                 source: str = "wechatpay_bill", fund_source: str = "wechatpay_fund_bill",
                 tar_type: str | None = "GZIP",
                 timeout: float = 30.0, retry: Retry = DEFAULT_RETRY, link_attempts: int = 3,
                 sleep: Callable[[float], None] = time.sleep):
        self.base_url = base_url.rstrip("/")
        self.mchid = mchid
        self.serial_no = serial_no
        self.key = sign_key.encode() if isinstance(sign_key, str) else sign_key
        self.source = source  # the source configuration of trade bills
        self.fund_source = fund_source  # and of fund flow bills
        self.tar_type = tar_type
        self.timeout = timeout
        self.retry = retry
        self.link_attempts = link_attempts
        self.sleep = sleep

    def trade_bill(self, business_date: date, bill_type: str = "ALL") -> Fetched:
        """The day's trade bill (ALL, SUCCESS or REFUND)."""
        return self._fetch("tradebill", business_date, {"bill_type": bill_type},
                           f"{self.mchid}_tradebill_{bill_type}_{business_date:%Y%m%d}",
                           self.source)

    def fund_flow_bill(self, business_date: date, account_type: str = "BASIC") -> Fetched:
        """The day's fund flow bill of one account (BASIC, OPERATION or FEES)."""
        return self._fetch("fundflowbill", business_date, {"account_type": account_type},
                           f"{self.mchid}_fundflowbill_{account_type}_{business_date:%Y%m%d}",
                           self.fund_source)

    def _fetch(self, kind: str, business_date: date, extra: dict[str, str], stem: str,
               source: str) -> Fetched:
        query = {"bill_date": business_date.isoformat(), **extra}
        if self.tar_type:
            query["tar_type"] = self.tar_type
        apply_url = f"{self.base_url}/v3/bill/{kind}?{urlencode(query)}"
        what = f"WeChat Pay {kind} for {business_date}"
        last = ""
        for _ in range(self.link_attempts):
            meta = with_retries(partial(self._apply, apply_url, what), f"{what}: apply",
                                self.retry, self.sleep)
            url = meta["download_url"]
            resp = with_retries(partial(self._get, url), f"{what}: download", self.retry,
                                self.sleep)
            if resp.status == 200:
                self._check_hash(resp.body, meta, what)
                suffix = ".csv.gz" if self.tar_type == "GZIP" else ".csv"
                name = PurePosixPath(attachment_name(resp) or stem + suffix).name
                return Fetched(source, business_date, name, resp.body,
                               origin=url.split("?", 1)[0])
            code, message = error_code(resp)
            last = f"HTTP {resp.status} {code} {message}".strip()
            # 400 INVALID_REQUEST here means "apply again for a new download address".
            if resp.status != 400:
                raise FetchFailed(f"{what}: download refused: {last}")
        raise FetchFailed(f"{what}: the download link was refused {self.link_attempts}"
                          f" time(s) (expired or invalid); last answer {last}")

    def _apply(self, url: str, what: str) -> dict:
        resp = self._get(url, accept="application/json")
        code, message = error_code(resp)
        if resp.status == 200:
            self._verify(resp)
            try:
                meta = json.loads(resp.body)
            except ValueError:
                meta = None
            if not isinstance(meta, dict) or not all(
                    meta.get(k) for k in ("download_url", "hash_type", "hash_value")):
                raise FetchFailed(f"{what}: unexpected apply answer: {resp.text()}")
            return meta
        if code in NOT_READY_CODES:
            raise NotReady(f"{what}: bill is being generated ({code}: {message})")
        if code in NO_STATEMENT_CODES:
            raise NoStatement(f"{what}: WeChat Pay has no bill for that day ({code}: {message})")
        raise FetchFailed(f"{what}: apply refused: HTTP {resp.status} {code} {message}".strip())

    def _get(self, url: str, accept: str = "*/*") -> Response:
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        signature = placeholder_signature(request_message("GET", url, timestamp, nonce),
                                          self.key)
        auth = (f'{SCHEME} mchid="{self.mchid}",nonce_str="{nonce}",signature="{signature}",'
                f'timestamp="{timestamp}",serial_no="{self.serial_no}"')
        return request("GET", url, timeout=self.timeout, headers={
            "Authorization": auth, "Accept": accept, "User-Agent": "tally-connector"})

    def _verify(self, resp: Response) -> None:
        h = resp.headers
        expected = placeholder_signature(response_message(
            h.get("wechatpay-timestamp", ""), h.get("wechatpay-nonce", ""),
            resp.body.decode("utf-8", "replace")), self.key)
        if not hmac.compare_digest(expected, h.get("wechatpay-signature", "")):
            raise FetchFailed("WeChat Pay answer signature does not verify: wrong key or"
                              " tampered answer")

    def _check_hash(self, data: bytes, meta: dict, what: str) -> None:
        if str(meta["hash_type"]).upper() != "SHA1":
            raise FetchFailed(f"{what}: unsupported hash_type {meta['hash_type']!r}")
        plain = data
        if self.tar_type == "GZIP":
            try:
                plain = gzip.decompress(data)
            except (OSError, EOFError, zlib.error) as exc:
                raise FetchFailed(f"{what}: download is not a valid gzip file: {exc}") from exc
        actual = hashlib.sha1(plain).hexdigest()
        if actual != str(meta["hash_value"]).lower():
            raise FetchFailed(f"{what}: SHA1 of the bill is {actual}, WeChat Pay announced"
                              f" {meta['hash_value']}: incomplete or altered download")
