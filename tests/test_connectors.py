"""Connectors against local servers that play the channels as documented, and the inbox on a
local folder and on the real (test) S3 server."""

from __future__ import annotations

import gzip
import io
import json
import time
import uuid
import zipfile
from datetime import date
from urllib.parse import parse_qsl

import pytest

from tally import storage
from tally.connectors import (
    Fetched,
    FetchFailed,
    NoStatement,
    NotReady,
    Retry,
    Transient,
    fetch_when_ready,
    request,
    with_retries,
)
from tally.connectors.alipay import AlipayConnector
from tally.connectors.bank_api import BankStatementConnector
from tally.connectors.inbox import LocalInbox, S3Inbox
from tally.connectors.wechatpay import WeChatPayConnector
from tests.vendors.alipay_server import AlipayServer
from tests.vendors.bank_server import BankServer
from tests.vendors.wechatpay_server import WeChatPayServer

DAY = date(2026, 11, 20)
FAST = Retry(attempts=3, max_seconds=5.0, delay=0.01, max_delay=0.05)
POLL = {"interval": 0.01, "max_polls": 5, "max_seconds": 5.0}


def alipay_zip(day: date) -> bytes:
    """A bill zip shaped like Alipay's: detail and summary CSVs in GBK."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"20880000000000010156_{day:%Y%m%d}_业务明细.csv",
                   "#支付宝业务明细查询\n支付宝交易号,商户订单号,订单金额（元）\n"
                   "2026112022001,T1,12.50\n".encode("gb18030"))
        z.writestr(f"20880000000000010156_{day:%Y%m%d}_业务明细(汇总).csv",
                   "#支付宝业务汇总查询\n交易笔数,订单金额（元）\n1,12.50\n".encode("gb18030"))
    return buf.getvalue()


WECHAT_BILL = ("交易时间,公众账号ID,商户号,微信订单号,商户订单号,订单金额\n"
               "`2026-11-20 10:00:00,`wx01,`1900000001,`4200001,`T1,`12.50\n"
               "总交易单数,应结订单总金额\n`1,`12.50\n").encode()
CAMT = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="urn:iso:std:iso:20022:'
        b'tech:xsd:camt.053.001.02"><BkToCstmrStmt/></Document>\n')


# --- the common helpers -------------------------------------------------------------------

class FakeTime:
    """A clock that only moves when slept on, so bounds are tested without waiting."""

    def __init__(self):
        self.now, self.waits = 0.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def test_retries_stop_at_the_attempt_bound_naming_the_last_error():
    calls, t = [], FakeTime()

    def flaky():
        calls.append(1)
        raise Transient(f"HTTP 503 number {len(calls)}")

    with pytest.raises(FetchFailed, match="after 3 attempt.*HTTP 503 number 3"):
        with_retries(flaky, "statement", Retry(attempts=3, delay=1.0, max_delay=10.0),
                     sleep=t.sleep, clock=t.clock)
    assert len(calls) == 3
    assert t.waits == [1.0, 2.0]  # doubling backoff, no wait after the last attempt


def test_retries_stop_at_the_time_bound_and_succeed_within_it():
    def timeout():
        raise Transient("timeout", retry_after=5.0)

    t = FakeTime()
    with pytest.raises(FetchFailed, match="after 3 attempt.*in 10.0s.*timeout"):
        with_retries(timeout, "x", Retry(attempts=10, max_seconds=12.0, delay=1.0),
                     sleep=t.sleep, clock=t.clock)
    assert t.waits == [5.0, 5.0]  # the server's Retry-After; a third wait would pass 12 s

    answers = iter([Transient("reset"), "ok"])

    def once_flaky():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert with_retries(once_flaky, "x", FAST) == "ok"


def test_retries_do_not_retry_permanent_errors():
    calls = []

    def refused():
        calls.append(1)
        raise FetchFailed("unknown account")

    with pytest.raises(FetchFailed, match="unknown account"):
        with_retries(refused, "x", FAST)
    assert len(calls) == 1


def test_polling_is_bounded_in_count_and_time_and_keeps_the_not_ready_state():
    calls = []

    def never():
        calls.append(1)
        raise NotReady("bill being generated")

    with pytest.raises(NotReady, match="after 4 poll.*bill being generated"):
        fetch_when_ready(never, interval=0.0, max_polls=4, max_seconds=5.0)
    assert len(calls) == 4

    t = FakeTime()
    with pytest.raises(NotReady, match="after 3 poll"):
        fetch_when_ready(never, interval=60.0, max_polls=100, max_seconds=150.0,
                         sleep=t.sleep, clock=t.clock)
    assert t.waits == [60.0, 60.0]  # a third wait would pass 150 s


# --- Alipay -------------------------------------------------------------------------------

@pytest.fixture
def alipay():
    with AlipayServer() as server:
        server.bills[DAY.isoformat()] = alipay_zip(DAY)
        yield server


def alipay_connector(server: AlipayServer, **kw) -> AlipayConnector:
    return AlipayConnector(gateway_url=f"{server.url}/gateway.do", app_id=server.app_id,
                           sign_key=kw.pop("sign_key", server.sign_key), retry=FAST, **kw)


def test_alipay_fetches_the_bill_zip_as_alipay_names_it(alipay):
    fetched = alipay_connector(alipay).fetch(DAY)
    assert fetched.data == alipay.bills[DAY.isoformat()]
    assert fetched.file_name == f"{alipay.pid}0156_20261120.csv.zip"
    assert (fetched.source, fetched.business_date) == ("alipay_bill", DAY)
    assert zipfile.ZipFile(io.BytesIO(fetched.data)).namelist()[0].endswith("业务明细.csv")

    query = dict(parse_qsl(alipay.requests[0].body.decode()))
    assert query["method"] == "alipay.data.dataservice.bill.downloadurl.query"
    assert json.loads(query["biz_content"]) == {"bill_type": "trade",
                                                "bill_date": "2026-11-20"}
    assert (query["sign_type"], query["charset"], query["version"]) == ("RSA2", "utf-8", "1.0")
    time.strptime(query["timestamp"], "%Y-%m-%d %H:%M:%S")
    assert (alipay.queries, alipay.downloads) == (1, 1)


def test_alipay_not_ready_then_polled_until_ready(alipay):
    alipay.not_ready_calls = 2
    connector = alipay_connector(alipay)
    with pytest.raises(NotReady, match="isp.bill_not_exist"):
        connector.fetch(DAY)
    fetched = fetch_when_ready(lambda: connector.fetch(DAY), **POLL)
    assert fetched.data == alipay.bills[DAY.isoformat()]
    assert alipay.queries == 3

    # A day Alipay never produces: the wait ends, bounded, still NotReady.
    with pytest.raises(NotReady, match="after 5 poll"):
        fetch_when_ready(lambda: connector.fetch(date(2026, 11, 21)), **POLL)
    assert alipay.queries == 8


def test_alipay_expired_link_is_asked_again_within_a_bound(alipay):
    alipay.expire_links = 1
    fetched = alipay_connector(alipay).fetch(DAY)
    assert fetched.data == alipay.bills[DAY.isoformat()]
    assert (alipay.queries, alipay.downloads) == (2, 2)

    alipay.expire_links = 100
    with pytest.raises(FetchFailed, match="refused 3 time.*HTTP 403.*下载超时"):
        alipay_connector(alipay, link_attempts=3).fetch(DAY)
    assert alipay.queries == 2 + 3


def test_alipay_link_validity_is_played_in_real_time(alipay):
    alipay.link_ttl = 0.2
    connector = alipay_connector(alipay)
    url = connector.download_url(DAY)
    assert request("GET", url).status == 200
    time.sleep(0.3)
    assert request("GET", url).status == 403


def test_alipay_server_errors_are_retried_then_fail_clearly(alipay):
    alipay.fail_calls, alipay.fail_downloads = 2, 1
    assert alipay_connector(alipay).fetch(DAY).data == alipay.bills[DAY.isoformat()]
    assert (alipay.gateway_calls, alipay.downloads) == (3, 2)

    alipay.fail_calls = alipay.gateway_calls + 100
    with pytest.raises(FetchFailed, match="after 3 attempt.*HTTP 500"):
        alipay_connector(alipay).fetch(DAY)
    assert alipay.gateway_calls == 3 + 3


def test_alipay_wrong_key_or_forged_answer_fails(alipay):
    with pytest.raises(FetchFailed, match="isv.invalid-signature"):
        alipay_connector(alipay, sign_key=b"another key").fetch(DAY)
    assert alipay.downloads == 0

    alipay.bad_response_sign = True
    with pytest.raises(FetchFailed, match="signature does not verify"):
        alipay_connector(alipay).fetch(DAY)
    assert alipay.downloads == 0


def test_connectors_ignore_proxy_settings_in_the_environment(alipay, monkeypatch):
    # A proxy variable must not redirect (or break) the traffic: nothing is read from there.
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    assert alipay_connector(alipay).fetch(DAY).data == alipay.bills[DAY.isoformat()]


# --- WeChat Pay ---------------------------------------------------------------------------

@pytest.fixture
def wechat():
    with WeChatPayServer() as server:
        server.trade_bills[(DAY.isoformat(), "ALL")] = WECHAT_BILL
        yield server


def wechat_connector(server: WeChatPayServer, **kw) -> WeChatPayConnector:
    return WeChatPayConnector(base_url=server.url, mchid=server.mchid, serial_no="SERIAL1",
                              sign_key=kw.pop("sign_key", server.sign_key), retry=FAST, **kw)


def test_wechat_trade_bill_gzip_is_kept_as_downloaded_and_hash_checked(wechat):
    fetched = wechat_connector(wechat).trade_bill(DAY)
    assert gzip.decompress(fetched.data) == WECHAT_BILL
    assert fetched.data[:2] == b"\x1f\x8b"  # the gzip bytes themselves, as received
    assert fetched.file_name == "1900000001_tradebill_ALL_20261120.csv.gz"
    assert fetched.source == "wechatpay_bill"
    apply = wechat.requests[0]
    assert apply.path == "/v3/bill/tradebill"
    assert apply.query == {"bill_date": "2026-11-20", "bill_type": "ALL", "tar_type": "GZIP"}
    assert apply.headers["authorization"].startswith('TALLY-HMAC-SHA256 mchid="1900000001"')


def test_wechat_fund_flow_bill_plain(wechat):
    wechat.fund_bills[(DAY.isoformat(), "BASIC")] = b"fund flow bill\n"
    fetched = wechat_connector(wechat, tar_type=None).fund_flow_bill(DAY)
    assert fetched.data == b"fund flow bill\n"
    assert fetched.file_name == "1900000001_fundflowbill_BASIC_20261120.csv"
    assert fetched.source == "wechatpay_fund_bill"
    assert wechat.requests[0].query == {"bill_date": "2026-11-20", "account_type": "BASIC"}


def test_wechat_statement_creating_is_not_ready_then_polled(wechat):
    wechat.creating_calls = 2
    connector = wechat_connector(wechat)
    with pytest.raises(NotReady, match="STATEMENT_CREATING"):
        connector.trade_bill(DAY)
    fetched = fetch_when_ready(lambda: connector.trade_bill(DAY), **POLL)
    assert gzip.decompress(fetched.data) == WECHAT_BILL
    assert wechat.applies == 3


def test_wechat_no_statement_is_final_not_waited_for(wechat):
    connector = wechat_connector(wechat)
    with pytest.raises(NoStatement, match="NO_STATEMENT_EXIST"):
        fetch_when_ready(lambda: connector.trade_bill(date(2026, 11, 21)), **POLL)
    assert wechat.applies == 1
    assert issubclass(NoStatement, FetchFailed)


def test_wechat_expired_link_applies_again_within_a_bound(wechat):
    wechat.expire_links = 1
    assert gzip.decompress(wechat_connector(wechat).trade_bill(DAY).data) == WECHAT_BILL
    assert (wechat.applies, wechat.downloads) == (2, 2)

    wechat.expire_links = 100
    with pytest.raises(FetchFailed, match="refused 2 time.*INVALID_REQUEST"):
        wechat_connector(wechat, link_attempts=2).trade_bill(DAY)
    assert wechat.applies == 2 + 2


def test_wechat_server_errors_are_retried_then_fail_clearly(wechat):
    wechat.fail_calls, wechat.fail_downloads = 2, 2
    assert gzip.decompress(wechat_connector(wechat).trade_bill(DAY).data) == WECHAT_BILL
    assert (wechat.apply_calls, wechat.downloads) == (3, 3)

    wechat.fail_downloads = wechat.downloads + 100
    with pytest.raises(FetchFailed, match="download failed after 3 attempt.*SYSTEM_ERROR"):
        wechat_connector(wechat).trade_bill(DAY)


def test_wechat_wrong_signature_or_hash_fails(wechat):
    with pytest.raises(FetchFailed, match="401 SIGN_ERROR"):
        wechat_connector(wechat, sign_key=b"another key").trade_bill(DAY)

    wechat.bad_response_signature = True
    with pytest.raises(FetchFailed, match="signature does not verify"):
        wechat_connector(wechat).trade_bill(DAY)
    wechat.bad_response_signature = False

    wechat.damage_download = True
    for tar_type in ("GZIP", None):
        with pytest.raises(FetchFailed, match="SHA1 of the bill"):
            wechat_connector(wechat, tar_type=tar_type).trade_bill(DAY)


# --- bank statement API -------------------------------------------------------------------

@pytest.fixture
def bank():
    with BankServer() as server:
        server.statements[("CN0001", DAY.isoformat())] = CAMT
        yield server


def bank_connector(server: BankServer, **kw) -> BankStatementConnector:
    return BankStatementConnector(base_url=server.url, token=kw.pop("token", server.token),
                                  account=kw.pop("account", "CN0001"), retry=FAST, **kw)


def test_bank_statement_is_fetched_with_the_banks_file_name(bank):
    fetched = bank_connector(bank).fetch(DAY)
    assert fetched == Fetched("bank_camt053", DAY, "camt053_CN0001_20261120.xml", CAMT,
                              origin=f"{bank.url}/statements")
    assert bank.requests[0].query == {"account": "CN0001", "date": "2026-11-20"}
    assert bank.requests[0].headers["accept"] == "application/xml"


def test_bank_202_is_not_ready_with_retry_after_then_polled(bank):
    bank.not_ready_calls, bank.retry_after = 2, "7"
    with pytest.raises(NotReady) as caught:
        bank_connector(bank).fetch(DAY)
    assert caught.value.retry_after == 7.0
    bank.retry_after = "0"
    assert fetch_when_ready(lambda: bank_connector(bank).fetch(DAY), **POLL).data == CAMT
    assert bank.valid_calls == 3


def test_bank_server_errors_retried_unknown_account_and_bad_token_fail(bank):
    bank.fail_calls = 2
    assert bank_connector(bank).fetch(DAY).data == CAMT
    assert bank.calls_seen == 3

    bank.fail_calls = bank.calls_seen + 100
    with pytest.raises(FetchFailed, match="after 3 attempt.*HTTP 500"):
        bank_connector(bank).fetch(DAY)
    bank.fail_calls = 0

    seen = bank.calls_seen
    with pytest.raises(FetchFailed, match="does not know the account.*CN0404"):
        bank_connector(bank, account="CN0404").fetch(DAY)
    with pytest.raises(FetchFailed, match="credentials refused"):
        bank_connector(bank, token="wrong").fetch(DAY)
    assert bank.calls_seen == seen + 2  # permanent answers are not retried


# --- inbox --------------------------------------------------------------------------------

def test_local_inbox_hands_out_each_file_once_without_touching_it(tmp_path):
    folder = tmp_path / "alipay" / DAY.isoformat()
    folder.mkdir(parents=True)
    (folder / "a.csv.zip").write_bytes(b"first")
    (folder / "b.csv.zip").write_bytes(b"second")
    (folder / ".c.csv.zip.part").write_bytes(b"still being written")
    (folder / "sub").mkdir()
    inbox = LocalInbox(tmp_path)

    assert [f.name for f in inbox.pending("alipay", DAY)] == ["a.csv.zip", "b.csv.zip"]
    assert inbox.pending("alipay", date(2026, 11, 21)) == []

    landed = []

    def fail_on_b(fetched):
        if fetched.file_name == "b.csv.zip":
            raise RuntimeError("landing failed")
        landed.append(fetched)

    with pytest.raises(RuntimeError):
        inbox.collect("alipay", DAY, fail_on_b)
    # a was handled and marked; b was not marked, so it is handed out again.
    assert [f.name for f in inbox.pending("alipay", DAY)] == ["b.csv.zip"]
    got = inbox.collect("alipay", DAY, landed.append)
    assert [(f.file_name, f.data) for f in got] == [("b.csv.zip", b"second")]
    assert [f.file_name for f in landed] == ["a.csv.zip", "b.csv.zip"]
    assert inbox.pending("alipay", DAY) == []

    # The drop is left as it was.
    assert (folder / "a.csv.zip").read_bytes() == b"first"
    assert (folder / "b.csv.zip").read_bytes() == b"second"
    assert sorted(p.name for p in folder.iterdir()) == [".c.csv.zip.part", "a.csv.zip",
                                                         "b.csv.zip", "sub"]

    # A file replaced under the same name is new content: handed out again.
    (folder / "a.csv.zip").write_bytes(b"corrected")
    [again] = inbox.pending("alipay", DAY)
    assert inbox.fetch(again).data == b"corrected"
    assert inbox.mark(again, inbox.fetch(again)) is True
    assert inbox.mark(again, inbox.fetch(again)) is False  # a second claim is refused

    with pytest.raises(ValueError):
        inbox.pending("../etc", DAY)


def test_s3_inbox_hands_out_each_object_once_without_touching_it(s3):
    bucket, prefix = "tally-connectors-test", f"run-{uuid.uuid4().hex}/inbox/"
    storage.ensure_bucket(s3, bucket)
    folder = f"{prefix}wechatpay/{DAY.isoformat()}/"
    s3.put_object(Bucket=bucket, Key=folder + "trade.csv.gz", Body=b"trade")
    s3.put_object(Bucket=bucket, Key=folder + "fund.csv.gz", Body=b"fund")
    s3.put_object(Bucket=bucket, Key=folder + ".upload.tmp", Body=b"partial")
    s3.put_object(Bucket=bucket, Key=f"{prefix}wechatpay/2026-11-21/other.csv", Body=b"x")
    inbox = S3Inbox(s3, bucket, prefix)
    try:
        assert [f.name for f in inbox.pending("wechatpay", DAY)] == ["fund.csv.gz",
                                                                     "trade.csv.gz"]
        landed = []
        got = inbox.collect("wechatpay", DAY, landed.append)
        assert [(f.file_name, f.data) for f in got] == [("fund.csv.gz", b"fund"),
                                                        ("trade.csv.gz", b"trade")]
        assert landed == got
        assert inbox.pending("wechatpay", DAY) == []
        assert inbox.collect("wechatpay", DAY, landed.append) == []

        # Objects untouched; one marker per picked object, outside the day's folder.
        assert storage.get_bytes(s3, bucket, folder + "trade.csv.gz") == b"trade"
        assert sorted(storage.list_keys(s3, bucket, folder)) == [
            folder + ".upload.tmp", folder + "fund.csv.gz", folder + "trade.csv.gz"]
        markers = storage.list_keys(s3, bucket, f"{prefix}.picked/")
        assert len(markers) == 2
        marker = json.loads(storage.get_bytes(s3, bucket, sorted(markers)[0]))
        assert marker["key"] == folder + "fund.csv.gz" and marker["size"] == 4

        # New content under the same key is handed out again.
        s3.put_object(Bucket=bucket, Key=folder + "trade.csv.gz", Body=b"trade, corrected")
        [again] = inbox.pending("wechatpay", DAY)
        fetched = inbox.fetch(again)
        assert fetched.data == b"trade, corrected"
        assert inbox.mark(again, fetched) is True
        assert inbox.mark(again, fetched) is False
        assert inbox.pending("wechatpay", DAY) == []
    finally:
        # The test's own clean-up of its own prefix (Tally itself never deletes).
        for key in storage.list_keys(s3, bucket, prefix):
            s3.delete_object(Bucket=bucket, Key=key)
