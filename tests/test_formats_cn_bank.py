"""Chinese bank exports (tally.formats.cn_bank): the real public samples, render -> parse round
trips, and bad inputs refused with the file, line and field named."""

import csv
import dataclasses
import datetime as dt
import io
from datetime import date

import numpy as np
import pandas as pd
import pytest
import xlwt

from tally import config, formats, sources
from tally.devtools.samples import cn_bank as render

SETTINGS = config.load()
CONFIGS = sources.load_all(SETTINGS)
SAMPLES = SETTINGS.project_dir.parent / "shared" / "samples" / "cn-bank"
DAY = date(2026, 11, 20)
ACCOUNT = "6222020200112233445"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()  # a missing sample fails the test


def unchecked(source: str, **changes):
    """The source's configuration without its self-checks (to look at the rows alone)."""
    return dataclasses.replace(CONFIGS[source], checks=[], **changes)


def refused(data: bytes, cfg, file_name: str = "statement") -> formats.FormatError:
    with pytest.raises(formats.FormatError) as caught:
        formats.parse(data, cfg, file_name)
    assert caught.value.file_name == file_name
    return caught.value


def minor_by_direction(rows: pd.DataFrame) -> dict[str, int]:
    return {k: int(v) for k, v in rows.groupby("direction")["amount_minor"].sum().items()}


# ---- the real samples ------------------------------------------------------------------------

def test_boc_sample_rolls_its_balance_newest_first():
    parsed = formats.parse(sample("deg-boc-debit-records.csv"), CONFIGS["bank_boc_csv"],
                           "boc.csv")
    rows = parsed.rows
    assert parsed.checks == ["running_balance: 17 bookings roll forward (newest first)"]
    assert rows["line_no"].tolist() == list(range(3, 20))  # title line, then the header
    assert minor_by_direction(rows) == {"credit": 982100, "debit": 939430}
    first = rows.iloc[0]
    assert (first["account"], first["booking_date"], first["booking_time"]) == (
        "3167", "2025-08-22", "17:57:17")
    assert (first["direction"], first["amount"], first["balance"]) == ("debit", "71.89",
                                                                         "3240.28")
    assert first["currency"] == "CNY"  # 人民币
    assert first["reference"] == ""  # '----------' is BOC's empty cell
    assert rows.at[7, "amount_minor"] == 260000  # "-2,600.00"
    assert rows.at[7, "counterparty"] == "上海十企业管理顾问有限公司"


@pytest.mark.parametrize("source,name,line,field,words", [
    # ICBC: the published sample blanks the balance out as 'xx,yyyy.zz'
    ("bank_icbc_csv", "deg-icbc-debit-v2-records.csv", 8, "balance",
     "'xx,yyyy.zz' in column '余额' is not a decimal amount"),
    # CMB: the sample's rows are shuffled (the balances do not roll either)
    ("bank_cmb_csv", "deg-cmb-debit-records.csv", 5, "booking_date",
     "bookings are not oldest first: 2024-01-20 follows 2024-01-27"),
    # CCB: 46.00 is missing between the 3rd and 4th booking
    ("bank_ccb_xls", "deg-ccb-交易明细.xls", 10, "balance",
     "running balance breaks (oldest first): expected 1625.11, file says 1579.11"),
    # ABC: the balances were edited by hand (10000.00 in, 10.00 out, still 11000.00)
    ("bank_abc_csv", "deg-abc-debit-records.csv", 3, "balance",
     "running balance breaks (oldest first): expected 10990.00, file says 11000.00"),
    # BOCOM: dates and balances were made up row by row
    ("bank_bocom_csv", "deg-bocom-debit-records.csv", 3, "booking_date",
     "bookings are not oldest first: 2024-02-02 follows 2025-01-01"),
])
def test_inconsistent_samples_are_refused_exactly(source, name, line, field, words):
    error = refused(sample(name), CONFIGS[source], name)
    assert (error.line, error.field_name) == (line, field)
    assert words in str(error)


def test_icbc_sample_footer_does_not_add_up_either():
    # With the balance placeholder replaced, the next refusal is the anonymised 合计 footer.
    data = sample("deg-icbc-debit-v2-records.csv").replace(b"xx,yyyy.zz", b"0.00")
    error = refused(data, CONFIGS["bank_icbc_csv"], "icbc.csv")
    assert (error.line, error.field_name) == (20, "amount")
    assert "footer '人民币合计' states credits of 1234.56 but the bookings add up to 2841.74" \
        in str(error)


def test_icbc_sample_rows():
    data = sample("deg-icbc-debit-v2-records.csv").replace(b"xx,yyyy.zz", b"0.00")
    parsed = formats.parse(data, unchecked("bank_icbc_csv"), "icbc.csv")
    rows = parsed.rows
    assert parsed.encoding == "utf-8"
    assert rows["line_no"].tolist() == list(range(8, 19))  # blank line and footer left out
    assert set(rows["account"]) == {"1234****9876"}  # 卡号 in the preamble
    assert minor_by_direction(rows) == {"credit": 284174, "debit": 424108}
    assert rows["booking_date"].iloc[[0, -1]].tolist() == ["2023-05-02", "2023-02-08"]
    # padding and the TAB that ends every cell are gone
    assert rows.iloc[0][["summary", "counterparty", "amount"]].tolist() == [
        "消费", "深圳市财付通支付科技有限公司", "13.40"]
    assert rows.at[1, "amount"] == "1234.56"  # "1,234.56"


def test_cmb_sample_rows():
    rows = formats.parse(sample("deg-cmb-debit-records.csv"), unchecked("bank_cmb_csv"),
                         "cmb.csv").rows
    assert rows["direction"].tolist() == ["credit", "debit", "debit", "debit", "debit"]
    assert rows["amount_minor"].tolist() == [123400, 100000, 300, 100000, 1014]
    assert rows["balance_minor"].tolist() == [127166, 27166, 8122, 12345, 121824]
    assert rows.at[0, "reference"] == "01月01日约定提取"
    assert set(rows["account"]) == {""}  # the converted statement lost its 账号 line


def test_ccb_sample_rows():
    rows = formats.parse(sample("deg-ccb-交易明细.xls"), unchecked("bank_ccb_xls"),
                         "ccb.xls").rows
    assert rows["line_no"].tolist() == list(range(7, 13))  # 1-based sheet rows
    assert set(rows["account"]) == {"xxxxx*********xxxx"}  # 账　　号 in the preamble
    assert rows["amount_minor"].tolist() == [6700, 1678, 2000, 51502, 1806, 6640]
    assert set(rows["direction"]) == {"debit"}  # 收入 is 0 on every row
    assert rows.iloc[1][["booking_date", "booking_time", "balance"]].tolist() == [
        "2025-01-02", "19:12:59", "2160.13"]


def test_abc_sample_rows_and_repaired_balances():
    data = sample("deg-abc-debit-records.csv")
    rows = formats.parse(data, unchecked("bank_abc_csv"), "abc.csv").rows
    assert rows["booking_time"].tolist() == ["12:34:56", "13:23:24", "", "", ""]
    assert rows["bank_serial"].tolist()[:2] == ["369396693", "369333999"]  # 日 志 号
    assert rows["direction"].tolist() == ["credit", "debit", "debit", "credit", "credit"]
    assert rows["amount_minor"].tolist() == [1000000, 1000, 1234589, 1, 0]
    assert rows.at[3, "counterparty"] == ""  # '--'
    # The same file with balances that do follow from the amounts passes the check.
    text = data.decode()
    for wrong, right in [("-10.00,11000.00", "-10.00,10990.00"), ("1943.12", "-1355.89"),
                         ("123.35", "-1355.88")]:
        text = text.replace(wrong, right)
    parsed = formats.parse(text.encode(), CONFIGS["bank_abc_csv"], "abc.csv")
    assert parsed.checks == ["running_balance: 5 bookings roll forward (oldest first)"]


def test_bocom_sample_rows_and_a_consistent_file():
    rows = formats.parse(sample("deg-bocom-debit-records.csv"), unchecked("bank_bocom_csv"),
                         "bocom.csv").rows
    assert rows["direction"].tolist() == ["credit", "debit", "credit", "credit", "debit",
                                          "debit"]  # 贷 Cr / 借 Dr
    assert rows["amount_minor"].tolist() == [123, 321, 2, 1000, 1000, 10079]
    text = ("序号,交易日期,交易时间,交易类型,借贷,交易金额,余额,对方账号,对方户名,交易地点,摘要\n"
            "1,2024-02-02,13:15:12,转账,贷 Cr,\"1,000.00\",\"1,100.00\",6666,哈哈,其他,M1\n"
            "2,2024-02-03,09:20:43,消费,借 Dr,0.50,1099.50,5555,网上国网,其他,\n")
    parsed = formats.parse(text.encode("gbk"), CONFIGS["bank_bocom_csv"], "bocom.csv")
    assert parsed.checks == ["running_balance: 2 bookings roll forward (oldest first)"]
    assert parsed.rows["reference"].tolist() == ["M1", ""]


# ---- render -> parse round trips -------------------------------------------------------------

def bookings(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.integers(0, 86_400, n))
    return pd.DataFrame({
        "account": ACCOUNT, "currency": "CNY",
        "booked_at": pd.Timestamp(DAY) + pd.to_timedelta(seconds, unit="s"),
        "bank_serial": [f"B{i:09d}" for i in range(n)],
        "reference": [f"M{x}" for x in rng.integers(10**11, 10**12, n)],
        "counterparty": rng.choice(["张三", "支付宝（中国）网络技术有限公司", 'Tenpay, "Ltd"',
                                    "Alipay (China) Network", ""], n),
        "direction": rng.choice(["credit", "debit"], n),
        # from 0.01 to 100 million, so thousands separators come and go
        "amount_minor": 10 ** rng.integers(0, 10, n) * rng.integers(1, 10, n)
        + rng.integers(0, 100, n),
    })


ROUND_TRIPS = [
    (render.render_icbc_csv, "bank_icbc_csv", "newest first", False),
    (render.render_cmb_csv, "bank_cmb_csv", "oldest first", False),
    (render.render_ccb_xls, "bank_ccb_xls", "oldest first", True),
]


@pytest.mark.parametrize("renderer,source,order,has_time", ROUND_TRIPS)
def test_render_parse_round_trip(renderer, source, order, has_time):
    given = bookings(2000, seed=20261120)
    opening = 12_345_678
    data = renderer(given, {ACCOUNT: opening}, DAY)
    parsed = formats.parse(data, CONFIGS[source], f"{source}.statement")
    signed = given["amount_minor"].where(given["direction"].eq("credit"),
                                         -given["amount_minor"])
    expected = given.assign(balance_minor=opening + signed.cumsum())
    rows = parsed.rows
    if order == "newest first":
        expected = expected.iloc[::-1].reset_index(drop=True)
    assert len(rows) == 2000
    assert rows["amount_minor"].tolist() == expected["amount_minor"].tolist()
    assert rows["direction"].tolist() == expected["direction"].tolist()
    assert rows["balance_minor"].tolist() == expected["balance_minor"].tolist()
    assert rows["reference"].tolist() == expected["reference"].tolist()
    assert rows["counterparty"].tolist() == expected["counterparty"].tolist()
    assert set(rows["account"]) == {ACCOUNT} and set(rows["currency"]) == {"CNY"}
    assert set(rows["booking_date"]) == {DAY.isoformat()}
    if has_time:
        assert rows["booking_time"].tolist() == expected["booked_at"].dt.strftime(
            "%H:%M:%S").tolist()
    assert f"running_balance: 2000 bookings roll forward ({order})" in parsed.checks
    assert rows["line_no"].is_monotonic_increasing


def test_icbc_render_has_the_real_export_quirks():
    data = render.render_icbc_csv(bookings(50, seed=1), {ACCOUNT: 0}, DAY)
    text = data.decode("gbk")
    lines = text.split("\r\n")
    assert lines[0] == "明细查询文件下载" and lines[2].startswith(f"卡号: {ACCOUNT},")
    assert lines[7].startswith('"2026-11-20     \t","')  # padded to 15 bytes, then a TAB
    assert lines[-2].startswith("人民币合计,,,,,,,,,")
    parsed = formats.parse(data, CONFIGS["bank_icbc_csv"], "icbc.csv")
    assert parsed.encoding == "gb18030"
    assert parsed.checks[0] == f"footer_totals: 人民币合计 (line {len(lines) - 1}) equal the " \
                               "bookings"


def test_running_balance_order_auto_reads_either_way():
    # A one-day CMB statement has no times: the order cannot come from the dates.
    data = render.render_cmb_csv(bookings(30, seed=3), {ACCOUNT: 500}, DAY).decode()
    head, body = data.split("客户摘要\n")
    reversed_file = (head + "客户摘要\n" + "\n".join(body.strip().split("\n")[::-1])).encode()
    auto = dataclasses.replace(CONFIGS["bank_cmb_csv"],
                               checks=[{"running_balance": {"order": "auto"}}])
    assert formats.parse(data.encode(), auto, "cmb.csv").checks == [
        "running_balance: 30 bookings roll forward (oldest first)"]
    assert formats.parse(reversed_file, auto, "cmb.csv").checks == [
        "running_balance: 30 bookings roll forward (newest first)"]
    error = refused(reversed_file, CONFIGS["bank_cmb_csv"])  # pinned: oldest first
    assert (error.line, error.field_name) == (7, "balance")


def test_utf8_bom_and_gbk_decode_to_the_same_rows():
    data = render.render_cmb_csv(bookings(20, seed=4), {ACCOUNT: 0}, DAY)
    plain = formats.parse(data, CONFIGS["bank_cmb_csv"], "cmb.csv")
    bom = formats.parse(b"\xef\xbb\xbf" + data, CONFIGS["bank_cmb_csv"], "cmb.csv")
    gbk = formats.parse(data.decode().encode("gbk"), CONFIGS["bank_cmb_csv"], "cmb.csv")
    assert (plain.encoding, gbk.encoding) == ("utf-8", "gb18030")
    pd.testing.assert_frame_equal(plain.rows, bom.rows)
    pd.testing.assert_frame_equal(plain.rows, gbk.rows)


def test_renderer_wants_one_account():
    two = pd.concat([bookings(3, seed=5), bookings(3, seed=6).assign(account="622848")])
    with pytest.raises(ValueError, match="one account"):
        render.render_cmb_csv(two, {ACCOUNT: 0, "622848": 0}, DAY)


# ---- bad inputs ------------------------------------------------------------------------------

def set_cell(line: str, column: int, value: str) -> str:
    """One CSV line with one cell replaced, quoted as needed."""
    cells = next(csv.reader([line]))
    cells[column] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    return out.getvalue()


def test_footer_total_that_does_not_match_names_the_footer_line():
    data = render.render_icbc_csv(bookings(40, seed=7), {ACCOUNT: 0}, DAY).decode("gbk")
    lines = data.split("\r\n")
    lines[-2] = set_cell(lines[-2], 9, "0.01\t")  # the stated income, under 记账金额(收入)
    error = refused("\r\n".join(lines).encode("gbk"), CONFIGS["bank_icbc_csv"], "icbc.csv")
    assert (error.line, error.field_name) == (len(lines) - 1, "amount")
    assert "footer '人民币合计' states credits of 0.01 but the bookings add up to" in str(error)


def test_missing_footer_means_a_file_cut_short():
    data = render.render_icbc_csv(bookings(10, seed=8), {ACCOUNT: 0}, DAY).decode("gbk")
    cut = "\r\n".join(data.split("\r\n")[:-2]).encode("gbk")
    assert "the file may be cut short" in str(refused(cut, CONFIGS["bank_icbc_csv"]))


def cmb_with(line_no: int, column: int, value: str, n: int = 10) -> bytes:
    """A rendered CMB statement with one cell changed (line_no: 1-based line of the file)."""
    lines = render.render_cmb_csv(bookings(n, seed=9), {ACCOUNT: 10**9}, DAY).decode().split(
        "\n")
    lines[line_no - 1] = set_cell(lines[line_no - 1], column, value)
    return "\n".join(lines).encode()


def test_non_numeric_amount_names_line_and_field():
    error = refused(cmb_with(8, 2, "12.x4"), CONFIGS["bank_cmb_csv"], "cmb.csv")
    assert (error.line, error.field_name) == (8, "amount")
    assert "'12.x4' in column '交易金额' is not a decimal amount" in str(error)


def test_missing_header_column_names_the_field():
    data = cmb_with(5, 3, "余额")
    error = refused(data, CONFIGS["bank_cmb_csv"])
    assert (error.line, error.field_name) == (5, "balance")
    assert "column '联机余额' not found in the header row" in str(error)


def test_wrong_encoding_for_a_pinned_one():
    gbk = render.render_icbc_csv(bookings(5, seed=10), {ACCOUNT: 0}, DAY)
    error = refused(gbk, dataclasses.replace(CONFIGS["bank_icbc_csv"], encoding="utf-8"))
    assert error.line == 1 and "not valid utf-8" in str(error)


@pytest.mark.parametrize("column,value,field,words", [
    (0, "2026-02-30", "booking_date", "'2026-02-30' is not a date"),
    (0, "20.11.2026", "booking_date", "'20.11.2026' is not a date"),
    (1, "DM", "currency", "unknown currency 'DM'"),
    (3, "", "balance", "required value is empty"),
])
def test_bad_cells_name_line_and_field(column, value, field, words):
    line = 9
    error = refused(cmb_with(line, column, value), CONFIGS["bank_cmb_csv"])
    assert (error.line, error.field_name) == (line, field)
    assert words in str(error)


def test_unknown_debit_credit_mark():
    text = ("序号,交易日期,交易时间,交易类型,借贷,交易金额,余额,对方账号,对方户名,交易地点,摘要\n"
            "1,2024-02-02,13:15:12,转账,转 Tr,1.00,1.00,6666,哈哈,其他,\n")
    error = refused(text.encode(), CONFIGS["bank_bocom_csv"])
    assert (error.line, error.field_name) == (2, "direction")
    assert "'转 Tr' is neither credit nor debit" in str(error)


def ccb_sheet(rows: list[list]) -> bytes:
    """A CCB-like workbook: the preamble and header of the real export, then `rows`."""
    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("交易明细")
    grid = [["China Construction Bank"], [], [], ["账\u3000\u3000号：", "6217"], [],
            render.CCB_HEADER, *rows]
    for r, cells in enumerate(grid):
        for c, value in enumerate(cells):
            sheet.write(r, c, value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.parametrize("expense,income,field,words", [
    (12.5, 3.0, "amount", "both income and expense on one booking"),
    ("12,5O", 0.0, "amount", "'12,5O' in column '支出' is not a decimal amount"),
    (0.1 + 0.2, 0.0, "amount", "'0.30000000000000004' is not an amount"),
])
def test_bad_xls_amounts(expense, income, field, words):
    good = ["20250101", "20250101", "10:00:00", 1.0, 0.0, 99.0, "人民币", "消费", "", "", ""]
    bad = ["20250101", "20250101", "11:00:00", expense, income, 50.0, "人民币", "消费", "", "",
           ""]
    error = refused(ccb_sheet([good, bad]), CONFIGS["bank_ccb_xls"], "ccb.xls")
    assert (error.line, error.field_name) == (8, field)
    assert words in str(error)


def test_not_a_workbook():
    assert "not an .xls" in str(refused(b"a,b\n1,2\n", CONFIGS["bank_ccb_xls"]))


def test_xls_date_and_time_cells_read_as_text():
    day, clock = xlwt.easyxf(num_format_str="YYYY-MM-DD"), xlwt.easyxf(num_format_str="hh:mm:ss")
    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("交易明细")
    sheet.write(0, 0, "账\u3000\u3000号：")
    sheet.write(0, 1, "6217")
    for c, header in enumerate(render.CCB_HEADER):
        sheet.write(1, c, header)
    row = [date(2025, 1, 1), date(2025, 1, 1), dt.time(10, 0, 5), 0.0, 1234.5, 1234.5, "人民币"]
    for c, value in enumerate(row):
        sheet.write(2, c, value, day if c < 2 else clock if c == 2 else xlwt.Style.default_style)
    out = io.BytesIO()
    book.save(out)
    parsed = formats.parse(out.getvalue(), CONFIGS["bank_ccb_xls"], "ccb.xls")
    assert parsed.rows.iloc[0][["line_no", "account", "booking_date", "booking_time",
                                "direction", "amount_minor"]].tolist() == [
        3, "6217", "2025-01-01", "10:00:05", "credit", 123450]


def test_header_found_by_pattern_or_not_at_all():
    data = sample("deg-boc-debit-records.csv")
    by_names = formats.parse(data, CONFIGS["bank_boc_csv"], "boc.csv").rows
    by_pattern = dataclasses.replace(CONFIGS["bank_boc_csv"], options={
        **CONFIGS["bank_boc_csv"].options, "header_pattern": "^记账日期\t记账时间"})
    pd.testing.assert_frame_equal(formats.parse(data, by_pattern, "boc.csv").rows, by_names)
    error = refused(data.split(b"\n", 2)[2], CONFIGS["bank_boc_csv"])  # header line cut off
    assert error.field_name == "account" and "no header row found" in str(error)


def test_line_numbers_count_line_breaks_inside_cells():
    given = bookings(4, seed=11)
    given.loc[1, "reference"] = "第一行\n第二行"
    parsed = formats.parse(render.render_cmb_csv(given, {ACCOUNT: 0}, DAY),
                           CONFIGS["bank_cmb_csv"], "cmb.csv")
    assert parsed.rows["line_no"].tolist() == [6, 7, 9, 10]
    assert parsed.rows["reference"].tolist() == given["reference"].tolist()
