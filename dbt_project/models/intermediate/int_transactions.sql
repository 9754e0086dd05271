-- The canonical transaction shape: every source's rows, one row each, the same columns.
with platform as (
    select
        transaction_key,
        'platform_ledger' as source,
        'platform' as side,
        account,
        merchant_order_no as reference,
        txn_id as source_id,
        direction,
        amount_minor,
        currency,
        status,
        created_at as event_at,
        business_date,
        file_id,
        line_no
    from {{ ref('stg_platform__ledger') }}
),

bank as (
    select
        transaction_key,
        'bank_csv' as source,
        'bank' as side,
        account,
        reference,
        bank_serial as source_id,
        direction,
        amount_minor,
        currency,
        'success' as status,
        booked_at as event_at,
        business_date,
        file_id,
        line_no
    from {{ ref('stg_bank__csv_statement') }}
)

select * from platform
union all
select * from bank
