"""WeChat Pay bills: the merchant trade bill (bill_type ALL / SUCCESS / REFUND), the fund bill
(资金账单), and the personal 账单明细 export.

A merchant bill is one header line, the rows with every value prefixed by a backtick, then a
summary header line (总交易单数,... or 资金流水总笔数,...) and one summary row. Columns differ
by bill type and age, so they are found by header NAME. The API may deliver the bill gzipped:
recognised by its magic bytes and unpacked here. Reading the table is shared with the Alipay
bills (`tally.formats.alipay_bill`).

Options (`options:` in the source configuration; see docs/formats/wechatpay_bill.md):
`table_start` / `table_end` (regexes around header and rows; the merchant bills end at the
summary header), `header_aliases`, `optional_headers`, `strip_prefix`, `derive` (as for Alipay),
`summary` (summary column -> the total it states: `{count: true}` or `{sum: <column>}`, with
an optional `where`), `balance` (running balance of the fund bill) and `max_bytes`.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib

from tally.formats import FormatError, Parsed
from tally.formats.alipay_bill import (
    MAX_BYTES,
    check_balance,
    check_fee_sign,
    check_total,
    clean,
    header_key,
    read_member,
    read_section,
)
from tally.formats.common import decode, finish_source

GZIP_MAGIC = b"\x1f\x8b"


def parse(data: bytes, config, file_name: str) -> Parsed:
    if not data.strip():
        raise FormatError(file_name, "empty file")
    options = config.options
    if data.startswith(GZIP_MAGIC):
        data = gunzip(data, options.get("max_bytes", MAX_BYTES), file_name)
    text, encoding = decode(data, config.encoding, file_name)
    section = read_section(text, options, config.delimiter, file_name)
    headers = {c: h for c, h in config.columns.items() if h is not None}
    rows = finish_source(read_member(section, headers, options, file_name), config, file_name)
    checks = check_fee_sign(rows, config.fee_sign, file_name)
    if "summary" in options:
        checks += check_summary(section, options["summary"], rows, config.amounts, file_name)
    if "balance" in options:
        checks += check_balance(rows, options["balance"], file_name)
    return Parsed(rows=rows, checks=checks, encoding=encoding)


def gunzip(data: bytes, limit: int, file_name: str) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as packed:
            unpacked = packed.read(limit + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise FormatError(file_name, f"not a readable gzip file ({exc})") from None
    if len(unpacked) > limit:
        raise FormatError(file_name, f"unpacks beyond the {limit} bytes accepted")
    return unpacked


def check_summary(section, totals: dict, rows, amounts: dict, file_name: str) -> list[str]:
    """The summary header line and the one row after it: every configured total the file
    states must equal the rows (columns a bill type or an older layout lacks are skipped)."""
    if len(section.trailer) != 2:
        where = section.trailer[2][0] if len(section.trailer) > 2 else None
        raise FormatError(file_name, "expected a summary header line and one summary row "
                          "after the rows", where)
    (_, header_text), (line_no, value_text) = section.trailer
    header, values = (next(csv.reader([t], delimiter=section.delimiter))
                      for t in (header_text, value_text))
    stated = {header_key(h): clean(v) for h, v in zip(header, values, strict=False) if clean(h)}
    missing = [clean(h) for h in header[len(values):] if clean(h)]
    if missing:
        raise FormatError(file_name, "summary row is shorter than its header", line_no,
                          missing[0])
    return [check_total(rows, amounts, stated[header_key(name)], total, file_name, line_no,
                        name, "summary")
            for name, total in totals.items() if header_key(name) in stated]
