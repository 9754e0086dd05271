-- CAMT.053 entries: one row per entry (or per transaction of a split batch), typed.
with entries as (
    {{ loaded_rows('raw', 'bank_camt053') }}
),

numbered as (
    select *, row_number() over (
        partition by account, statement_id, entry_seq, bank_reference, business_date
        order by file_id, record_no) as occurrence
    from entries
)

select
    {{ stable_key('bank_camt053', ['trim(account)', 'statement_id', 'entry_seq', 'bank_reference', 'business_date', 'occurrence']) }}
        as transaction_key,
    trim(account) as account,
    nullif(trim(bank_reference), '') as bank_serial,
    coalesce(nullif(trim(end_to_end_id), ''), nullif(trim(remittance), '')) as reference,
    nullif(trim(counterparty), '') as counterparty,
    -- RltdPties/DbtrAcct (credit) or CdtrAcct (debit); RmtInf/Ustrd, else the entry's info
    nullif(trim(counterparty_account), '') as counterparty_account,
    coalesce(nullif(trim(remittance), ''), nullif(trim(additional_info), '')) as remittance,
    direction,
    amount_minor,
    upper(trim(currency)) as currency,
    reversal,
    -- DtTm with an offset, or a local date-time, or a date (read as the day's start)
    case
        when booking_date_text ~ '[+-]\d\d:?\d\d$|Z$' then booking_date_text::timestamptz
        when booking_date_text like '%T%' then {{ local_timestamp("replace(booking_date_text, 'T', ' ')") }}
        else {{ local_timestamp("booking_date || ' 00:00:00'") }}
    end as booked_at,
    booking_date::date as booking_date,
    statement_id,
    business_date,
    file_id,
    line_no,
    record_no
from numbered
