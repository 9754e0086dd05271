"""Alipay bills, and the sectioned-CSV reading that the channel bills share.

An Alipay merchant bill download (`alipay.data.dataservice.bill.downloadurl.query`) is a zip
named `<PID>0156_<yyyyMMdd>.csv.zip` holding GBK CSV files: 业务明细 (trade rows), 业务明细(汇总)
(totals) and, for account bills, 账务明细 (fund flow). Each CSV has `#` preamble lines, a dash
marker line (`#-----业务明细列表-----`, length varies), one header line, the rows, a dash end
marker and `#` footer lines with totals. Identifiers end in a TAB. A bare CSV (a member already
unzipped, or the personal export) is read as the main member.

Options (`options:` in the source configuration; see docs/formats/alipay_bill.md):
- `main`: the member role whose rows are the source's rows;
- `max_members`, `max_bytes`: what a zip may hold (count, unpacked bytes);
- `members`: role -> member spec. A spec says how to find the member (`file`, a regex on its
  name; `required`) and how to read it (see `read_member`): `table_start` / `table_end`
  regexes around header and rows, `headers` (column -> header text; the main member uses the
  configuration's `columns`), `header_aliases`, `optional_headers`, `strip_prefix`, `derive`
  (columns computed rather than read), and its self-checks: `footers`, `totals` of another
  member's rows (`totals_of`, `total_row`) and `balance`. `table` names the secondary table a
  non-main member fills.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from tally import money
from tally.formats import CHUNK_ROWS, FormatError, Parsed, Piece, Pieces, collect
from tally.formats.common import decode, finish_source, finish_table

ZIP_MAGIC = b"PK\x03\x04"
MAX_MEMBERS = 8
MAX_BYTES = 2**31  # unpacked bytes accepted from one download: a guard against zip bombs
BLANK_OR_ZERO = r"[+-]?0*\.?0*"  # "", "0", "0.00": no refund number, no amount


@dataclass
class Section:
    """One CSV table inside a bill: lines before the header, the header, the records and the
    lines from the end marker on. Records are a frame of text cells (columns 0, 1, ...; a
    record shorter than the longest is padded with "") with, per record, the 1-based physical
    line it starts on and how many cells it really has."""

    preamble: list[tuple[int, str]]
    header_line: int
    header: list[str]
    cells: pd.DataFrame
    line_nos: np.ndarray
    counts: np.ndarray
    trailer: list[tuple[int, str]]
    delimiter: str

    def record(self, index: int) -> list[str]:
        return [str(c) for c in self.cells.iloc[index, : int(self.counts[index])]]


def parse(data: bytes, config, file_name: str) -> Parsed:
    return collect(Pieces(parse_pieces(data, config, file_name)), config)


def parse_pieces(data: bytes, config, file_name: str, chunk_rows: int = CHUNK_ROWS):
    """Each member's rows as one piece as soon as the member is read and checked (main rows
    first, then the secondary tables); returns (checks, encoding). A member's bytes, text and
    cells are dropped once read, and its rows once handed over unless a totals member still
    needs them: a bill's members are not all held at once."""
    if not data.strip():
        raise FormatError(file_name, "empty file")
    options = config.options
    members, zipped = unpack(data, options, file_name)
    main = options["main"]
    specs = options["members"]
    # The main rows first, then other tables, then members that check another one's totals.
    order = sorted(members, key=lambda role: (role != main, "totals_of" in specs[role]))
    needed = {specs[role]["totals_of"] for role in order if "totals_of" in specs[role]}
    frames: dict[str, tuple[pd.DataFrame, dict]] = {}
    checks, encoding = [], None
    for role in order:
        name, raw = members.pop(role)
        spec = specs[role]
        piece = None
        with in_member(file_name, name if zipped else None):
            text, used = decode(raw, config.encoding, file_name)
            del raw
            section = read_section(text, spec, config.delimiter, file_name)
            del text
            if "totals_of" in spec:
                target = spec["totals_of"]
                if target not in frames:
                    raise FormatError(file_name, f"a totals file without its {target} file")
                checks += check_summary(section, spec, *frames[target], file_name)
            if role == main:
                headers = {c: h for c, h in config.columns.items() if h is not None}
                frame = read_member(section, headers, spec, file_name)
                rows = finish_source(frame, config, file_name)
                frames[role], encoding = (rows, config.amounts), used
                checks += check_fee_sign(rows, config.fee_sign, file_name)
                piece = Piece(None, rows)
            elif "table" in spec:
                table = spec["table"]
                frame = read_member(section, spec["headers"], spec, file_name)
                rows = finish_table(frame, config, table, file_name)
                frames[role] = (rows, config.tables[table].amounts)
                piece = Piece(table, rows)
            if role in frames:
                checks += check_member(section, spec, *frames[role], file_name)
            del section
        if piece is not None:
            if role not in needed:
                frames.pop(role, None)
            del frame, rows
            yield piece
            del piece
    return checks, encoding


@contextmanager
def in_member(file_name: str, member: str | None):
    """Errors inside a zip member name the download and the member."""
    try:
        yield
    except FormatError as exc:
        if member is None:
            raise
        raise FormatError(file_name, f"member {member!r}: {exc.message}", exc.line,
                          exc.field_name) from None


def unpack(data: bytes, options: dict, file_name: str) -> tuple[dict, bool]:
    """role -> (member name, bytes), and whether the data was a zip. Anything in the zip that
    is not a known member of the bill is refused: no folders, paths, extra or duplicate files."""
    if not data.startswith(ZIP_MAGIC):
        return {options["main"]: (file_name, data)}, False
    specs = options["members"]
    limit = options.get("max_members", MAX_MEMBERS)
    budget = options.get("max_bytes", MAX_BYTES)
    found: dict[str, tuple[str, bytes]] = {}
    try:
        # Alipay writes GBK member names without the zip's UTF-8 flag.
        with zipfile.ZipFile(io.BytesIO(data), metadata_encoding="gb18030") as archive:
            infos = archive.infolist()
            if len(infos) > limit:
                raise FormatError(file_name, f"zip holds {len(infos)} members, at most {limit} "
                                  f"expected (member {infos[limit].filename!r} and more)")
            for info in infos:
                name = info.filename
                if info.is_dir() or any(mark in name for mark in ("/", "\\", ":", "..")):
                    raise FormatError(file_name, f"unexpected member {name!r}: folders and "
                                      "paths are not part of a bill")
                role = next((r for r, s in specs.items()
                             if s.get("file") and re.search(s["file"], name)), None)
                if role is None:
                    raise FormatError(file_name, f"unexpected member {name!r}")
                if role in found:
                    raise FormatError(file_name, f"member {name!r} repeats {found[role][0]!r}")
                with archive.open(info) as member:
                    content = member.read(budget + 1)
                budget -= len(content)
                if budget < 0:
                    raise FormatError(file_name, f"member {name!r} unpacks beyond the "
                                      f"{options.get('max_bytes', MAX_BYTES)} bytes accepted")
                found[role] = (name, content)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError,
            UnicodeDecodeError) as exc:  # corrupt, encrypted, unknown compression, bad name
        raise FormatError(file_name, f"not a readable zip ({exc})") from None
    for role, spec in specs.items():
        if spec.get("required") and role not in found:
            raise FormatError(file_name, f"no member matching {spec['file']!r} (the {role} "
                              "file) in the zip")
    return found, True


def read_section(text: str, spec: dict, delimiter: str, file_name: str) -> Section:
    """Find header and rows between the configured marker lines. Without `table_start` the
    header is the first non-blank line; without `table_end` the rows run to the end."""
    fast = _read_plain_section(text, spec, delimiter, file_name)
    if fast is not None:
        return fast
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    start = spec.get("table_start")
    if start:
        pattern = re.compile(start)
        found = next((i for i, line in enumerate(lines) if pattern.search(line)), None)
        if found is None:
            raise FormatError(file_name, f"no line matching {start!r} before the header")
        header_at = found + 1
    else:
        header_at = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    if header_at >= len(lines) or not lines[header_at].strip():
        raise FormatError(file_name, "no header line", min(header_at + 1, len(lines)))
    end_at = len(lines)
    end = spec.get("table_end")
    if end:
        # Searched from the bottom: the end marker and footers are the last few lines.
        pattern = re.compile(end)
        found = next((i for i in range(len(lines) - 1, header_at, -1)
                      if pattern.search(lines[i])), None)
        if found is None:
            raise FormatError(file_name, f"no line matching {end!r} after the rows "
                              "(truncated file?)")
        end_at = found
    if delimiter == "auto":  # WeChat bills come comma- or tab-separated
        delimiter = "\t" if "\t" in lines[header_at] else ","
    header = [clean(cell) for cell in next(csv.reader([lines[header_at]], delimiter=delimiter))]
    cells, line_nos, counts = read_records(lines[header_at + 1:end_at], header_at + 2,
                                           delimiter, file_name)
    return Section(
        preamble=[(i + 1, lines[i]) for i in range(header_at)],
        header_line=header_at + 1, header=header, cells=cells, line_nos=line_nos,
        counts=counts,
        trailer=[(i + 1, lines[i]) for i in range(end_at, len(lines)) if lines[i].strip()],
        delimiter=delimiter,
    )


class _Lines:
    """A text's lines (split at "\n", a "\r" before it dropped) found on demand from either
    end, without splitting the whole text: a bill's preamble and footer are a few lines around
    hundreds of thousands of rows."""

    def __init__(self, text: str):
        self.text = text
        self.count = text.count("\n") + 1
        self._starts = {0: 0, self.count: len(text) + 1}
        self._forward, self._backward = 0, self.count  # known up to / from these lines

    def start(self, index: int) -> int:
        """Offset of line `index` (0-based; `count` is one past the end)."""
        if index in self._starts:
            return self._starts[index]
        text = self.text
        if index - self._forward <= self._backward - index:
            at = self._starts[self._forward]
            for i in range(self._forward + 1, index + 1):
                at = text.index("\n", at) + 1
                self._starts[i] = at
            self._forward = index
        else:
            at = self._starts[self._backward]
            for i in range(self._backward - 1, index - 1, -1):
                at = text.rfind("\n", 0, at - 1) + 1
                self._starts[i] = at
            self._backward = index
        return self._starts[index]

    def line(self, index: int) -> str:
        return self.text[self.start(index): self.start(index + 1) - 1].removesuffix("\r")


def _read_plain_section(text: str, spec: dict, delimiter: str, file_name: str
                        ) -> Section | None:
    """read_section for a bill of plain lines (no quotes, NULs or lone carriage returns) whose
    records are all as wide: Arrow's reader splits the rows straight from the text between
    header and end marker, with no Python string per line. None for any other bill (blank or
    ragged lines among the rows, or markers not found): read_section's general reading then
    decides, and words its errors."""
    if '"' in text or "\0" in text or text.count("\r") != text.count("\r\n"):
        return None
    lines = _Lines(text)
    start = spec.get("table_start")
    header_at = None
    for i in range(min(lines.count, 200)):  # the preamble: a few lines
        line = lines.line(i)
        if (re.search(start, line) if start else line.strip()):
            header_at = i + 1 if start else i
            break
    if header_at is None or header_at >= lines.count or not lines.line(header_at).strip():
        return None
    end_at = lines.count
    end = spec.get("table_end")
    if end:
        pattern = re.compile(end)
        for back in range(min(lines.count - header_at - 1, 200)):  # the footer: a few lines
            i = lines.count - 1 - back
            if pattern.search(lines.line(i)):
                end_at = i
                break
        else:
            return None
    if end_at <= header_at + 1:
        return None
    header_text = lines.line(header_at)
    if delimiter == "auto":  # WeChat bills come comma- or tab-separated
        delimiter = "\t" if "\t" in header_text else ","
    body = text[lines.start(header_at + 1): lines.start(end_at) - 1]
    if not body.strip() or "\n\n" in body or "\n\r\n" in body:
        return None
    first = body.split("\n", 1)[0]
    width = first.count(delimiter) + 1  # every record as wide, or Arrow refuses the body
    names = [str(i) for i in range(width)]
    try:
        table = pa_csv.read_csv(
            io.BytesIO(body.encode("utf-8")),
            read_options=pa_csv.ReadOptions(column_names=names),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter, quote_char=False, double_quote=False, escape_char=False,
                ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False,
                quoted_strings_can_be_null=False))
    except pa.ArrowInvalid:
        return None
    blank = None
    for column in table.columns:
        empty = pc.equal(pc.utf8_trim_whitespace(column), "")
        blank = empty if blank is None else pc.and_(blank, empty)
    keep = pc.invert(blank)
    line_nos = np.arange(header_at + 2, header_at + 2 + table.num_rows, dtype=np.int64)
    line_nos = line_nos[keep.to_numpy(zero_copy_only=False)]
    table = table.filter(keep)
    if not table.num_rows:
        return None
    cells = table.to_pandas()
    cells.columns = range(width)
    header = [clean(cell) for cell in next(csv.reader([header_text], delimiter=delimiter))]
    return Section(
        preamble=[(i + 1, lines.line(i)) for i in range(header_at)],
        header_line=header_at + 1, header=header, cells=cells, line_nos=line_nos,
        counts=np.full(len(line_nos), width, dtype=np.int64),
        trailer=[(i + 1, line) for i in range(end_at, lines.count)
                 if (line := lines.line(i)).strip()],
        delimiter=delimiter,
    )


def read_records(lines: list[str], first_line: int, delimiter: str, file_name: str
                 ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """CSV records (cells, line each starts on, cell count); records whose cells are all
    blank are skipped. Bills hold no quotes: then a line is a record, its cells are its text
    between delimiters, and Arrow's reader (pandas' C reader when records differ in width)
    splits them into compact columns. A body with quotes (or characters a quoted CSV treats
    specially) is read by the csv module."""
    if any('"' in line or "\r" in line or "\0" in line for line in lines):
        return _read_quoted(lines, first_line, delimiter, file_name)
    kept = [i for i, line in enumerate(lines) if line.replace(delimiter, "").strip()]
    counts = np.fromiter((lines[i].count(delimiter) + 1 for i in kept), np.int64, len(kept))
    line_nos = np.asarray(kept, dtype=np.int64) + first_line
    if not kept:
        return pd.DataFrame(), line_nos, counts
    width = int(counts.max())
    if counts.min() == width:
        # Every record as wide: Arrow's reader builds the columns without a Python string
        # per cell (half the memory of the C reader on a 575 000-row fund-flow member).
        table = pa_csv.read_csv(
            io.BytesIO("\n".join(lines[i] for i in kept).encode("utf-8")),
            read_options=pa_csv.ReadOptions(column_names=[str(c) for c in range(width)]),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter, quote_char=False, double_quote=False, escape_char=False,
                ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(map(str, range(width)), pa.string()),
                strings_can_be_null=False, quoted_strings_can_be_null=False))
        cells = table.to_pandas()
        cells.columns = range(width)
    else:
        cells = pd.read_csv(
            io.StringIO("\n".join(lines[i] for i in kept)), sep=delimiter, header=None,
            names=range(width), dtype=str, na_filter=False, quoting=csv.QUOTE_NONE,
            skip_blank_lines=False, engine="c")
    if len(cells) != len(kept):  # not expected without quotes; the exact reader decides
        return _read_quoted(lines, first_line, delimiter, file_name)
    return cells, line_nos, counts


def _read_quoted(lines: list[str], first_line: int, delimiter: str, file_name: str
                 ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The csv module's reading: quoted cells may hold delimiters and line breaks."""
    reader = csv.reader(lines, delimiter=delimiter)
    records, line_nos, consumed = [], [], 0
    try:
        for cells in reader:
            line_no = first_line + consumed
            consumed = reader.line_num
            if "".join(cells).strip():
                records.append(cells)
                line_nos.append(line_no)
    except csv.Error as exc:
        raise FormatError(file_name, f"malformed row: {exc}", first_line + consumed) from None
    counts = np.fromiter((len(cells) for cells in records), np.int64, len(records))
    width = int(counts.max(initial=0))
    cells = pd.DataFrame([row + [""] * (width - len(row)) for row in records],
                         columns=range(width), dtype="str")
    return cells, np.asarray(line_nos, dtype=np.int64), counts


def clean(cell: str) -> str:
    """Cell text without padding, the TAB after identifiers and WeChat's leading backtick."""
    return cell.strip().removeprefix("`").strip()


def header_key(text: str) -> str:
    """Header names compare without spaces and with full-width parentheses folded:
    `收支金额（元）` and `收支金额(元)` are the same column."""
    return clean(text).replace("（", "(").replace("）", ")").replace(" ", "")


def read_member(section: Section, headers: dict[str, str], spec: dict, file_name: str
                ) -> pd.DataFrame:
    """Text columns (by header NAME, never position) plus line_no, then derived columns."""
    aliases = {header_key(k): header_key(v) for k, v in spec.get("header_aliases", {}).items()}
    positions: dict[str, int] = {}
    for i, cell in enumerate(section.header):
        key = aliases.get(header_key(cell), header_key(cell))
        if key in positions:
            raise FormatError(file_name, "column named twice in header", section.header_line,
                              cell)
        if key:
            positions[key] = i
    # Rows may stop before trailing unnamed header cells, and carry extra empty cells.
    named = max(positions.values(), default=-1) + 1
    width = len(section.header)
    counts, cells = section.counts, section.cells
    wrong = counts < named
    for extra in (c for c in cells.columns if c >= width):
        wrong |= cells[extra].str.strip().ne("").to_numpy()
    if wrong.any():
        first = int(wrong.argmax())
        raise FormatError(file_name, f"expected {width} fields, saw {int(counts[first])}",
                          int(section.line_nos[first]))
    optional = set(spec.get("optional_headers", []))
    data = {"line_no": section.line_nos}
    for column, header in headers.items():
        position = positions.get(header_key(header))
        if position is None and column not in optional:
            raise FormatError(file_name, "missing column(s) in header", section.header_line,
                              header)
        if position is None or position not in cells.columns:
            data[column] = pd.Series("", index=range(len(counts)), dtype="str")
        else:
            data[column] = cells[position].reset_index(drop=True)
    frame = pd.DataFrame(data)
    for column in headers:
        values = frame[column].astype(str).str.strip().str.removeprefix("`").str.strip()
        prefix = spec.get("strip_prefix", {}).get(column)
        frame[column] = values.str.removeprefix(prefix) if prefix else values
    return derive(frame, spec.get("derive", {}), section, file_name)


def derive(frame: pd.DataFrame, rules: dict, section: Section, file_name: str) -> pd.DataFrame:
    """Columns that are not read from a header: a fixed `value`, a `preamble` line's `value`
    group, a `map` of another column's values, or `blank`/`otherwise` on another column being
    empty or zero."""
    for column, rule in rules.items():
        if "value" in rule:
            frame[column] = rule["value"]
        elif "preamble" in rule:
            pattern = re.compile(rule["preamble"])
            match = next((m for _, line in section.preamble if (m := pattern.search(line))), None)
            if match is None:
                raise FormatError(file_name, f"no preamble line matching {rule['preamble']!r}")
            frame[column] = match.group("value").strip()
        elif "map" in rule:
            source = frame[rule["from"]]
            mapped = source.map(rule["map"])
            unknown = mapped.isna()
            if unknown.any():
                first = unknown.idxmax()
                raise FormatError(file_name, f"{source[first]!r} is not one of "
                                  f"{list(rule['map'])}", int(frame.at[first, "line_no"]),
                                  rule["from"])
            frame[column] = mapped.astype(str)
        elif "blank" in rule:
            empty = frame[rule["from"]].str.fullmatch(BLANK_OR_ZERO)
            frame[column] = np.where(empty, rule["blank"], rule["otherwise"])
        else:
            raise FormatError(file_name, f"no derivation for column {column!r} in the source "
                              "configuration")
    return frame


def check_member(section: Section, spec: dict, rows: pd.DataFrame, amounts: dict,
                 file_name: str) -> list[str]:
    """Self-checks of one member's own rows: signs, footer lines and running balance."""
    checks = check_signs(rows, spec["signs"], file_name) if "signs" in spec else []
    for footer in spec.get("footers", []):
        checks += check_footer(section, footer, rows, amounts, file_name)
    if "balance" in spec:
        checks += check_balance(rows, spec["balance"], file_name)
    return checks


def check_signs(rows: pd.DataFrame, spec: dict, file_name: str) -> list[str]:
    """Rows matching `negative` (Alipay refunds) carry amounts <= 0, the others >= 0."""
    negative = pd.Series(True, index=rows.index)
    for column, value in spec["negative"].items():
        negative &= rows[column].eq(value)
    for column in spec["columns"]:
        minor = rows[f"{column}_minor"]
        wrong = (negative & minor.gt(0)) | (~negative & minor.lt(0))
        if wrong.any():
            first = wrong.idxmax()
            rule = " and ".join(f"{c} {v}" for c, v in spec["negative"].items())
            raise FormatError(file_name, f"{rows.at[first, column]!r} has the wrong sign: rows "
                              f"with {rule} are negative, others positive",
                              int(rows.at[first, "line_no"]), column)
    return [f"signs: {int(negative.sum())} negative rows, {int((~negative).sum())} positive"]


# fee_sign (the source configuration; docs/formats.md "Channel fees") -> the sign a printed fee
# may have on payment rows and on refund rows: +1 (>= 0), -1 (<= 0).
FEE_SIGN_RULES = {
    "as_printed_cost": (1, -1, "charged on a payment is positive, returned on a refund "
                              "negative"),
    "as_printed_deduction": (-1, 1, "charged on a payment is negative, returned on a refund "
                                    "positive"),
    "charged_on_payments": (1, 1, "is printed without a sign"),
}


def check_fee_sign(rows: pd.DataFrame, convention: str | None, file_name: str,
                   fee: str = "fee") -> list[str]:
    """The printed fees have the signs the source's `fee_sign` convention says: a bill printed
    in another convention would turn fees returned into fees charged (or back) unseen."""
    if convention is None:
        return []
    on_payment, on_refund, said = FEE_SIGN_RULES[convention]
    minor = rows[f"{fee}_minor"]
    sign = np.where(rows["kind"].eq("refund"), on_refund, on_payment)
    wrong = (minor * sign).lt(0)
    if wrong.any():
        first = wrong.idxmax()
        raise FormatError(file_name, f"fee {rows.at[first, fee]!r} on a {rows.at[first, 'kind']}"
                          f" row does not fit fee_sign {convention}: a fee {said}",
                          int(rows.at[first, "line_no"]), fee)
    return [f"fee signs: {convention}"]


def check_footer(section: Section, footer: dict, rows: pd.DataFrame, amounts: dict,
                 file_name: str) -> list[str]:
    """A footer line like `#交易合计：6笔，商家实收共0.06元，...`: its `count` group is the number
    of rows matching `where`, every other named group the sum of that amount column."""
    label = footer["label"]
    hits = [(n, line) for n, line in section.trailer if line.strip().startswith(label)]
    if not hits:
        raise FormatError(file_name, f"no footer line starting {label!r}")
    line_no, line = hits[0]
    match = re.search(footer["line"], line)
    if match is None:
        raise FormatError(file_name, f"footer line does not read as {footer['line']!r}",
                          line_no)
    checks = []
    for group, stated in match.groupdict().items():
        total = {"count": True} if group == "count" else {"sum": group}
        total.update(where=footer.get("where", {}), magnitude=footer.get("magnitude", False))
        checks.append(check_total(rows, amounts, stated, total, file_name, line_no, group,
                                  f"footer {label.strip('#：:')}"))
    return checks


def check_summary(section: Section, spec: dict, rows: pd.DataFrame, amounts: dict,
                  file_name: str) -> list[str]:
    """A totals file (业务明细(汇总)): its `total_row` must agree with the detail rows, for
    every configured total whose column the file has."""
    label = spec["total_row"]
    firsts = section.cells[0].map(clean) if len(section.counts) else pd.Series(dtype="str")
    found = np.flatnonzero(firsts.eq(label).to_numpy())
    if not len(found):
        raise FormatError(file_name, f"no {label!r} row")
    line_no, cells = int(section.line_nos[found[0]]), section.record(int(found[0]))
    values = {header_key(h): clean(c) for h, c in zip(section.header, cells, strict=False)}
    present = {h: t for h, t in spec["totals"].items() if header_key(h) in values}
    if not present:
        raise FormatError(file_name, f"none of the total columns {list(spec['totals'])}",
                          section.header_line)
    return [check_total(rows, amounts, values[header_key(h)], t, file_name, line_no, h,
                        f"summary {label}") for h, t in present.items()]


def check_readings(rows: pd.DataFrame, amounts: dict, stated: str, total: dict,
                   file_name: str, line: int, field: str, where_said: str) -> str:
    """A total the channel does not define unambiguously: `readings` lists each convention
    real files are known to use (each a total as for `check_total`, with a `reading` name).
    The total is accepted when one reading fits; the check names the one that did. A total
    that fits none is refused, naming every reading and what the rows add up to under it."""
    failures = []
    for reading in total["readings"]:
        try:
            check = check_total(rows, amounts, stated, reading, file_name, line, field,
                                where_said)
        except FormatError as exc:
            if exc.line != line or exc.field_name != field:
                raise
            failures.append(f"{reading['reading']}: {exc.message.split(', ', 1)[-1]}")
            continue
        return f"{check} ({reading['reading']})"
    raise FormatError(file_name, f"total says {stated}, which fits no known reading: "
                      + "; ".join(failures), line, field)


def check_total(rows: pd.DataFrame, amounts: dict, stated: str, total: dict, file_name: str,
                line: int, field: str, where_said: str) -> str:
    """One stated total against the rows: `count` of rows, or `sum` of an amount column, over
    the rows matching `where`; `magnitude` compares absolute values (files that print
    outflows with either sign)."""
    if "readings" in total:
        return check_readings(rows, amounts, stated, total, file_name, line, field,
                              where_said)
    mask = pd.Series(True, index=rows.index)
    for column, value in total.get("where", {}).items():
        mask &= rows[column].eq(value)
    label = f"{where_said} {field}"
    if total.get("count"):
        if not re.fullmatch(r"\d+(?:\.0*)?", stated):  # WeChat writes counts as "45.0"
            raise FormatError(file_name, f"{stated!r} is not a count", line, field)
        said, have = int(stated.split(".")[0]), int(mask.sum())
        if said != have:
            raise FormatError(file_name, f"total says {said} rows, the file has {have}", line,
                              field)
        return f"{label}: {have} rows"
    column = total["sum"]
    currency = single_currency(rows, amounts[column], file_name)
    try:
        said = money.to_minor(stated, currency)
    except money.AmountError:
        raise FormatError(file_name, f"{stated!r} is not an amount in {currency}", line,
                          field) from None
    have = {int(rows.loc[mask, f"{column}_minor"].sum())}
    if f"{column}_inexact" in rows:
        # Values beyond the minor unit (WeChat fees): the channel may total the exact values
        # and round once, or total the rounded values; either is the file agreeing with itself.
        have.add(exact_sum_minor(rows.loc[mask, column], currency))
    if total.get("magnitude"):
        said, have = abs(said), {abs(h) for h in have}
    if said not in have:
        sums = " or ".join(money.format_minor(h, currency) for h in sorted(have))
        raise FormatError(file_name, f"total says {stated} {currency}, the rows add up to "
                          f"{sums}", line, field)
    return f"{label}: {money.format_minor(said, currency)} {currency}"


def single_currency(rows: pd.DataFrame, spec, file_name: str) -> str:
    if spec.currency:
        return spec.currency
    currencies = rows[spec.currency_field].unique()
    if len(currencies) != 1:
        raise FormatError(file_name, f"totals over several currencies {sorted(currencies)}")
    return str(currencies[0])


def exact_sum_minor(texts: pd.Series, currency: str) -> int:
    # finish() has refused texts that are not plain decimals; blank counts as zero.
    exact = sum((Decimal(t or "0") for t in texts), Decimal(0))
    scaled = exact.scaleb(money.exponent(currency))
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def check_balance(rows: pd.DataFrame, spec: dict, file_name: str) -> list[str]:
    """Balance after each booking = balance after the one before it + its amount. Rows may be
    listed oldest or newest first (Alipay lists newest first); rows in neither time order
    cannot be rolled and are not checked."""
    balance = rows[f"{spec['balance']}_minor"]
    if "amount" in spec:  # one positive amount and a credit/debit direction (WeChat)
        amount = rows[f"{spec['amount']}_minor"].abs()
        delta = amount.where(rows[spec["direction"]].eq("credit"), -amount)
    else:  # income and expense columns, expense printed negative or not (Alipay)
        delta = rows[f"{spec['credit']}_minor"].abs() - rows[f"{spec['debit']}_minor"].abs()
    times = rows[spec["time"]]
    if times.is_monotonic_increasing:
        before = balance.shift()
    elif times.is_monotonic_decreasing:
        before = balance.shift(-1)
    else:
        return []
    expected = before + delta
    wrong = before.notna() & expected.ne(balance)
    if wrong.any():
        first = wrong.idxmax()
        raise FormatError(file_name, f"balance does not roll forward: expected "
                          f"{int(expected[first])} minor units, file says {int(balance[first])}",
                          int(rows.at[first, "line_no"]), spec["balance"])
    return [f"balance: {len(rows)} bookings roll forward"]
