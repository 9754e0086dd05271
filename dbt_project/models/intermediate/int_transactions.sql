-- The canonical transaction shape: every source's money movements, one row each, the same
-- columns. Amounts are positive minor units with a direction; signed_amount_minor is + for
-- credits (money in) and - for debits; net_amount_minor is signed and net of the fee.
-- Unlogged (no WAL): the table is rebuilt in full on every run, so a crash that empties it
-- loses nothing the next run does not rebuild.
{{ config(unlogged=true) }}
{%- set columns = ['transaction_key', 'source', 'side', 'kind', 'account', 'counterparty',
                   'reference', 'merchant_order_no', 'channel_txn_no', 'bank_serial',
                   'settlement_batch', 'channel', 'direction', 'amount_minor', 'fee_minor',
                   'currency', 'status', 'event_at', 'business_date', 'file_id', 'line_no',
                   'original_order_no'] %}
{#- Columns only some parts have; the others give null. original_order_no: the order a row
    belongs to (a refund's original order; a payment's own). -#}
{%- set partial_columns = {'original_order_no': ['platform_ledger', 'alipay', 'wechatpay']} %}

with accounts as (
    select account, role from {{ ref('bank_accounts') }}
),

-- A refund is known by its refund number (the refund request number the channel bills it
-- under); a ledger without one falls back to the original order number. `type`, when the
-- ledger has it, says what a row is; otherwise bank transfers are transfers, debits refunds.
platform_ledger as (
    select
        transaction_key, 'platform_ledger' as source, 'platform' as side, kind, account,
        null::text as counterparty,
        case when kind = 'refund' then coalesce(refund_no, order_no)
             else merchant_order_no end as reference,
        merchant_order_no, null::text as channel_txn_no, null::text as bank_serial,
        null::text as settlement_batch, channel, direction, amount_minor, 0::bigint as fee_minor,
        currency, status, created_at as event_at, business_date, file_id, line_no,
        order_no as original_order_no
    from (
        select
            *,
            case
                when channel = 'bank_transfer' then 'transfer'
                when type is not null then type
                when direction = 'debit' then 'refund'
                else 'payment'
            end as kind,
            coalesce(original_order_no, merchant_order_no) as order_no
        from {{ ref('stg_platform__ledger') }}
    ) as ledger
),

custody_flows as (
    select
        transaction_key, 'platform_custody_flows' as source, 'platform' as side,
        flow_type as kind, bank_account as account, user_fund_account as counterparty,
        serial_no as reference, null::text as merchant_order_no, null::text as channel_txn_no,
        null::text as bank_serial, null::text as settlement_batch, 'custody' as channel,
        case when flow_type = 'recharge' then 'credit' else 'debit' end as direction,
        amount_minor, 0::bigint as fee_minor, currency, status, created_at as event_at,
        business_date, file_id, line_no
    from {{ ref('stg_platform__custody_flows') }}
),

-- Each channel pays out a bill day's net the next morning, as one bank credit whose
-- reference names the batch: <CHANNEL>-SETTLE-<yyyymmdd of the bill day>.
alipay as (
    select
        transaction_key, 'alipay_bill' as source, 'channel' as side, kind,
        merchant_id as account, null::text as counterparty,
        case when kind = 'refund' then coalesce(refund_no, merchant_order_no)
             else merchant_order_no end as reference,
        merchant_order_no, channel_txn_no, null::text as bank_serial,
        'ALIPAY-SETTLE-' || to_char(business_date, 'YYYYMMDD') as settlement_batch,
        'alipay' as channel, direction, amount_minor, fee_minor, currency,
        'success' as status, completed_at as event_at, business_date, file_id, line_no,
        merchant_order_no as original_order_no
    from {{ ref('stg_alipay__bill') }}
),

wechatpay as (
    select
        transaction_key, 'wechatpay_trade_bill' as source, 'channel' as side, kind,
        merchant_id as account, null::text as counterparty,
        case when kind = 'refund' then coalesce(refund_no, merchant_order_no)
             else merchant_order_no end as reference,
        merchant_order_no, channel_txn_no, null::text as bank_serial,
        'WECHATPAY-SETTLE-' || to_char(business_date, 'YYYYMMDD') as settlement_batch,
        'wechatpay' as channel, direction, amount_minor, fee_minor, currency,
        'success' as status, completed_at as event_at, business_date, file_id, line_no,
        merchant_order_no as original_order_no
    from {{ ref('stg_wechatpay__trade_bill') }}
),

bank_bookings as (
    select transaction_key, 'bank_csv' as source, account, counterparty, reference,
           bank_serial, direction, amount_minor, currency, booked_at, business_date, file_id,
           line_no
    from {{ ref('stg_bank__csv_statement') }}
    union all
    select transaction_key, 'bank_camt053', account, counterparty, reference, bank_serial,
           direction, amount_minor, currency, booked_at, business_date, file_id, line_no
    from {{ ref('stg_bank__camt053') }}
    union all
    select transaction_key, 'bank_mt940', account, counterparty, reference, bank_serial,
           direction, amount_minor, currency, booked_at, business_date, file_id, line_no
    from {{ ref('stg_bank__mt940') }}
    union all
    select transaction_key, source, account, counterparty, reference, bank_serial, direction,
           amount_minor, currency, booked_at, business_date, file_id, line_no
    from {{ ref('stg_bank__cn_exports') }}
),

bank as (
    select
        transaction_key, source, 'bank' as side,
        case when reference like '%-SETTLE-%' then 'settlement' else 'booking' end as kind,
        account, counterparty, reference, null::text as merchant_order_no,
        null::text as channel_txn_no, bank_serial,
        case when reference like '%-SETTLE-%' then reference end as settlement_batch,
        null::text as channel, direction, amount_minor, 0::bigint as fee_minor, currency,
        'success' as status, booked_at as event_at, business_date, file_id, line_no
    from bank_bookings
),

unioned as (
    {%- for part in ['platform_ledger', 'custody_flows', 'alipay', 'wechatpay', 'bank'] %}
    select
        {%- for column in columns %}
        {{ column if part in partial_columns.get(column, [part]) else 'null::text as ' ~ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ part }}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
)

select
    unioned.*,
    case when direction = 'credit' then amount_minor else -amount_minor end
        as signed_amount_minor,
    case when direction = 'credit' then amount_minor else -amount_minor end - fee_minor
        as net_amount_minor,
    accounts.role as account_role
from unioned
left join accounts using (account)
