-- Alipay merchant bill trade rows (业务明细). The file signs refunds negative; here amounts
-- are positive with a direction, as everywhere in Tally.
-- fee_minor is a signed cost (positive: fee charged, negative: fee returned with a refund),
-- read from the fee as printed by the source's fee_sign convention (macro fee_cost).
with trades as (
    {{ loaded_rows('raw', 'alipay_bill') }}
),

numbered as (
    select *, row_number() over (
        partition by channel_txn_no, refund_no, kind, business_date
        order by file_id, record_no
    ) as occurrence
    from trades
)

select
    {{ stable_key('alipay_bill', ['trim(channel_txn_no)', 'trim(refund_no)', 'kind', 'business_date', 'occurrence']) }}
        as transaction_key,
    trim(merchant_id) as merchant_id,
    kind,
    trim(channel_txn_no) as channel_txn_no,
    nullif(trim(merchant_order_no), '') as merchant_order_no,
    nullif(trim(refund_no), '') as refund_no,
    case when kind = 'refund' then 'debit' else 'credit' end as direction,
    abs(amount_minor) as amount_minor,
    -- 商家实收: what the merchant receives of it (the order amount less the merchant's own
    -- discounts), the amount the channel settles
    abs(settlement_amount_minor) as settlement_amount_minor,
    {{ fee_cost('alipay_bill') }} as fee_minor,
    upper(trim(currency)) as currency,
    {{ local_timestamp('created_at') }} as created_at,
    {{ local_timestamp('completed_at') }} as completed_at,
    business_date,
    file_id,
    line_no,
    record_no
from numbered
