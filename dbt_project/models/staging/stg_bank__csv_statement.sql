-- Bank statement bookings from CSV exports, typed, one row per booking.
with bookings as (
    {{ loaded_rows('raw', 'bank_csv') }}
),

numbered as (
    select
        *,
        row_number() over (
            partition by account, bank_serial, business_date
            order by file_id, line_no
        ) as occurrence
    from bookings
)

select
    {{ stable_key('bank_csv', ['trim(account)', 'trim(bank_serial)', 'business_date', 'occurrence']) }}
        as transaction_key,
    trim(account) as account,
    trim(bank_serial) as bank_serial,
    nullif(trim(reference), '') as reference,
    trim(counterparty) as counterparty,
    -- the export has one text column: the reference is the remittance text
    null::text as counterparty_account,
    nullif(trim(reference), '') as remittance,
    case when credit_minor - debit_minor >= 0 then 'credit' else 'debit' end as direction,
    abs(credit_minor - debit_minor) as amount_minor,
    balance_minor,
    upper(trim(currency)) as currency,
    {{ local_timestamp("value_date || ' ' || coalesce(nullif(trim(booking_time), ''), '00:00:00')") }}
        as booked_at,
    trim(value_date)::date as value_date,
    business_date,
    file_id,
    line_no
from numbered
