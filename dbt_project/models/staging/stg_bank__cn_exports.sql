-- Chinese bank statement exports (one parser, configured per bank), typed, in one shape.
{%- set banks = ['bank_icbc_csv', 'bank_cmb_csv', 'bank_ccb_xls', 'bank_abc_csv',
                 'bank_boc_csv', 'bank_bocom_csv'] %}

with bookings as (
    {%- for bank in banks %}
    select
        '{{ bank }}' as source, account, booking_date, booking_time, bank_serial, reference,
        summary, counterparty, counterparty_account, direction, amount_minor, currency, business_date, file_id,
        line_no, record_no
    from ({{ loaded_rows('raw', bank) }}) as {{ bank }}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

numbered as (
    select *, row_number() over (
        partition by source, account, booking_date, bank_serial, reference, direction,
                     amount_minor, business_date
        order by file_id, record_no) as occurrence
    from bookings
)

select
    -- Some exports have no serial: the key is the booking's own identity in its statement.
    {{ stable_key('bank_cn', ['source', 'trim(account)', 'booking_date', 'bank_serial', 'reference', 'direction', 'amount_minor', 'business_date', 'occurrence']) }}
        as transaction_key,
    source,
    nullif(trim(account), '') as account,
    nullif(trim(bank_serial), '') as bank_serial,
    coalesce(nullif(trim(reference), ''), nullif(trim(summary), '')) as reference,
    nullif(trim(counterparty), '') as counterparty,
    nullif(trim(counterparty_account), '') as counterparty_account,
    -- 摘要 and the remittance (附言, 交易详情, ...) as one text
    nullif(concat_ws(' ', nullif(trim(summary), ''), nullif(trim(reference), '')), '')
        as remittance,
    direction,
    amount_minor,
    upper(trim(currency)) as currency,
    {{ local_timestamp("booking_date || ' ' || coalesce(nullif(trim(booking_time), ''), '00:00:00')") }}
        as booked_at,
    booking_date::date as booking_date,
    business_date,
    file_id,
    line_no,
    record_no
from numbered
