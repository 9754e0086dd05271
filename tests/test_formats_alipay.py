"""Alipay bills: the merchant bill zip (业务明细, 汇总, 账务明细), the account bill and the personal
export; rendered sample bills read back exactly, and broken ones are refused by name."""

import io
import re
import zipfile
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tally import config, formats, money, sources
from tally.devtools.samples import alipay

SETTINGS = config.load()
SAMPLES = SETTINGS.project_dir.parent / "shared" / "samples" / "alipay"
DAY = date(2026, 11, 20)
PID = "2088123456789012"


def load(source: str):
    return sources.parse_config(
        Path(SETTINGS.include_dir, "sources", f"{source}.yaml").read_text(encoding="utf-8"))


BILL, ACCOUNT_BILL, PERSONAL = load("alipay_bill"), load("alipay_account_bill"), load(
    "alipay_personal")


def random_trades(n: int, seed: int = 20261120) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    created = (np.datetime64("2026-11-20T00:00:00")
               + rng.integers(0, 86_000, n).astype("timedelta64[s]"))
    refund = rng.random(n) < 0.1
    ids = np.arange(n).astype(str)
    return pd.DataFrame({
        "channel_txn_no": np.char.add("2026112022001", np.char.zfill(ids, 15)),
        "merchant_order_no": np.char.add("M20261120", np.char.zfill(rng.permutation(n).astype(str),
                                                                   9)),
        "created_at": created,
        "completed_at": created + rng.integers(1, 300, n).astype("timedelta64[s]"),
        "kind": np.where(refund, "refund", "payment"),
        "refund_no": np.where(refund, np.char.add("R", ids), ""),
        "amount_minor": rng.integers(1, 2_000_000, n).astype("int64"),
        "fee_minor": np.where(refund, 0, rng.integers(0, 5_000, n)).astype("int64"),
        "merchant_id": "alipay-merchant-01",
    })


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def rezip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def edit(content: bytes, pattern: str, replacement: str) -> bytes:
    text, count = re.subn(pattern, replacement, content.decode("gbk"), count=1, flags=re.M)
    assert count == 1, pattern
    return text.encode("gbk")


def line_of(content: bytes, prefix: str) -> int:
    lines = content.decode("gbk").split("\r\n")
    return next(i for i, line in enumerate(lines, 1) if line.startswith(prefix))


@pytest.fixture(scope="module")
def rendered():
    trades = random_trades(2000)
    name, data = alipay.render_bill_zip(trades, DAY, PID)
    return trades, name, data


def detail_name(files) -> str:
    return next(n for n in files if n.endswith("_业务明细.csv"))


def test_rendered_bill_zip_reads_back_exactly(rendered):
    trades, name, data = rendered
    assert name == f"{PID}0156_20261120.csv.zip"
    parsed = formats.parse(data, BILL, name)
    rows = parsed.rows
    refund = trades["kind"].eq("refund")
    signed = trades["amount_minor"].where(~refund, -trades["amount_minor"])
    assert len(rows) == len(trades) == 2000
    assert rows["channel_txn_no"].tolist() == trades["channel_txn_no"].tolist()
    assert rows["merchant_order_no"].tolist() == trades["merchant_order_no"].tolist()
    assert rows["kind"].tolist() == trades["kind"].tolist()
    assert rows["refund_no"].tolist() == trades["refund_no"].tolist()
    assert rows["amount_minor"].tolist() == signed.tolist()  # refunds negative, as printed
    assert rows["settlement_amount_minor"].tolist() == signed.tolist()
    assert rows["fee_minor"].tolist() == trades["fee_minor"].tolist()
    assert rows["created_at"].tolist() == trades["created_at"].dt.strftime(
        "%Y-%m-%d %H:%M:%S").tolist()
    assert rows["completed_at"].tolist() == trades["completed_at"].dt.strftime(
        "%Y-%m-%d %H:%M:%S").tolist()
    assert set(rows["merchant_id"]) == {f"{PID}0156"} and set(rows["currency"]) == {"CNY"}
    assert rows["line_no"].tolist() == list(range(6, 6 + 2000))  # 4 preamble lines + header
    # Every self-check ran: footers of both members, the summary file and the balance.
    for expected in ("footer 交易合计 count", "footer 退款合计 settlement_amount",
                     "footer 支出合计 expense", "summary 合计 服务费（元）", "balance: "):
        assert any(check.startswith(expected) for check in parsed.checks), expected
    summary = parsed.tables["summary"]
    assert summary["payment_count"].tolist() == [str(int((~refund).sum()))]
    assert summary["fee_minor"].tolist() == [int(trades["fee_minor"].sum())]
    account = parsed.tables["account"]
    assert len(account) == len(trades) + int(trades["fee_minor"].ne(0).sum())
    assert int(account["income_minor"].sum() + account["expense_minor"].sum()) == int(
        account["balance_minor"].iloc[-1])


def test_same_trades_give_the_same_bytes(rendered):
    trades, _, data = rendered
    assert alipay.render_bill_zip(trades, DAY, PID)[1] == data


def test_a_bare_detail_csv_is_read_as_the_bill(rendered):
    trades, _, data = rendered
    files = members(data)
    parsed = formats.parse(files[detail_name(files)], BILL, detail_name(files))
    assert parsed.rows["channel_txn_no"].tolist() == trades["channel_txn_no"].tolist()
    assert parsed.tables == {} and parsed.encoding == "gb18030"


@pytest.mark.parametrize("pattern,replacement,prefix,field", [
    (r"^#交易合计：(\d+)笔", "#交易合计：1笔", "#交易合计", "count"),
    (r"商家实收退款共-", "商家实收退款共-1", "#退款合计", "settlement_amount"),
])
def test_footer_that_does_not_match_the_rows_is_refused_naming_the_line(
        rendered, pattern, replacement, prefix, field):
    _, name, data = rendered
    files = members(data)
    detail = detail_name(files)
    files[detail] = edit(files[detail], pattern, replacement)
    with pytest.raises(formats.FormatError) as caught:
        formats.parse(rezip(files), BILL, name)
    error = caught.value
    assert (error.file_name, error.line, error.field_name) == (
        name, line_of(files[detail], prefix), field)
    assert detail in error.message and "total says" in error.message


def test_summary_file_that_disagrees_with_the_rows_is_refused(rendered):
    _, name, data = rendered
    files = members(data)
    summary = next(n for n in files if n.endswith("(汇总).csv"))
    files[summary] = edit(files[summary], r"^合计,,(\d+),", "合计,,0,")
    with pytest.raises(formats.FormatError) as caught:
        formats.parse(rezip(files), BILL, name)
    assert (caught.value.line, caught.value.field_name) == (
        line_of(files[summary], "合计"), "交易订单总笔数")


def test_account_balance_that_does_not_roll_forward_is_refused(rendered):
    _, name, data = rendered
    files = members(data)
    flow = next(n for n in files if n.endswith("_账务明细.csv"))
    lines = files[flow].decode("gbk").split("\r\n")
    row = next(i for i, line in enumerate(lines) if line.startswith("20261120")) + 100
    cells = lines[row].split(",")
    cells[8] = money.format_minor(money.to_minor(cells[8], "CNY") + 1, "CNY")  # 账户余额 +0.01
    lines[row] = ",".join(cells)
    files[flow] = "\r\n".join(lines).encode("gbk")
    with pytest.raises(formats.FormatError) as caught:
        formats.parse(rezip(files), BILL, name)
    assert (caught.value.line, caught.value.field_name) == (row + 1, "balance")
    assert flow in caught.value.message


def test_non_numeric_amount_names_line_and_field(rendered):
    _, name, data = rendered
    files = members(data)
    detail = detail_name(files)
    lines = files[detail].decode("gbk").split("\r\n")
    cells = lines[9].split(",")  # the fifth row
    cells[11] = "12.x4"  # 订单金额（元）
    lines[9] = ",".join(cells)
    files[detail] = "\r\n".join(lines).encode("gbk")
    with pytest.raises(formats.FormatError) as caught:
        formats.parse(rezip(files), BILL, name)
    assert (caught.value.line, caught.value.field_name) == (10, "amount")
    assert "'12.x4' is not an amount" in str(caught.value)


def test_refund_with_a_positive_amount_is_refused(rendered):
    trades, name, data = rendered
    files = members(data)
    detail = detail_name(files)
    lines = files[detail].decode("gbk").split("\r\n")
    row = 5 + int(np.flatnonzero(trades["kind"].eq("refund"))[0])  # 0-based index of the line
    cells = lines[row].split(",")
    cells[11] = cells[11].removeprefix("-")
    lines[row] = ",".join(cells)
    files[detail] = "\r\n".join(lines).encode("gbk")
    with pytest.raises(formats.FormatError) as caught:
        formats.parse(rezip(files), BILL, name)
    assert (caught.value.line, caught.value.field_name) == (row + 1, "amount")
    assert "wrong sign" in str(caught.value)


def test_empty_file_and_empty_member_are_refused():
    with pytest.raises(formats.FormatError, match="empty file"):
        formats.parse(b"", BILL, "x.csv.zip")
    data = rezip({f"{PID}0156_20261120_业务明细.csv": b""})
    with pytest.raises(formats.FormatError) as caught:
        formats.parse(data, BILL, "x.csv.zip")
    assert "业务明细.csv" in caught.value.message and "empty file" in caught.value.message


@pytest.mark.parametrize("change,named", [
    (lambda f, d: {k: v for k, v in f.items() if k != d}, "业务明细"),  # the detail is missing
    (lambda f, d: {**f, "setup.exe": b"MZ\x90\x00"}, "setup.exe"),
    (lambda f, d: {**f, f"bills/{d}": f[d]}, f"bills/{PID}0156_20261120_业务明细.csv"),
    (lambda f, d: {**f, f"../{d}": f[d]}, f"../{PID}0156_20261120_业务明细.csv"),
    (lambda f, d: {**f, f"{PID}0156_20261121_业务明细.csv": f[d]},  # a second detail file
     f"{PID}0156_20261121_业务明细.csv"),
])
def test_zip_with_unexpected_members_is_refused_naming_the_member(rendered, change, named):
    _, name, data = rendered
    files = members(data)
    with pytest.raises(formats.FormatError) as caught:
        formats.parse(rezip(change(files, detail_name(files))), BILL, name)
    assert named in caught.value.message and caught.value.file_name == name


def test_zip_with_too_many_members_is_refused():
    files = {f"{PID}0156_2026112{i}_note{i}.csv": b"x" for i in range(6)}
    with pytest.raises(formats.FormatError, match="at most 4 expected"):
        formats.parse(rezip(files), BILL, "x.csv.zip")


class GbkNameInfo(zipfile.ZipInfo):
    """A member named in GBK without the UTF-8 flag, as Alipay's zips are."""

    def _encodeFilenameFlags(self):
        return self.filename.encode("gbk"), self.flag_bits


def test_gbk_member_names_without_the_utf8_flag_are_read(rendered):
    trades, name, data = rendered
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, content in members(data).items():
            archive.writestr(GbkNameInfo(member), content)
    assert b"\xd2\xb5\xce\xf1" in buffer.getvalue()  # 业务 in GBK, not UTF-8
    parsed = formats.parse(buffer.getvalue(), BILL, name)
    assert parsed.rows["channel_txn_no"].tolist() == trades["channel_txn_no"].tolist()


def test_account_bill_reads_newest_first_and_checks_its_footers(rendered):
    """The 账务明细 alone (the account bill source), in the newest-first order Alipay lists."""
    _, _, data = rendered
    files = members(data)
    flow = next(n for n in files if n.endswith("_账务明细.csv"))
    lines = files[flow].decode("gbk").split("\r\n")
    body = [i for i, line in enumerate(lines) if line.startswith("20261120")]
    lines[body[0]:body[-1] + 1] = reversed(lines[body[0]:body[-1] + 1])
    parsed = formats.parse("\r\n".join(lines).encode("gbk"), ACCOUNT_BILL, flow)
    rows = parsed.rows
    assert len(rows) == len(body)
    assert rows["occurred_at"].is_monotonic_decreasing
    assert set(rows["direction"]) == {"credit", "debit"}
    assert (rows["expense_minor"] < 0).eq(rows["direction"].eq("debit")).all()
    assert any(c.startswith("balance: ") for c in parsed.checks)
    assert any(c.startswith("footer 收入合计 income") for c in parsed.checks)


def test_personal_export_sample_parses():
    path = SAMPLES / "deg-alipay-personal-records.gbk.csv"
    parsed = formats.parse(path.read_bytes(), PERSONAL, path.name)
    rows = parsed.rows
    text = path.read_bytes().decode("gb18030").split("\n")
    header = next(i for i, line in enumerate(text, 1) if line.startswith("交易时间"))
    data_lines = [i for i, line in enumerate(text, 1) if i > header and line.strip()]
    assert rows["line_no"].tolist() == data_lines
    first = rows.iloc[0]
    assert (first["trade_time"], first["flow"], first["amount_minor"]) == (
        "2023-02-12 21:32:14", "支出", 4974)
    assert first["channel_txn_no"] == "202302xxxxxx0011000103xxxxxx"  # padding and TAB gone
    assert rows.loc[rows["flow"].eq("收入"), "amount_minor"].tolist() == [22222850]


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_quote_free_rows_read_by_the_fast_reader_equal_the_csv_modules_reading(delimiter):
    """Bills without quotes are split by pandas' C reader; the csv module reads the rest. On
    the same quote-free lines both give the same cells, lines and cell counts: blank lines and
    all-blank records skipped, short rows padded, trailing delimiters counted, spaces kept."""
    from tally.formats import alipay_bill

    rows = ["2026112022001,  商品A ,100.00,", "", "2026112022002,B,-5.5", ",, ,",
            "2026112022003 ,C,0.01,,", "   ", "x"]
    lines = [row.replace(",", delimiter) for row in rows]
    fast = alipay_bill.read_records(lines, 10, delimiter, "bill.csv")
    exact = alipay_bill._read_quoted(lines, 10, delimiter, "bill.csv")
    assert fast[1].tolist() == exact[1].tolist() == [10, 12, 14, 16]
    assert fast[2].tolist() == exact[2].tolist() == [4, 3, 5, 1]
    pd.testing.assert_frame_equal(fast[0], exact[0])
    assert fast[0].iloc[0].tolist() == ["2026112022001", "  商品A ", "100.00", "", ""]


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_records_of_one_width_read_by_arrow_equal_the_csv_modules_reading(delimiter):
    from tally.formats import alipay_bill

    rows = ["2026112022001,  商品A ,100.00,", "", "2026112022002,B,-5.5,x", ",, ,",
            " ,`4200001,0.01,"]
    lines = [row.replace(",", delimiter) for row in rows]
    fast = alipay_bill.read_records(lines, 3, delimiter, "bill.csv")
    exact = alipay_bill._read_quoted(lines, 3, delimiter, "bill.csv")
    assert fast[1].tolist() == exact[1].tolist() == [3, 5, 7]
    assert fast[2].tolist() == exact[2].tolist() == [4, 4, 4]
    pd.testing.assert_frame_equal(fast[0], exact[0])
    assert fast[0].iloc[2].tolist() == [" ", "`4200001", "0.01", ""]


# ---- the 汇总 conventions, on a bill written by hand (tests/fixtures/alipay_bill) -----------

@pytest.mark.parametrize("convention, reading", [
    ("signed-all-rows", "signed sum of all rows"),
    ("payments-only", "sum of payment rows only"),
    ("payments-only-fee-charged", "sum of payment rows only"),
])
def test_handwritten_bill_is_accepted_in_each_known_summary_convention(convention, reading):
    from tests import handwritten

    name, data = handwritten.alipay_zip(convention)
    parsed = formats.parse(data, BILL, name)
    rows = parsed.rows
    assert rows["kind"].tolist() == ["payment", "payment", "refund", "refund"]
    assert rows["refund_no"].tolist() == ["", "", "RF-20261120-0001-A", "RF-20261120-0001-B"]
    assert rows["fee_minor"].tolist() == [60, 30, -18, -18]
    # The unambiguous totals are checked strictly, the others name the reading that fitted.
    checks = "\n".join(parsed.checks)
    assert "summary 合计 交易订单总笔数: 2 rows" in checks
    assert "summary 合计 商家实收（元）: 90.00 CNY" in checks
    amount = next(c for c in parsed.checks if c.startswith("summary 合计 订单金额"))
    assert amount.endswith(f"({reading})")
    fee = next(c for c in parsed.checks if c.startswith("summary 合计 服务费"))
    assert ("fees charged" in fee) == convention.endswith("fee-charged")
    summary = parsed.tables["summary"]
    assert summary["net_amount_minor"].tolist() == [
        8910 if convention.endswith("fee-charged") else 8946]


def test_handwritten_summary_fitting_no_convention_names_file_line_field_and_readings():
    from tests import handwritten

    name, data = handwritten.alipay_zip("no-known-convention")
    with pytest.raises(formats.FormatError) as caught:
        formats.parse(data, BILL, name)
    error = caught.value
    member = f"{handwritten.ALIPAY_STEM}_业务明细(汇总).csv"
    assert (error.file_name, error.line, error.field_name) == (name, 6, "订单金额（元）")
    assert error.message == (
        f"member {member!r}: total says 120.00, which fits no known reading: "
        "signed sum of all rows: the rows add up to 90.00; "
        "sum of payment rows only: the rows add up to 150.00")


def test_handwritten_detail_alone_is_accepted():
    from tests import handwritten

    name, data = handwritten.alipay_zip(None)
    assert len(formats.parse(data, BILL, name).rows) == 4


def test_handwritten_bill_with_a_refund_charging_a_fee_is_refused():
    """fee_sign as_printed_cost: a refund row's 服务费 is returned (<= 0)."""
    from tests import handwritten

    name, data = handwritten.alipay_zip(None)
    files = members(data)
    detail = detail_name(files)
    files[detail] = edit(files[detail], r",RF-20261120-0001-A\t,-0.18,",
                         ",RF-20261120-0001-A\t,0.18,")
    with pytest.raises(formats.FormatError) as caught:
        formats.parse(rezip(files), BILL, name)
    assert (caught.value.line, caught.value.field_name) == (8, "fee")
    assert detail in caught.value.message
