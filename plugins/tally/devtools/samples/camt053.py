"""Sample ISO 20022 camt.053 statements, read back by tally.formats.camt053 with
include/sources/bank_camt053.yaml.

`render(bookings, openings, business_date, version="02")`: `bookings` has columns account,
currency, booked_at (naive local datetime64), bank_serial, reference, counterparty, direction
('credit'|'debit'), amount_minor (int64); `openings` is {account: opening balance in minor
units}. One message; one <Stmt> per account (sorted), entries ordered by booked_at then
bank_serial, with OPBD and CLBD balances (closing = opening + credits - debits) and a
<TxsSummry>. Each entry is one <Ntry> with one <TxDtls>: bank_serial -> Ntry/AcctSvcrRef,
reference -> Refs/EndToEndId, counterparty -> Dbtr/Nm of a credit, Cdtr/Nm of a debit;
optional columns counterparty_account -> DbtrAcct (CdtrAcct) /Id/Othr/Id (IBAN when it is
one) and remittance -> RmtInf/Ustrd.
`version` "02" or "08" picks the namespace and the few elements that differ.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import numpy as np
import pandas as pd

from tally import money

IBAN = re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$")
NOT_XML = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"  # control characters XML 1.0 cannot carry


def _escape(text: pd.Series) -> pd.Series:
    text = text.fillna("").astype(str)
    if text.str.contains(NOT_XML, regex=True).any():
        raise ValueError("text with control characters cannot be written to XML")
    return (text.str.replace("&", "&amp;", regex=False).str.replace("<", "&lt;", regex=False)
            .str.replace(">", "&gt;", regex=False).str.replace('"', "&quot;", regex=False))


def _escape_one(text: str) -> str:
    return _escape(pd.Series([text]))[0]


def _balance(code: str, minor: int, currency: str, when: date) -> str:
    return (f"      <Bal>\n"
            f"        <Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>\n"
            f'        <Amt Ccy="{currency}">{money.format_minor(abs(minor), currency)}</Amt>\n'
            f"        <CdtDbtInd>{'DBIT' if minor < 0 else 'CRDT'}</CdtDbtInd>\n"
            f"        <Dt><Dt>{when:%Y-%m-%d}</Dt></Dt>\n"
            f"      </Bal>")


def _summary(credit: pd.Series, minor: pd.Series, currency: str, version: str) -> str:
    credits, debits = minor[credit], minor[~credit]
    net = int(credits.sum()) - int(debits.sum())
    net_ind = "DBIT" if net < 0 else "CRDT"
    net_xml = (f"<TtlNetNtryAmt>{money.format_minor(abs(net), currency)}</TtlNetNtryAmt>"
               f"<CdtDbtInd>{net_ind}</CdtDbtInd>" if version == "02" else
               f"<TtlNetNtry><Amt>{money.format_minor(abs(net), currency)}</Amt>"
               f"<CdtDbtInd>{net_ind}</CdtDbtInd></TtlNetNtry>")
    return (f"      <TxsSummry>\n"
            f"        <TtlNtries><NbOfNtries>{len(minor)}</NbOfNtries>"
            f"<Sum>{money.format_minor(int(minor.sum()), currency)}</Sum>{net_xml}</TtlNtries>\n"
            f"        <TtlCdtNtries><NbOfNtries>{len(credits)}</NbOfNtries>"
            f"<Sum>{money.format_minor(int(credits.sum()), currency)}</Sum></TtlCdtNtries>\n"
            f"        <TtlDbtNtries><NbOfNtries>{len(debits)}</NbOfNtries>"
            f"<Sum>{money.format_minor(int(debits.sum()), currency)}</Sum></TtlDbtNtries>\n"
            f"      </TxsSummry>")


def _entries(rows: pd.DataFrame, credit: pd.Series, minor: pd.Series, currency: str,
             version: str) -> pd.Series:
    """One <Ntry> per booking, one element per line so each entry has its own source line."""
    booked = pd.to_datetime(rows["booked_at"])
    index = rows.index

    def choose(on_credit: str, on_debit: str) -> pd.Series:
        return pd.Series(np.where(credit, on_credit, on_debit), index=index)

    status = "<Sts>BOOK</Sts>" if version == "02" else "<Sts><Cd>BOOK</Cd></Sts>"
    party = choose("Dbtr", "Cdtr")
    name = _escape(rows["counterparty"])
    name_xml = "<Nm>" + name + "</Nm>"
    if version != "02":
        name_xml = "<Pty>" + name_xml + "</Pty>"
    empty = pd.Series("", index=index)
    account = _escape(rows["counterparty_account"]) if "counterparty_account" in rows else empty
    account_id = account.map(lambda a: f"<IBAN>{a}</IBAN>" if IBAN.match(a)
                             else f"<Othr><Id>{a}</Id></Othr>")
    account_xml = ("<" + party + "Acct><Id>" + account_id + "</Id></" + party
                   + "Acct>").where(account.ne(""), "")
    party_xml = ("<" + party + ">" + name_xml + "</" + party + ">").where(name.ne(""), "")
    parties = ("            <RltdPties>" + party_xml + account_xml
               + "</RltdPties>\n").where(name.ne("") | account.ne(""), "")
    remittance = _escape(rows["remittance"]) if "remittance" in rows else empty
    remittance_xml = ("            <RmtInf><Ustrd>" + remittance
                      + "</Ustrd></RmtInf>\n").where(remittance.ne(""), "")
    reference = _escape(rows["reference"])
    refs = ("<EndToEndId>" + reference + "</EndToEndId>").where(reference.ne(""), "")
    return ("      <Ntry>\n"
            + f'        <Amt Ccy="{currency}">' + money.series_format(minor, currency) + "</Amt>\n"
            + "        <CdtDbtInd>" + choose("CRDT", "DBIT") + "</CdtDbtInd>\n"
            + f"        {status}\n"
            + "        <BookgDt><DtTm>" + booked.dt.strftime("%Y-%m-%dT%H:%M:%S")
            + "</DtTm></BookgDt>\n"
            + "        <ValDt><Dt>" + booked.dt.strftime("%Y-%m-%d") + "</Dt></ValDt>\n"
            + "        <AcctSvcrRef>" + _escape(rows["bank_serial"]) + "</AcctSvcrRef>\n"
            + "        <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>" + choose("RCDT", "ICDT")
            + "</Cd><SubFmlyCd>OTHR</SubFmlyCd></Fmly></Domn></BkTxCd>\n"
            + "        <NtryDtls>\n          <TxDtls>\n"
            + "            <Refs>" + refs + "</Refs>\n"
            + parties
            + remittance_xml
            + "          </TxDtls>\n        </NtryDtls>\n"
            + "      </Ntry>")


def render(bookings: pd.DataFrame, openings: dict[str, int], business_date: date,
           **options) -> bytes:
    """Options: `version` "02" (default) or "08"; `message_id` (default STMT<date>)."""
    version = options.get("version", "02")
    if version not in ("02", "08"):
        raise ValueError(f"camt.053 version {version!r}: only '02' and '08' are written")
    message_id = options.get("message_id", f"STMT{business_date:%Y%m%d}")
    created = f"{business_date + timedelta(days=1):%Y-%m-%d}T06:00:00"
    ordered = bookings.sort_values(["account", "booked_at", "bank_serial"], kind="stable")
    statements = []
    for account, rows in ordered.groupby("account", sort=True):
        currencies = rows["currency"].unique()
        if len(currencies) != 1:
            raise ValueError(f"account {account}: one statement holds one currency, got "
                             f"{list(currencies)}")
        currency = str(currencies[0])
        credit = rows["direction"].eq("credit")
        if not (credit | rows["direction"].eq("debit")).all():
            raise ValueError("direction must be 'credit' or 'debit'")
        minor = rows["amount_minor"].astype("int64")
        if (minor < 0).any():
            raise ValueError("amount_minor must be positive; direction gives the sign")
        if pd.to_datetime(rows["booked_at"]).isna().any():
            raise ValueError(f"account {account}: booked_at is missing")
        opening = int(openings[account])
        closing = opening + int(np.where(credit, minor, -minor).sum())
        account_xml = _escape_one(str(account))
        account_id = (f"<IBAN>{account_xml}</IBAN>" if IBAN.match(str(account))
                      else f"<Othr><Id>{account_xml}</Id></Othr>")
        statements.append("\n".join([
            "    <Stmt>",
            f"      <Id>{account_xml}-{business_date:%Y%m%d}</Id>",
            f"      <CreDtTm>{created}</CreDtTm>",
            f"      <Acct><Id>{account_id}</Id><Ccy>{currency}</Ccy></Acct>",
            _balance("OPBD", opening, currency, business_date),
            _balance("CLBD", closing, currency, business_date),
            _summary(credit, minor, currency, version),
            *([_entries(rows, credit, minor, currency, version).str.cat(sep="\n")]
              if len(rows) else []),
            "    </Stmt>",
        ]))
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.{version}">',
        "  <BkToCstmrStmt>",
        f"    <GrpHdr><MsgId>{_escape_one(message_id)}</MsgId>"
        f"<CreDtTm>{created}</CreDtTm></GrpHdr>",
        *statements,
        "  </BkToCstmrStmt>",
        "</Document>",
        "",
    ]).encode("utf-8")
