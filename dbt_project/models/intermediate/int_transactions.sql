-- The canonical transaction shape: every source's money movements, one row each, the same
-- columns. Amounts are positive minor units with a direction; signed_amount_minor is + for
-- credits (money in) and - for debits.
with accounts as (
    select account, role from {{ ref('bank_accounts') }}
),

platform_ledger as (
    select
        transaction_key,
        'platform_ledger' as source,
        'platform' as side,
        case
            when channel = 'bank_transfer' then 'transfer'
            when direction = 'debit' then 'refund'
            else 'payment'
        end as kind,
        account,
        null::text as counterparty,
        merchant_order_no as reference,
        merchant_order_no,
        null::text as channel_txn_no,
        null::text as bank_serial,
        null::text as settlement_batch,
        channel,
        direction,
        amount_minor,
        0::bigint as fee_minor,
        currency,
        status,
        created_at as event_at,
        business_date,
        file_id,
        line_no
    from {{ ref('stg_platform__ledger') }}
),

custody_flows as (
    select
        transaction_key,
        'platform_custody_flows' as source,
        'platform' as side,
        flow_type as kind,
        bank_account as account,
        user_fund_account as counterparty,
        serial_no as reference,
        null::text as merchant_order_no,
        null::text as channel_txn_no,
        null::text as bank_serial,
        null::text as settlement_batch,
        'custody' as channel,
        case when flow_type = 'recharge' then 'credit' else 'debit' end as direction,
        amount_minor,
        0::bigint as fee_minor,
        currency,
        status,
        created_at as event_at,
        business_date,
        file_id,
        line_no
    from {{ ref('stg_platform__custody_flows') }}
),

bank_csv as (
    select
        transaction_key,
        'bank_csv' as source,
        'bank' as side,
        case when reference like '%-SETTLE-%' then 'settlement' else 'booking' end as kind,
        account,
        counterparty,
        reference,
        null::text as merchant_order_no,
        null::text as channel_txn_no,
        bank_serial,
        case when reference like '%-SETTLE-%' then reference end as settlement_batch,
        null::text as channel,
        direction,
        amount_minor,
        0::bigint as fee_minor,
        currency,
        'success' as status,
        booked_at as event_at,
        business_date,
        file_id,
        line_no
    from {{ ref('stg_bank__csv_statement') }}
),

unioned as (
    select * from platform_ledger
    union all
    select * from custody_flows
    union all
    select * from bank_csv
)

select
    unioned.*,
    case when direction = 'credit' then amount_minor else -amount_minor end
        as signed_amount_minor,
    case when direction = 'credit' then amount_minor - fee_minor else -amount_minor - fee_minor end
        as net_amount_minor,
    accounts.role as account_role
from unioned
left join accounts using (account)
