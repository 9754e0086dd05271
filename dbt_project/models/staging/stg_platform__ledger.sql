-- The platform's ledger, one row per ledger entry of a loaded file, typed.
with ledger as (
    {{ loaded_rows('raw', 'platform_ledger') }}
),

numbered as (
    select
        *,
        -- The same txn_id twice is a duplicate entry: each copy keeps its own key. Occurrences
        -- are numbered within a business date, never over the whole table, so a day's keys come
        -- from that day's files alone (and the date is part of the key).
        row_number() over (
            partition by txn_id, business_date
            order by file_id, line_no
        ) as occurrence
    from ledger
)

select
    {{ stable_key('platform_ledger', ['txn_id', 'business_date', 'occurrence']) }} as transaction_key,
    trim(txn_id) as txn_id,
    trim(merchant_order_no) as merchant_order_no,
    trim(channel) as channel,
    trim(account) as account,
    trim(direction) as direction,
    amount_minor,
    upper(trim(currency)) as currency,
    trim(status) as status,
    -- Optional columns (docs/formats.md): empty in files written without them.
    nullif(trim(type), '') as type,
    nullif(trim(refund_no), '') as refund_no,
    nullif(trim(original_order_no), '') as original_order_no,
    {{ local_timestamp('created_at') }} as created_at,
    {{ local_timestamp('completed_at') }} as completed_at,
    business_date,
    file_id,
    line_no
from numbered
