-- WeChat Pay trade bill rows: payments, and refunds (which carry the refund amount).
-- fee_minor is a signed cost (positive: fee charged, negative: fee returned with a refund),
-- read from the fee as printed by the source's fee_sign convention (macro fee_cost).
with trades as (
    {{ loaded_rows('raw', 'wechatpay_trade_bill') }}
),

numbered as (
    select *, row_number() over (
        partition by channel_txn_no, channel_refund_no, kind, business_date
        order by file_id, record_no
    ) as occurrence
    from trades
)

select
    {{ stable_key('wechatpay_trade_bill', ['trim(channel_txn_no)', 'trim(channel_refund_no)', 'kind', 'business_date', 'occurrence']) }}
        as transaction_key,
    trim(merchant_id) as merchant_id,
    kind,
    trim(channel_txn_no) as channel_txn_no,
    nullif(trim(merchant_order_no), '') as merchant_order_no,
    nullif(nullif(trim(refund_no), ''), '0') as refund_no,
    case when kind = 'refund' then 'debit' else 'credit' end as direction,
    case when kind = 'refund' then refund_amount_minor else settlement_amount_minor end
        as amount_minor,
    {{ fee_cost('wechatpay_trade_bill') }} as fee_minor,
    upper(trim(currency)) as currency,
    {{ local_timestamp('trade_time') }} as completed_at,
    business_date,
    file_id,
    line_no,
    record_no
from numbered
