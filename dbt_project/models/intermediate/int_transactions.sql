-- The canonical transaction shape for the platform-vs-bank reconciliation: the platform's bank
-- transfers (failed ones are not reconciled) and the bookings on collection accounts, except
-- the channels' settlement credits (reconciled against the channel bills, not the ledger).
with accounts as (
    select account, role from {{ ref('bank_accounts') }}
),

platform as (
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
    where channel = 'bank_transfer' and status <> 'failed'
),

bank as (
    select
        bookings.transaction_key,
        'bank_csv' as source,
        'bank' as side,
        bookings.account,
        bookings.reference,
        bookings.bank_serial as source_id,
        bookings.direction,
        bookings.amount_minor,
        bookings.currency,
        'success' as status,
        bookings.booked_at as event_at,
        bookings.business_date,
        bookings.file_id,
        bookings.line_no
    from {{ ref('stg_bank__csv_statement') }} as bookings
    inner join accounts on accounts.account = bookings.account and accounts.role = 'collection'
    where bookings.reference is null or bookings.reference not like '%-SETTLE-%'
)

select * from platform
union all
select * from bank
