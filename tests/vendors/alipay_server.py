"""Alipay's open-platform gateway and bill download host, as documented for
alipay.data.dataservice.bill.downloadurl.query:
- POST /gateway.do (form-encoded common parameters + biz_content) answers HTTP 200 with JSON
  {"alipay_data_dataservice_bill_downloadurl_query_response": {...}, "sign": "..."};
  code 10000 with bill_download_url, 40004 isp.bill_not_exist while there is no bill,
  40002 isv.invalid-signature for a bad sign, 40002 for bad arguments;
- GET /downloadBillFile.resource?...&downloadFileName=<PID>0156_<yyyyMMdd>.csv.zip&token=...
  serves the zip while the link is valid (link_ttl seconds, 30 by default), an error after.
The sign is the placeholder HMAC-SHA256 over the sorted parameters (real RSA2 comes later);
it is recomputed here independently of the connector.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from urllib.parse import parse_qsl, urlencode

from tests.vendors import Reply, Request, VendorServer

NODE = "alipay_data_dataservice_bill_downloadurl_query_response"
REQUIRED = ("app_id", "method", "charset", "sign_type", "timestamp", "version", "biz_content")


def _hmac(key: bytes, text: str) -> str:
    return base64.b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest()).decode()


class AlipayServer(VendorServer):
    def __init__(self, *, app_id: str = "2021000000000001", pid: str = "2088000000000001",
                 sign_key: bytes = b"alipay-test-key", link_ttl: float = 30.0):
        super().__init__()
        self.app_id = app_id
        self.pid = pid
        self.sign_key = sign_key
        self.link_ttl = link_ttl
        self.bills: dict[str, bytes] = {}  # "yyyy-MM-dd" -> the trade bill zip
        self.not_ready_calls = 0  # the first N valid queries answer isp.bill_not_exist
        self.fail_calls = 0  # the first N gateway calls answer HTTP 500
        self.fail_downloads = 0  # the first N downloads answer HTTP 500
        self.expire_links = 0  # the first N links are issued already expired (slow client)
        self.bad_response_sign = False
        self.gateway_calls = self.queries = self.downloads = self.links_issued = 0
        self.links: dict[str, tuple[str, float]] = {}  # token -> (bill_date, expires at)

    def handle(self, req: Request) -> Reply:
        if req.method == "POST" and req.path == "/gateway.do":
            return self._gateway(req)
        if req.method == "GET" and req.path == "/downloadBillFile.resource":
            return self._download(req)
        return Reply(404, b"not found")

    def _gateway(self, req: Request) -> Reply:
        self.gateway_calls += 1
        if self.gateway_calls <= self.fail_calls:
            return Reply(500, b"<html>502 Bad Gateway</html>", {"Content-Type": "text/html"})
        params = {**req.query, **dict(parse_qsl(req.body.decode(), keep_blank_values=True))}
        missing = [k for k in REQUIRED if not params.get(k)]
        if missing or params.get("sign_type") != "RSA2":
            return self._answer("40001", "Missing Required Arguments", "isv.missing-parameter",
                                f"missing or wrong: {missing or ['sign_type']}")
        content = "&".join(f"{k}={params[k]}" for k in sorted(params)
                           if k != "sign" and params[k] != "")
        if not hmac.compare_digest(_hmac(self.sign_key, content), params.get("sign", "")):
            return self._answer("40002", "Invalid Arguments", "isv.invalid-signature", "无效签名")
        if params["app_id"] != self.app_id:
            return self._answer("40002", "Invalid Arguments", "isv.invalid-app-id", "无效AppID")
        if params["method"] != "alipay.data.dataservice.bill.downloadurl.query":
            return self._answer("40002", "Invalid Arguments", "isv.invalid-method", "无效方法名")
        biz = json.loads(params["biz_content"])
        if biz.get("bill_type") != "trade" or len(biz.get("bill_date", "")) != 10:
            return self._answer("40004", "Business Failed", "isv.invalid-arguments", "参数不合法")
        self.queries += 1
        day = biz["bill_date"]
        if self.queries <= self.not_ready_calls or day not in self.bills:
            return self._answer("40004", "Business Failed", "isp.bill_not_exist", "账单不存在")
        self.links_issued += 1
        token = secrets.token_urlsafe(16)
        expires = time.monotonic() + (-1 if self.links_issued <= self.expire_links
                                      else self.link_ttl)
        self.links[token] = (day, expires)
        compact = day.replace("-", "")
        user = f"{self.pid}0156"
        link = f"{self.url}/downloadBillFile.resource?" + urlencode({
            "bizType": "trade", "userId": user, "fileType": "csv.zip", "bizDates": compact,
            "downloadFileName": f"{user}_{compact}.csv.zip", "fileId": f"/trade/{user}/{compact}",
            "timestamp": str(int(time.time())), "token": token})
        return self._answer("10000", "Success", bill_download_url=link)

    def _answer(self, code: str, msg: str, sub_code: str = "", sub_msg: str = "",
                **fields) -> Reply:
        node = {"code": code, "msg": msg, **fields}
        if sub_code:
            node.update(sub_code=sub_code, sub_msg=sub_msg)
        node_text = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
        sign = _hmac(b"not-the-key" if self.bad_response_sign else self.sign_key, node_text)
        body = f'{{"{NODE}":{node_text},"sign":"{sign}"}}'
        return Reply(200, body.encode(), {"Content-Type": "application/json;charset=utf-8"})

    def _download(self, req: Request) -> Reply:
        self.downloads += 1
        if self.downloads <= self.fail_downloads:
            return Reply(500, b"server error")
        day, expires = self.links.get(req.query.get("token", ""), ("", 0.0))
        if not day or time.monotonic() > expires:
            return Reply(403, "下载超时，请重新下载".encode(),
                         {"Content-Type": "text/html;charset=utf-8"})
        return Reply(200, self.bills[day], {
            "Content-Type": "application/oct-stream",
            "Content-Disposition": f'attachment; filename="{req.query["downloadFileName"]}"'})
