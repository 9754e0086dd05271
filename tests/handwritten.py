"""Files written by hand as the vendors document them (tests/fixtures/), not by our samples'
renderers: they do not share the generator's assumptions.

The Alipay members are kept as UTF-8 text so that they can be read and reviewed; `alipay_zip`
writes them the way Alipay delivers them: GBK, CRLF, in `<account>_<yyyyMMdd>.csv.zip` with
member names `<account>_<yyyyMMdd>_业务明细.csv` and `..._业务明细(汇总).csv`."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
ALIPAY = FIXTURES / "alipay_bill"
ALIPAY_STEM = "20881234567890120156_20261120"
# The conventions of the 汇总 file's 合计 row the hand-written bill exists in.
ALIPAY_SUMMARIES = ("signed-all-rows", "payments-only", "payments-only-fee-charged")


def alipay_member(name: str) -> bytes:
    text = (ALIPAY / name).read_text(encoding="utf-8")
    return text.replace("\n", "\r\n").encode("gbk")


def alipay_zip(summary: str | None) -> tuple[str, bytes]:
    """The hand-written 业务明细 with the 汇总 file `summary.<summary>.csv` (None: without)."""
    files = {f"{ALIPAY_STEM}_业务明细.csv": alipay_member("detail.csv")}
    if summary is not None:
        files[f"{ALIPAY_STEM}_业务明细(汇总).csv"] = alipay_member(f"summary.{summary}.csv")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 11, 21, 5, 12, 37)),
                             content, zipfile.ZIP_DEFLATED)
    return f"{ALIPAY_STEM}.csv.zip", buffer.getvalue()
