"""ISO 20022 camt.053 bank-to-customer statements (XML), any camt.053.001.xx version.

One message holds one or more <Stmt>; each has balances (<Bal>), an optional transaction
summary (<TxsSummry>) and entries (<Ntry>). Main rows are entries: one row per <Ntry>, except a
batch entry whose <TxDtls> all carry an amount (TxDtls/Amt or AmtDtls/TxAmt or AmtDtls/InstdAmt)
in the entry's currency and direction that add up exactly to the entry: it becomes one row per
<TxDtls>, each with its own references. Amounts are kept positive with a `direction` column
(CdtDbtInd); balances are signed decimal text (DBIT -> "-"). The secondary table `statements`
holds one row per <Stmt>. See docs/formats/bank_camt053.md.

The XML is read incrementally with lxml's iterparse, entities and network access off: each
entry is read and dropped, so memory follows the rows kept, not the document tree (about 16×
the file). line_no is the element's source line (<Ntry>, <TxDtls> for split batch rows,
<Stmt> for statements).
"""

from __future__ import annotations

import io
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache

import pandas as pd
from lxml import etree

from tally.formats import CHUNK_ROWS, FormatError, Parsed, Piece, Pieces, collect
from tally.formats.common import decode, finish_source, finish_table, records_frame

NAMESPACE = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.(\d{2})$")
DIRECTIONS = {"CRDT": "credit", "DBIT": "debit"}
# Statuses whose entries are not (yet) on the booked balance.
NOT_BOOKED = {"PDNG", "INFO"}
# Balance code -> statements column. The opening booked balance is OPBD, else PRCD (previous
# closing), else the first ITBD (interim, on a statement page); closing is CLBD, else the next
# ITBD. Other codes (FWAV, INFO, ...) are checked for currency but not kept.
OPENING_CODES = ("OPBD", "PRCD", "ITBD")
AVAILABLE = {"OPAV": "opening_available", "CLAV": "closing_available"}
SUMMARY_COUNTS = {
    "summary_count": "TtlNtries/NbOfNtries",
    "summary_credit_count": "TtlCdtNtries/NbOfNtries",
    "summary_debit_count": "TtlDbtNtries/NbOfNtries",
}
SUMMARY_SUMS = {
    "summary_sum": "TtlNtries/Sum",
    "summary_credit_sum": "TtlCdtNtries/Sum",
    "summary_debit_sum": "TtlDbtNtries/Sum",
}
JOIN = ";"  # joins several TxDtls' references on one unsplit entry row


@lru_cache(maxsize=512)
def _qualified(ns: str, path: str) -> str:
    return "/".join(f"{{{ns}}}{step}" for step in path.split("/"))


class _Doc:
    """Namespace-aware lookups on one document."""

    def __init__(self, ns: str):
        self.ns = ns

    def find(self, element, path: str):
        return element.find(_qualified(self.ns, path))

    def all(self, element, path: str) -> list:
        return element.findall(_qualified(self.ns, path))

    def text(self, element, *paths: str) -> str:
        """The first non-empty text among paths (stripped), or ""."""
        for path in paths:
            found = element.findtext(_qualified(self.ns, path))
            if found and found.strip():
                return found.strip()
        return ""


def _xml_error(exc: etree.XMLSyntaxError, file_name: str) -> FormatError:
    line, column = exc.position if exc.position else (exc.lineno, None)
    reason = re.sub(r"(, line \d+, column \d+)+$", "", exc.msg)
    return FormatError(file_name, f"XML breaks at line {line}, column {column}: {reason}", line)


def _document(root, file_name: str) -> _Doc:
    """The namespace helper for a camt.053 root element; anything else is refused."""
    qname = etree.QName(root)
    match = NAMESPACE.match(qname.namespace or "")
    if qname.localname != "Document" or not match:
        raise FormatError(
            file_name,
            f"not a camt.053 statement: root element <{qname.localname}> in namespace "
            f"{qname.namespace!r}, expected <Document> in "
            "urn:iso:std:iso:20022:tech:xsd:camt.053.001.xx", root.sourceline)
    return _Doc(qname.namespace)


def iter_statements(data: bytes, config, file_name: str):
    """Decode, then parse incrementally: yields (doc, "header", GrpHdr), then per statement
    (doc, "entry", Ntry) for each entry and (doc, "statement", Stmt) at its end. An entry is
    cleared and dropped from the tree once the caller has read it, so memory holds one entry
    at a time, not the whole document (a day's statement can be 100+ MB of XML). The Stmt
    keeps what precedes its entries (Id, Acct, Bal, TxsSummry). Returns the encoding used."""
    text, encoding = decode(data, config.encoding, file_name)
    head = text.lstrip()[:512].lower()
    if head.startswith("<!doctype html") or head.startswith("<html"):
        raise FormatError(file_name, "an HTML page, not a camt.053 statement", 1)
    # The bytes are the text's UTF-8 already unless it came in another encoding.
    if encoding == "utf-8":
        payload = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    else:
        payload = text.encode("utf-8")
    del text
    # No entity expansion, no DTD or network fetches, no huge-tree limits lifted. The text is
    # decoded already, so the declared encoding is overridden with the one we re-encode to.
    events = etree.iterparse(
        io.BytesIO(payload), events=("start", "end"), resolve_entities=False, no_network=True,
        huge_tree=False, load_dtd=False, encoding="utf-8",
        tag=("{*}Document", "{*}BkToCstmrStmt", "{*}GrpHdr", "{*}Stmt", "{*}Ntry"))
    doc, message, statements = None, None, 0
    try:
        for event, element in events:
            if doc is None:
                doc = _document(element.getroottree().getroot(), file_name)
            parent = element.getparent()
            qname = etree.QName(element)
            if qname.namespace != doc.ns:
                continue
            name = qname.localname
            if event == "start":
                if name == "BkToCstmrStmt" and parent is not None and parent.getparent() is None:
                    message = element
                continue
            if message is None or parent is None:
                continue
            if name == "GrpHdr" and parent is message:
                yield doc, "header", element
            elif name == "Stmt" and parent is message:
                statements += 1
                yield doc, "statement", element
                element.clear()
            elif name == "Ntry" and parent.getparent() is message:
                yield doc, "entry", element
                element.clear()
                before = element.getprevious()
                if before is not None and before.tag == element.tag:
                    parent.remove(before)
        root = events.root
    except etree.XMLSyntaxError as exc:
        raise _xml_error(exc, file_name) from None
    if doc is None:
        doc = _document(root, file_name)
    if message is None:
        raise FormatError(file_name, "camt.053 document without <BkToCstmrStmt>",
                          root.sourceline)
    if not statements:
        raise FormatError(file_name, "camt.053 message without <Stmt>", message.sourceline)
    return encoding


def parse(data: bytes, config, file_name: str) -> Parsed:
    return collect(Pieces(parse_pieces(data, config, file_name)), config)


ENTRY_PIECE_ROWS = 25_000
# What the self-checks need of each row once its piece has been handed over.
CHECKED_COLUMNS = ["amount", "amount_minor", "amount_inexact", "direction", "status"]


def parse_pieces(data: bytes, config, file_name: str, chunk_rows: int = CHUNK_ROWS):
    """Entry rows in pieces of about `chunk_rows` as the entries are read, then the
    statements table; returns (checks, encoding) once every statement has been checked. Of a
    piece handed over only what the checks need is kept (amount, direction, status)."""
    kept: list[pd.DataFrame] = []
    # An entry is read into a dict of ~25 texts before its piece becomes columns: smaller
    # pieces than the loader's default keep those dicts few.
    reading = _read(data, config, file_name, min(chunk_rows, ENTRY_PIECE_ROWS))
    while True:
        try:
            rows = next(reading)
        except StopIteration as done:
            statements, meta, encoding = done.value
            break
        kept.append(rows[[c for c in CHECKED_COLUMNS if c in rows]])
        yield Piece(None, rows)
    yield Piece("statements", statements)
    checked = Parsed(rows=pd.concat(kept).reset_index(drop=True),
                     tables={"statements": statements})
    return check(checked, meta, file_name), encoding


def read(data: bytes, config, file_name: str) -> tuple[Parsed, dict]:
    """Rows and statements, typed but not yet self-checked (parse() checks them). Also returns
    what the checks need: per row its statement and entry, per statement its line numbers."""
    reading = _read(data, config, file_name, CHUNK_ROWS)
    frames = []
    while True:
        try:
            frames.append(next(reading))
        except StopIteration as done:
            statements, meta, encoding = done.value
            break
    rows = pd.concat(frames).reset_index(drop=True)
    return Parsed(rows=rows, tables={"statements": statements}, encoding=encoding), meta


def _read(data: bytes, config, file_name: str, chunk_rows: int):
    """Yields the entry rows, typed, in frames of about `chunk_rows` (at least one frame, maybe
    empty); returns (statements table, what the checks need, encoding)."""
    message_id = ""
    rows, statements, row_meta, stmt_meta = [], [], [], []
    current, seq = None, 0  # the statement being read
    stream = iter_statements(data, config, file_name)
    yielded = False
    while True:
        try:
            doc, kind, element = next(stream)
        except StopIteration as done:
            encoding = done.value
            break
        if kind == "header":
            message_id = doc.text(element, "MsgId")
            continue
        stmt = element if kind == "statement" else element.getparent()
        if current is None:
            # Read on its first entry (or at its end when it has none): Id, Acct, Bal and
            # TxsSummry come before the entries, so their errors are reported first.
            current, meta = _statement(doc, stmt, message_id, file_name)
        if kind == "entry":
            seq += 1
            for row in _entry_rows(doc, element, file_name):
                row.update(statement_id=current["statement_id"], account=current["account"],
                           entry_seq=str(seq))
                rows.append(row)
                row_meta.append((len(statements), seq))
            if len(rows) >= chunk_rows:
                yield finish_source(records_frame(rows, config.columns), config, file_name)
                rows, yielded = [], True
            continue
        current["entry_count"] = str(seq)
        statements.append(current)
        stmt_meta.append(meta)
        current, seq = None, 0
    # A minified XML puts every entry on line 1: rows are still told apart by their
    # statement and entry sequence (and by record number in the raw tables).
    if rows or not yielded:
        yield finish_source(records_frame(rows, config.columns), config, file_name,
                            allow_empty=True)
    del rows
    table = finish_table(records_frame(statements, config.tables["statements"].columns),
                         config, "statements", file_name)
    meta = {"rows": pd.DataFrame(row_meta, columns=["statement", "entry"]),
            "statements": stmt_meta}
    return table, meta, encoding


def _amount(doc: _Doc, element, path: str) -> tuple[str, str]:
    """(amount text, Ccy attribute) of an amount element, ("", "") when absent."""
    found = doc.find(element, path)
    if found is None:
        return "", ""
    return (found.text or "").strip(), (found.get("Ccy") or "").strip()


def _line(doc: _Doc, element, path: str) -> int:
    """The line of a child (e.g. a balance's <Amt>), else of the element itself."""
    found = doc.find(element, path)
    return (found if found is not None else element).sourceline


def _date(text: str, file_name: str, line: int, field: str) -> str:
    """ISODate or ISODateTime -> YYYY-MM-DD: the calendar date as written (its own offset)."""
    if not text:
        return ""
    try:
        return date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        raise FormatError(file_name, f"{text!r} is not an ISO date or date-time", line,
                          field) from None


def _direction(doc: _Doc, element, file_name: str, field: str) -> str:
    code = doc.text(element, "CdtDbtInd")
    if code not in DIRECTIONS:
        raise FormatError(file_name, f"CdtDbtInd {code!r} is not CRDT or DBIT",
                          element.sourceline, field)
    return DIRECTIONS[code]


def _statement(doc: _Doc, stmt, message_id: str, file_name: str) -> tuple[dict, dict]:
    statement_id = doc.text(stmt, "Id")
    row = {
        "line_no": stmt.sourceline, "statement_id": statement_id, "message_id": message_id,
        "created_at": doc.text(stmt, "CreDtTm"), "legal_seq": doc.text(stmt, "LglSeqNb"),
        "electronic_seq": doc.text(stmt, "ElctrncSeqNb"),
        "account": doc.text(stmt, "Acct/Id/IBAN", "Acct/Id/Othr/Id"),
    }
    balances = doc.all(stmt, "Bal")
    currency = doc.text(stmt, "Acct/Ccy")
    if not currency and balances:
        currency = _amount(doc, balances[0], "Amt")[1]
    row["currency"] = currency
    meta = {"closing_line": stmt.sourceline, "summary_line": None}

    found: dict[str, list] = {}
    for bal in balances:
        code = doc.text(bal, "Tp/CdOrPrtry/Cd", "Tp/CdOrPrtry/Prtry")
        found.setdefault(code, []).append(bal)
    opening_code = next((c for c in OPENING_CODES if c in found), "")
    opening = found[opening_code][0] if opening_code else None
    closing_code, closing = "", None
    interim = [b for b in found.get("ITBD", []) if b is not opening]
    if "CLBD" in found:
        closing_code, closing = "CLBD", found["CLBD"][0]
    elif interim:
        closing_code, closing = "ITBD", interim[-1]
    columns = {id(opening): "opening", id(closing): "closing",
               **{id(found[c][0]): name for c, name in AVAILABLE.items() if c in found}}
    for bal in balances:
        name = columns.get(id(bal))
        field = f"{name}_balance" if name in ("opening", "closing") else name or "Bal"
        amount, ccy = _amount(doc, bal, "Amt")
        if ccy != currency:
            raise FormatError(
                file_name, f"balance {doc.text(bal, 'Tp/CdOrPrtry/Cd')} is in {ccy!r}, but "
                f"statement {statement_id!r} is in {currency!r}", _line(doc, bal, "Amt"), field)
        if name is None:
            continue
        sign = "-" if _direction(doc, bal, file_name, field) == "debit" else ""
        row[field] = sign + amount
        row[f"{name}_date"] = _date(doc.text(bal, "Dt/Dt", "Dt/DtTm"), file_name,
                                    bal.sourceline, f"{name}_date")
    for found_balance, name, codes in ((opening, "opening", "OPBD, PRCD or ITBD"),
                                       (closing, "closing", "CLBD or ITBD")):
        if found_balance is None:
            raise FormatError(file_name, f"statement {statement_id!r} has no {name} balance "
                              f"({codes})", stmt.sourceline, f"{name}_balance")
    row["opening_code"], row["closing_code"] = opening_code, closing_code
    if closing is not None:
        meta["closing_line"] = _line(doc, closing, "Amt")

    summary = doc.find(stmt, "TxsSummry")
    if summary is not None:
        meta["summary_line"] = summary.sourceline
        for name, path in {**SUMMARY_COUNTS, **SUMMARY_SUMS}.items():
            row[name] = doc.text(summary, path)
        net = doc.find(summary, "TtlNtries/TtlNetNtry")  # version 04 and later
        net_amount = (doc.text(net, "Amt") if net is not None
                      else doc.text(summary, "TtlNtries/TtlNetNtryAmt"))
        if net_amount:
            owner = net if net is not None else doc.find(summary, "TtlNtries")
            sign = "-" if _direction(doc, owner, file_name, "summary_net") == "debit" else ""
            row["summary_net"] = sign + net_amount
    return row, meta


def _flatten(element, skip: str = "") -> dict[str, list[str]]:
    """Every text and attribute below element by local path ("Refs/EndToEndId",
    "Amt@Ccy"), in document order; children named `skip` are left out, with everything below
    them. One walk per entry is much faster than one lookup per field; the walk is lxml's
    (iterdescendants, in C), each element's path its parent's path and its own name."""
    found: dict[str, list[str]] = {}
    paths = {element: ""}  # element -> its path and "/", for the elements kept
    for child in element.iterdescendants():
        tag = child.tag
        if type(tag) is not str:  # comments, processing instructions
            continue
        parent = paths.get(child.getparent())
        if parent is None:  # below a skipped element
            continue
        name = tag.rpartition("}")[2]
        if name == skip:
            continue
        path = parent + name
        paths[child] = path + "/"
        text = child.text
        if text and (text := text.strip()):
            found.setdefault(path, []).append(text)
        if child.attrib:
            for key, value in child.items():
                found.setdefault(f"{path}@{key}", []).append(value.strip())
    return found


def _first(flat: dict, *paths: str) -> str:
    for path in paths:
        if path in flat:
            return flat[path][0]
    return ""


def _bank_code(flat: dict) -> str:
    domain = "-".join(filter(None, (_first(flat, "BkTxCd/Domn/Cd"),
                                    _first(flat, "BkTxCd/Domn/Fmly/Cd"),
                                    _first(flat, "BkTxCd/Domn/Fmly/SubFmlyCd"))))
    return domain or _first(flat, "BkTxCd/Prtry/Cd")


def _details(flat: dict, direction: str) -> dict:
    """What one <TxDtls> says: references, remittance, counterparty."""
    # The counterparty is the other side of the booking as booked: the debtor of a credit,
    # the creditor of a debit (versions 08+ wrap the party in <Pty>).
    role = "Dbtr" if direction == "credit" else "Cdtr"
    return {
        "bank_reference": _first(flat, "Refs/AcctSvcrRef"),
        "end_to_end_id": _first(flat, "Refs/EndToEndId"),
        "instruction_id": _first(flat, "Refs/InstrId"),
        "transaction_id": _first(flat, "Refs/TxId"),
        "message_id": _first(flat, "Refs/MsgId"),
        "payment_info_id": _first(flat, "Refs/PmtInfId"),
        "remittance": " ".join(flat.get("RmtInf/Ustrd", [])),
        "creditor_reference": _first(flat, "RmtInf/Strd/CdtrRefInf/Ref"),
        "additional_info": _first(flat, "AddtlTxInf"),
        "counterparty": _first(flat, f"RltdPties/{role}/Nm", f"RltdPties/{role}/Pty/Nm"),
        "counterparty_account": _first(flat, f"RltdPties/{role}Acct/Id/IBAN",
                                       f"RltdPties/{role}Acct/Id/Othr/Id"),
        "bank_tx_code": _bank_code(flat),
    }


def _split_amounts(details: list[dict], amount: str, currency: str,
                   direction: str) -> list[str] | None:
    """Each TxDtls' amount text if they split the entry exactly, else None."""
    if len(details) < 2:
        return None
    texts = []
    for flat in details:
        path = next((p for p in ("Amt", "AmtDtls/TxAmt/Amt", "AmtDtls/InstdAmt/Amt")
                     if p in flat), None)
        own = _first(flat, "CdtDbtInd")
        if (path is None or _first(flat, f"{path}@Ccy") != currency
                or (own and DIRECTIONS.get(own) != direction)):
            return None
        texts.append(flat[path][0])
    try:
        exact = sum(Decimal(t) for t in texts) == Decimal(amount)
    except InvalidOperation:
        return None
    return texts if exact else None


def _entry_rows(doc: _Doc, ntry, file_name: str) -> list[dict]:
    line = ntry.sourceline
    flat = _flatten(ntry, skip="TxDtls")
    code = _first(flat, "CdtDbtInd")
    if code not in DIRECTIONS:
        raise FormatError(file_name, f"CdtDbtInd {code!r} is not CRDT or DBIT", line,
                          "direction")
    direction = DIRECTIONS[code]
    amount, currency = _first(flat, "Amt"), _first(flat, "Amt@Ccy")
    booking = _first(flat, "BookgDt/Dt", "BookgDt/DtTm")
    value = _first(flat, "ValDt/Dt", "ValDt/DtTm")
    entry = {
        "line_no": line, "entry_ref": _first(flat, "NtryRef"),
        "status": _first(flat, "Sts/Cd", "Sts/Prtry", "Sts"),
        "booking_date": _date(booking, file_name, line, "booking_date"),
        "booking_date_text": booking,
        "value_date": _date(value, file_name, line, "value_date"), "value_date_text": value,
        "direction": direction,
        "reversal": "true" if _first(flat, "RvslInd").lower() in ("true", "1") else "false",
        "amount": amount, "currency": currency,
        "bank_reference": _first(flat, "AcctSvcrRef"),
        "message_id": _first(flat, "NtryDtls/Btch/MsgId"),
        "payment_info_id": _first(flat, "NtryDtls/Btch/PmtInfId"),
        "additional_info": _first(flat, "AddtlNtryInf"),
        "bank_tx_code": _bank_code(flat),
    }
    txs = doc.all(ntry, "NtryDtls/TxDtls")
    if not txs:
        return [entry]
    flats = [_flatten(tx) for tx in txs]
    split = _split_amounts(flats, amount, currency, direction)
    if split:
        return [{**entry, **_prefer(_details(f, direction), entry),
                 "line_no": tx.sourceline, "amount": text}
                for tx, f, text in zip(txs, flats, split, strict=True)]
    details = [_details(f, direction) for f in flats]
    if len(details) == 1:
        return [{**entry, **_prefer(details[0], entry)}]
    joined = {key: JOIN.join(dict.fromkeys(d[key] for d in details if d[key]))
              for key in details[0]}
    return [{**entry, **_prefer(joined, entry)}]


def _prefer(details: dict, entry: dict) -> dict:
    """Transaction-level values win; the entry's fill in where the transaction has none."""
    return {key: value or entry.get(key, "") for key, value in details.items()}


# ---- self-checks -------------------------------------------------------------------------

def _values(frame: pd.DataFrame, column: str, exact: bool) -> pd.Series:
    """Minor units, or exact Decimals of the text when some value has excess precision."""
    if not exact:
        return frame[f"{column}_minor"].astype("int64")
    return frame[column].map(lambda t: Decimal(t.strip() or "0"))


def check(parsed: Parsed, meta: dict, file_name: str) -> list[str]:
    rows, statements = parsed.rows, parsed.tables["statements"]
    where = meta["rows"]
    flags = [frame[c] for frame in (rows, statements) for c in frame.columns
             if c.endswith("_inexact")]
    exact = any(bool(flag.any()) for flag in flags)
    unit = "" if exact else " minor units"
    amount = _values(rows, "amount", exact)
    credit = rows["direction"].eq("credit")
    booked = ~rows["status"].isin(NOT_BOOKED)
    openings = _values(statements, "opening_balance", exact)
    closings = _values(statements, "closing_balance", exact)
    summaries = 0
    for s, stmt in statements.iterrows():
        mine = where["statement"].eq(s)
        info = meta["statements"][s]
        opening, closing = openings[s], closings[s]
        credits = amount[mine & booked & credit].sum()
        debits = amount[mine & booked & ~credit].sum()
        if opening + credits - debits != closing:
            raise FormatError(
                file_name,
                f"statement {stmt['statement_id']!r} does not add up: opening "
                f"{stmt['opening_code']} {opening} + credits {credits} - debits {debits} = "
                f"{opening + credits - debits}{unit} {stmt['currency']}, but "
                f"{stmt['closing_code']} says {closing}", info["closing_line"],
                "closing_balance")
        if info["summary_line"] is not None:
            summaries += 1
            # Entries, not rows: a split batch entry counts once (its rows share a direction).
            entries = pd.DataFrame({"entry": where["entry"], "amount": amount,
                                    "credit": credit})[mine]
            entries = entries.groupby("entry").agg(amount=("amount", "sum"),
                                                   credit=("credit", "first"))
            _check_summary(stmt, entries, exact, info["summary_line"], file_name)
    checks = [f"camt053 balances: {len(statements)} statement(s) roll forward from opening "
              f"to closing balance"]
    if summaries:
        checks.append(f"camt053 TxsSummry: {summaries} statement summary(ies) match the entries")
    return checks


def _check_summary(stmt: pd.Series, entries: pd.DataFrame, exact: bool, line: int,
                   file_name: str) -> None:
    credits = entries.loc[entries["credit"], "amount"]
    debits = entries.loc[~entries["credit"], "amount"]
    expected = {
        "summary_count": len(entries), "summary_credit_count": len(credits),
        "summary_debit_count": len(debits), "summary_sum": credits.sum() + debits.sum(),
        "summary_credit_sum": credits.sum(), "summary_debit_sum": debits.sum(),
        "summary_net": credits.sum() - debits.sum(),
    }
    for name, want in expected.items():
        text = stmt[name].strip()
        if not text:
            continue
        if name in SUMMARY_COUNTS:
            if not text.isdigit():
                raise FormatError(file_name, f"{text!r} is not a count", line, name)
            said = int(text)
        else:
            said = Decimal(text) if exact else int(stmt[f"{name}_minor"])
        if said != want:
            raise FormatError(
                file_name, f"TxsSummry of statement {stmt['statement_id']!r} says {said}, "
                f"the entries give {want}", line, name)
