"""Sample statements as Chinese banks export them: ICBC CSV, CMB CSV and CCB XLS, read back by
tally.formats.cn_bank with include/sources/bank_{icbc,cmb}_csv.yaml and bank_ccb_xls.yaml.

Each renderer writes one account's statement: `bookings` (columns account, currency,
booked_at, bank_serial, reference, counterparty, direction, amount_minor; optional summary and
counterparty_account) in booking order, `openings` {account: opening balance in minor units}.
Balances are computed from the opening forward; amounts are written from integer minor units as
text (the XLS's numeric cells are the nearest double to that text, as the bank's are).
"""

from __future__ import annotations

import io
from datetime import date

import numpy as np
import pandas as pd

from tally import money

CURRENCY_NAMES = {"CNY": "人民币", "USD": "美元", "HKD": "港币", "EUR": "欧元", "JPY": "日元",
                  "GBP": "英镑"}
ICBC_HEADER = ["交易日期", "摘要", "交易详情", "交易场所", "交易国家或地区简称", "钞/汇",
               "交易金额(收入)", "交易金额(支出)", "交易币种", "记账金额(收入)", "记账金额(支出)",
               "记账币种", "余额", "对方户名", "对方账户"]
# Byte widths (GBK) the ICBC export pads its cells to, before the TAB that ends each cell.
ICBC_WIDTHS = [15, 20, 30, 60, 20, 10, 20, 20, 15, 20, 20, 15, 20, 140, 19]
CMB_HEADER = ["记账日期", "货币", "交易金额", "联机余额", "交易摘要", "对手信息", "客户摘要"]
# The header cells as CCB writes them, padded with spaces.
CCB_HEADER = ["记账日          ", "交易日期          ", "交易时间                ",
              "支出                ", "收入                ", "账户余额          ",
              "币种          ", "摘要            ", "对方账号          ", "对方户名          ",
              "交易地点                "]
CCB_DISCLAIMER = "以上数据仅供参考|具体内容请以柜台为准"
XLS_MAX_ROWS = 65536  # BIFF8: rows per sheet
CHUNK = 100_000  # lines encoded at a time


def _statement(bookings: pd.DataFrame, openings: dict[str, int]):
    """One account's bookings in time order, with text columns and the balance after each."""
    accounts = bookings["account"].unique()
    if len(accounts) != 1:
        raise ValueError(f"one statement holds one account's bookings, got {len(accounts)}")
    currencies = bookings["currency"].unique()
    if len(currencies) != 1:
        raise ValueError(f"one statement holds one currency, got {list(currencies)}")
    account, currency = str(accounts[0]), str(currencies[0])
    b = bookings.sort_values("booked_at", kind="stable").reset_index(drop=True)
    for name in ("reference", "counterparty", "counterparty_account", "summary", "bank_serial"):
        b[name] = b[name].fillna("").astype(str) if name in b else ""
    credit = b["direction"].eq("credit")
    if not (credit | b["direction"].eq("debit")).all():
        raise ValueError("direction must be 'credit' or 'debit'")
    minor = b["amount_minor"].astype("int64")
    b["balance_minor"] = int(openings[account]) + np.where(credit, minor, -minor).cumsum()
    return b, account, currency, credit


def _summary(b: pd.DataFrame, credit: pd.Series, on_credit: str, on_debit: str) -> pd.Series:
    default = pd.Series(np.where(credit, on_credit, on_debit), index=b.index)
    return b["summary"].mask(b["summary"].eq(""), default)


def _quoted(text: pd.Series | str) -> pd.Series | str:
    return '"' + text.replace('"', '""') + '"' if isinstance(text, str) else (
        '"' + text.str.replace('"', '""', regex=False) + '"')


def _csv_cells(text: pd.Series) -> pd.Series:
    """Minimal CSV quoting: only cells holding the delimiter, a quote or a line break."""
    special = text.str.contains(r'[,"\r\n]', regex=True)
    return text.mask(special, _quoted(text))


def _lines(columns: list, rows: int, end: str, newline: str, encoding: str) -> bytes:
    """Cells joined into encoded CSV lines, a chunk at a time to bound memory; a str column is
    the same cell on every line."""
    out = []
    for start in range(0, rows, CHUNK):
        stop = min(start + CHUNK, rows)
        cells = [[c] * (stop - start) if isinstance(c, str) else c.iloc[start:stop].tolist()
                 for c in columns]
        out.append("".join(",".join(row) + end + newline for row in zip(*cells, strict=True))
                   .encode(encoding))
    return b"".join(out)


def _padded(text: pd.Series | str, width: int) -> pd.Series | str:
    """ICBC's cell padding: spaces up to `width` GBK bytes (a CJK character is two), then TAB.
    Vectorised per count of wide characters, of which a column has few distinct ones."""
    if isinstance(text, str):
        return text.ljust(width - len(text.encode("gbk")) + len(text)) + "\t"
    wide = text.str.count(r"[^\x00-\x7f]")
    padded = text.copy()
    for count in wide.unique():
        rows = wide.eq(count)
        padded[rows] = text[rows].str.pad(width - int(count), side="right")
    return padded + "\t"


def render_icbc_csv(bookings: pd.DataFrame, openings: dict[str, int],
                    business_date: date) -> bytes:
    """ICBC 明细查询 CSV (v2 layout): GBK, CRLF, a preamble naming the card, newest booking
    first, every cell padded and ending in a TAB, a 人民币合计 footer."""
    b, account, currency, credit = _statement(bookings, openings)
    b, credit = b.iloc[::-1], credit.iloc[::-1]
    amount = money.series_format(b["amount_minor"], currency, grouped=True)
    balance = money.series_format(b["balance_minor"], currency, grouped=True)
    name = CURRENCY_NAMES[currency]
    values = [
        b["booked_at"].dt.strftime("%Y-%m-%d"), _summary(b, credit, "他行汇入", "跨行汇款"),
        b["reference"], "", "CHN", "钞", "-", "-", "-", amount.where(credit, ""),
        amount.where(~credit, ""), name, balance,
        b["counterparty"], b["counterparty_account"],
    ]
    cells = [_quoted(_padded(v, width)) for v, width in zip(values, ICBC_WIDTHS, strict=True)]
    sums = pd.Series([int(b.loc[side, "amount_minor"].sum()) for side in (credit, ~credit)])
    totals = money.series_format(sums, currency, grouped=True)
    footer = f"{name}合计," + "," * 8 + ",".join(_quoted(_padded(t, 18)) for t in totals) + ","
    head = ["明细查询文件下载", "", f'卡号: {account},"卡别名: "', "",
            '子账户序号: 00000,子账户类别: 活期,"子账户别名: "', "", ",".join(ICBC_HEADER)]
    return ("\r\n".join(head) + "\r\n").encode("gbk") + _lines(
        cells, len(b), ",", "\r\n", "gbk") + f" \r\n{footer}\r\n".encode("gbk")


def render_cmb_csv(bookings: pd.DataFrame, openings: dict[str, int],
                   business_date: date) -> bytes:
    """CMB 交易流水 CSV: UTF-8, the statement header's 账号 line, oldest booking first, one signed
    amount column with thousands separators, no footer."""
    b, account, currency, credit = _statement(bookings, openings)
    signed = b["amount_minor"].where(credit, -b["amount_minor"])
    amount = money.series_format(signed, currency, grouped=True)
    counterparty = (b["counterparty"] + " " + b["counterparty_account"]).str.strip()
    columns = [
        b["booked_at"].dt.strftime("%Y-%m-%d"), pd.Series(currency, index=b.index), amount,
        money.series_format(b["balance_minor"], currency, grouped=True),
        _summary(b, credit, "汇入汇款", "转账汇款"), counterparty, b["reference"],
    ]
    day = f"{business_date:%Y-%m-%d}"
    head = ["招商银行交易流水", f"账号：{account}", f"币    种：{CURRENCY_NAMES[currency]}",
            f"起止日期：{day} -- {day}", ",".join(CMB_HEADER)]
    return ("\n".join(head) + "\n").encode() + _lines(
        [_csv_cells(c) for c in columns], len(b), "", "\n", "utf-8")


def render_ccb_xls(bookings: pd.DataFrame, openings: dict[str, int],
                   business_date: date) -> bytes:
    """CCB 交易明细 .xls (BIFF8): a preamble with the account, padded header cells, oldest
    booking first, 支出/收入/账户余额 as numeric cells (the other side 0), a disclaimer last."""
    import xlwt  # only the XLS renderer needs it

    b, account, currency, credit = _statement(bookings, openings)
    if len(b) > XLS_MAX_ROWS - 7:
        raise ValueError(f"an .xls sheet holds at most {XLS_MAX_ROWS - 7} bookings")
    scale = 10 ** money.exponent(currency)
    # Correctly rounded division: the nearest double to the decimal amount.
    amount = (b["amount_minor"].astype("int64") / scale).to_numpy()
    expense, income = np.where(credit, 0.0, amount), np.where(credit, amount, 0.0)
    balance = (b["balance_minor"].astype("int64") / scale).to_numpy()
    book_day = b["booked_at"].dt.strftime("%Y%m%d").to_numpy()
    clock = b["booked_at"].dt.strftime("%H:%M:%S").to_numpy()
    summary = _summary(b, credit, "转账存入", "转账支取").to_numpy()
    name = CURRENCY_NAMES[currency]
    book = xlwt.Workbook(encoding="utf-8")
    day = f"{business_date:%Y%m%d}"
    sheet = book.add_sheet(f"交易明细_{account[-4:]}_{day}_{day}")
    preamble = [["China Construction Bank"], ["开户机构：", "xxx"], ["币\u3000\u3000种：", name],
                ["账\u3000\u3000号：", account], [], CCB_HEADER]
    for r, cells in enumerate(preamble):
        for c, value in enumerate(cells):
            sheet.write(r, c, value)
    texts = zip(book_day, clock, summary, b["counterparty_account"], b["counterparty"],
                b["reference"], strict=True)
    for i, (d, t, s, cp_account, cp, ref) in enumerate(texts):
        row = sheet.row(len(preamble) + i)
        for c, value in enumerate((d, d, t)):
            row.set_cell_text(c, value)
        for c, value in enumerate((expense[i], income[i], balance[i]), start=3):
            row.set_cell_number(c, float(value))
        for c, value in enumerate((name, s, cp_account, cp, ref), start=6):
            if value:  # the bank leaves empty cells blank
                row.set_cell_text(c, value)
    sheet.write(len(preamble) + len(b), 0, CCB_DISCLAIMER)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
