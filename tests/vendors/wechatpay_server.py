"""WeChat Pay API v3 bill endpoints, as documented:
- GET /v3/bill/tradebill?bill_date=&bill_type=ALL|SUCCESS|REFUND[&tar_type=GZIP] and
  GET /v3/bill/fundflowbill?bill_date=&account_type=BASIC|OPERATION|FEES[&tar_type=GZIP]
  answer {"download_url", "hash_type": "SHA1", "hash_value"} (hash of the plain bill), signed
  in Wechatpay-Timestamp/-Nonce/-Signature headers; 400 STATEMENT_CREATING while the bill is
  being generated, 400 NO_STATEMENT_EXIST when there is none, 401 SIGN_ERROR for a bad
  Authorization, 400 PARAM_ERROR for bad parameters, 500 SYSTEM_ERROR;
- GET /v3/billdownload/file?token=... (signed request, unsigned answer) serves the bill, gzip
  when asked, while the link is valid; 400 INVALID_REQUEST after ("apply again").
Signatures are the placeholder HMAC-SHA256 over the v3 message (real RSA comes later),
recomputed here independently of the connector.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import re
import secrets
import time

from tests.vendors import Reply, Request, VendorServer

BILL_TYPES = {"ALL", "SUCCESS", "REFUND"}
ACCOUNT_TYPES = {"BASIC", "OPERATION", "FEES"}


def _hmac(key: bytes, text: str) -> str:
    return base64.b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest()).decode()


def _error(status: int, code: str, message: str) -> Reply:
    body = json.dumps({"code": code, "message": message}, ensure_ascii=False).encode()
    return Reply(status, body, {"Content-Type": "application/json"})


class WeChatPayServer(VendorServer):
    def __init__(self, *, mchid: str = "1900000001", sign_key: bytes = b"wechat-test-key",
                 link_ttl: float = 30.0):
        super().__init__()
        self.mchid = mchid
        self.sign_key = sign_key
        self.link_ttl = link_ttl
        self.trade_bills: dict[tuple[str, str], bytes] = {}  # (date, bill_type) -> csv
        self.fund_bills: dict[tuple[str, str], bytes] = {}  # (date, account_type) -> csv
        self.creating_calls = 0  # the first N valid applies answer STATEMENT_CREATING
        self.fail_calls = 0  # the first N applies answer 500 SYSTEM_ERROR
        self.fail_downloads = 0  # the first N downloads answer 500
        self.expire_links = 0  # the first N links are issued already expired
        self.damage_download = False  # serve a truncated bill (hash will not match)
        self.bad_response_signature = False
        self.apply_calls = self.applies = self.downloads = self.links_issued = 0
        self.links: dict[str, tuple[bytes, bool, float]] = {}  # token -> (bill, gzip, expires)

    def handle(self, req: Request) -> Reply:
        if req.method != "GET":
            return _error(405, "METHOD_NOT_ALLOWED", "only GET")
        if req.path in ("/v3/bill/tradebill", "/v3/bill/fundflowbill"):
            return self._apply(req)
        if req.path == "/v3/billdownload/file":
            return self._download(req)
        return _error(404, "RESOURCE_NOT_EXISTS", "no such resource")

    def _authorized(self, req: Request) -> bool:
        scheme, _, fields = req.headers.get("authorization", "").partition(" ")
        values = dict(re.findall(r'(\w+)="([^"]*)"', fields))
        if scheme != "TALLY-HMAC-SHA256" or values.get("mchid") != self.mchid:
            return False
        message = f"GET\n{req.target}\n{values.get('timestamp')}\n{values.get('nonce_str')}\n\n"
        return hmac.compare_digest(_hmac(self.sign_key, message), values.get("signature", ""))

    def _apply(self, req: Request) -> Reply:
        self.apply_calls += 1
        if self.apply_calls <= self.fail_calls:
            return _error(500, "SYSTEM_ERROR", "系统错误")
        if not self._authorized(req):
            return _error(401, "SIGN_ERROR", "签名错误")
        q = req.query
        if req.path.endswith("tradebill"):
            kind, bills, types = q.get("bill_type", "ALL"), self.trade_bills, BILL_TYPES
        else:
            kind, bills, types = q.get("account_type", "BASIC"), self.fund_bills, ACCOUNT_TYPES
        tar = q.get("tar_type")
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", q.get("bill_date", "")) or kind not in types \
                or tar not in (None, "GZIP"):
            return _error(400, "PARAM_ERROR", "参数错误")
        self.applies += 1
        if self.applies <= self.creating_calls:
            return _error(400, "STATEMENT_CREATING", "账单生成中")
        bill = bills.get((q["bill_date"], kind))
        if bill is None:
            return _error(400, "NO_STATEMENT_EXIST", "请求的账单文件不存在")
        self.links_issued += 1
        token = secrets.token_urlsafe(24)
        expires = time.monotonic() + (-1 if self.links_issued <= self.expire_links
                                      else self.link_ttl)
        self.links[token] = (bill, tar == "GZIP", expires)
        body = json.dumps({"download_url": f"{self.url}/v3/billdownload/file?token={token}",
                           "hash_type": "SHA1",
                           "hash_value": hashlib.sha1(bill).hexdigest()}).encode()
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        key = b"not-the-key" if self.bad_response_signature else self.sign_key
        return Reply(200, body, {
            "Content-Type": "application/json", "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce, "Wechatpay-Serial": "PLATFORM-SERIAL-TEST",
            "Wechatpay-Signature": _hmac(key, f"{timestamp}\n{nonce}\n{body.decode()}\n")})

    def _download(self, req: Request) -> Reply:
        self.downloads += 1
        if self.downloads <= self.fail_downloads:
            return _error(500, "SYSTEM_ERROR", "系统错误")
        if not self._authorized(req):
            return _error(401, "SIGN_ERROR", "签名错误")
        link = self.links.get(req.query.get("token", ""))
        if link is None or time.monotonic() > link[2]:
            return _error(400, "INVALID_REQUEST", "下载地址已失效，请重新申请账单获取下载地址")
        bill, gzipped, _ = link
        if self.damage_download:
            bill = bill[:-1]
        data = gzip.compress(bill, mtime=0) if gzipped else bill
        return Reply(200, data, {"Content-Type": "application/octet-stream"})
