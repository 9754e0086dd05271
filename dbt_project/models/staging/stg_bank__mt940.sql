-- MT940 statement lines (:61:), typed.
with lines as (
    {{ loaded_rows('raw', 'bank_mt940') }}
),

numbered as (
    select *, row_number() over (
        partition by account, statement_ref, bank_reference, customer_reference, amount_minor, business_date
        order by file_id, record_no) as occurrence
    from lines
)

select
    {{ stable_key('bank_mt940', ['trim(account)', 'statement_ref', 'bank_reference', 'customer_reference', 'amount_minor', 'business_date', 'occurrence']) }}
        as transaction_key,
    trim(account) as account,
    nullif(trim(bank_reference), '') as bank_serial,
    nullif(trim(customer_reference), '') as reference,
    nullif(trim(info), '') as counterparty,
    -- :86: is free text (payer and remittance together): the payer's account is not apart
    null::text as counterparty_account,
    nullif(trim(info), '') as remittance,
    direction,
    amount_minor,
    upper(trim(currency)) as currency,
    {{ local_timestamp("value_date || ' 00:00:00'") }} as booked_at,
    value_date::date as booking_date,
    statement_ref,
    business_date,
    file_id,
    line_no,
    record_no
from numbered
