-- The canonical transaction shape: every source's money movements, one row each, the same
-- columns. Amounts are positive minor units with a direction; signed_amount_minor is + for
-- credits (money in) and - for debits; net_amount_minor is signed and net of the fee.
-- Besides the sources' rows: one `settlement_batch` row per channel bill day (channel,
-- merchant account, bill date, currency), the day's net as the channel owes it, with its
-- row_count; the channel settlement project reconciles these against the bank's payouts.
-- Built by business date: a run writes the dates after the last reconciled one up to as_of
-- (macro new_days) from those dates' files alone and leaves every other date as it is; a
-- re-run of a date replaces its rows. The indexes serve the lookups of the day's open rows
-- into history (fct_outcomes): a failed row by reference, a paid order by order number.
{#- The keys the day's open rows are looked up by (macro lookup_keys), and the date. #}
{%- set lookup_keys = ['business_date'] + lookup_keys() %}
{%- set index_hooks = [] %}
{%- for key in lookup_keys %}
{%- set _ = index_hooks.append("{{ index_on('" ~ key ~ "') }}") %}
{%- endfor %}
{#- The channels' bill days by date (known_batches): a few rows a day among the day's rows. #}
{%- set _ = index_hooks.append('create index if not exists int_transactions_batches_by_date'
                               ~ ' on {{ this }} (business_date) where kind = \'settlement_batch\'') %}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    full_refresh=false,
    on_schema_change='append_new_columns',
    pre_hook="{{ replace_rows(new_days('business_date')) }}",
    post_hook=index_hooks + ["analyze {{ this }}"],
) }}
{%- set canonical = transaction_columns() %}
{%- set columns = canonical['base'] %}
{#- Columns only some parts have (null in the others). original_order_no: the order a row
    belongs to (a refund's original order; a payment's own). #}
{%- set extra_columns = canonical['extra'] %}
{%- set part_extras = {'bank': ['counterparty_account', 'remittance', 'paid_bill_date'],
                       'channel_batches': ['row_count'],
                       'platform_ledger': ['original_order_no'],
                       'alipay': ['original_order_no'],
                       'wechatpay': ['original_order_no']} %}

-- The account registry (include/accounts.yaml, var `accounts`).
with accounts as (
    select account, role from ({{ registered_accounts() }}) as registered
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
        where {{ new_days() }}
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
    from {{ ref('stg_platform__custody_flows') }} where {{ new_days() }}
),

-- A channel pays out each bill day's net as one bank credit; the bill rows name their batch:
-- <CHANNEL>-SETTLE-<yyyymmdd of the bill day> (the reference of the batch row, below).
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
        merchant_order_no as original_order_no, settlement_amount_minor
    from {{ ref('stg_alipay__bill') }} where {{ new_days() }}
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
    from {{ ref('stg_wechatpay__trade_bill') }} where {{ new_days() }}
),

bank_bookings as (
    select transaction_key, 'bank_csv' as source, account, counterparty, counterparty_account,
           remittance, reference, bank_serial, direction, amount_minor, currency, booked_at,
           business_date, file_id, line_no
    from {{ ref('stg_bank__csv_statement') }} where {{ new_days() }}
    union all
    select transaction_key, 'bank_camt053', account, counterparty, counterparty_account,
           remittance, reference, bank_serial, direction, amount_minor, currency, booked_at,
           business_date, file_id, line_no
    from {{ ref('stg_bank__camt053') }} where {{ new_days() }}
    union all
    select transaction_key, 'bank_mt940', account, counterparty, counterparty_account,
           remittance, reference, bank_serial, direction, amount_minor, currency, booked_at,
           business_date, file_id, line_no
    from {{ ref('stg_bank__mt940') }} where {{ new_days() }}
    union all
    select transaction_key, source, account, counterparty, counterparty_account, remittance,
           reference, bank_serial, direction, amount_minor, currency, booked_at, business_date,
           file_id, line_no
    from {{ ref('stg_bank__cn_exports') }} where {{ new_days() }}
),

-- One batch per channel bill day: what the channel owes for it (payments - refunds - fees).
-- What Alipay settles of a row is its 商家实收 (the order amount less the merchant's own
-- discounts), not its 订单金额; WeChat Pay's amount already is its 应结订单金额.
channel_batches as (
    select
        {{ stable_key('channel_batch', ['channel', 'account', 'business_date', 'currency']) }}
            as transaction_key,
        'channel_batch' as source, 'channel' as side, 'settlement_batch' as kind, account,
        null::text as counterparty, settlement_batch as reference,
        null::text as merchant_order_no, null::text as channel_txn_no,
        null::text as bank_serial, settlement_batch, channel,
        case when net_minor >= 0 then 'credit' else 'debit' end as direction,
        abs(net_minor) as amount_minor, 0::bigint as fee_minor, currency,
        'success' as status, event_at, business_date, null::bigint as file_id,
        null::bigint as line_no, row_count
    from (
        select channel, account, business_date, currency, min(settlement_batch)
                   as settlement_batch,
               sum(case when direction = 'credit' then amount_minor else -amount_minor end
                   - fee_minor)::bigint as net_minor,
               max(event_at) as event_at, count(*) as row_count
        from (
            select channel, account, business_date, currency, settlement_batch, direction,
                   settlement_amount_minor as amount_minor, fee_minor, event_at from alipay
            union all
            select channel, account, business_date, currency, settlement_batch, direction,
                   amount_minor, fee_minor, event_at from wechatpay
        ) as bill_rows
        group by channel, account, business_date, currency
    ) as days
),

-- The bill days a payout of these dates may pay: these dates' batches and, when earlier dates
-- are built, theirs of the last month (a payout's delay is days, never more than a month).
known_batches as (
    select channel, direction, amount_minor, currency, business_date from channel_batches
    {%- if is_incremental() %}
    union all
    select channel, direction, amount_minor, currency, business_date from {{ this }}
    where kind = 'settlement_batch' and business_date > {{ as_of() }} - 31
      and not ({{ new_days() }})
    {%- endif %}
),

-- A credit on an account a channel settles into, from that channel's payer (name or account,
-- include/accounts.yaml), is the channel's payout. Its bill date is the first capture of the
-- first remittance pattern that matches, if any.
recognised as (
    select distinct on (b.transaction_key)
        b.transaction_key, r.channel, r.min_delay_days, r.max_delay_days,
        {{ captured_date('m.captured') }} as bill_date
    from bank_bookings as b
    inner join ({{ settlement_recognition() }}) as r on r.account = b.account
    left join lateral (
        select coalesce(substring(b.remittance from p.pattern), '') as captured
        from unnest(r.remittance_patterns) with ordinality as p (pattern, n)
        where b.remittance ~ p.pattern
        order by p.n
        limit 1
    ) as m on true
    where b.direction = 'credit'
      -- the payer's name contains one of the channel's (MT940's :86: is the whole text)
      and (exists (select 1 from unnest(r.payer_names) as n (name)
                   where strpos({{ payer_name_key('b.counterparty') }}, n.name) > 0)
           or b.counterparty_account = any (r.payer_accounts))
    order by b.transaction_key, r.channel
),

-- A payout naming no bill date pays the bill day, within the expected delay, whose net equals
-- it (the rule `settlement_by_amount` pairs them); if no bill day fits, the credit is an
-- unidentified settlement.
fits as (
    select r.transaction_key
    from recognised as r
    inner join bank_bookings as b using (transaction_key)
    where r.bill_date is null and exists (
        select 1 from known_batches as c
        where c.channel = r.channel and c.direction = 'credit'
          and c.amount_minor = b.amount_minor and c.currency = b.currency
          and b.business_date - c.business_date between r.min_delay_days and r.max_delay_days)
),

bank as (
    select
        b.transaction_key, b.source, 'bank' as side,
        case
            when r.transaction_key is null then 'booking'
            when r.bill_date is not null or f.transaction_key is not null then 'settlement'
            else 'unidentified_settlement'
        end as kind,
        b.account, b.counterparty, b.reference, null::text as merchant_order_no,
        null::text as channel_txn_no, b.bank_serial,
        -- the batch it pays, when it names its bill date (the batch's reference)
        case when r.bill_date is not null
            then upper(r.channel) || '-SETTLE-' || to_char(r.bill_date, 'YYYYMMDD')
        end as settlement_batch,
        r.channel, b.direction, b.amount_minor, 0::bigint as fee_minor, b.currency,
        'success' as status, b.booked_at as event_at, b.business_date, b.file_id, b.line_no,
        b.counterparty_account, b.remittance,
        -- the bill day a payout pays: the one it names, else the latest its delay allows; a
        -- payout waits while its channel's bill of that day has not been received
        coalesce(r.bill_date, b.business_date - r.min_delay_days) as paid_bill_date
    from bank_bookings as b
    left join recognised as r using (transaction_key)
    left join fits as f using (transaction_key)
),

unioned as (
    {%- for part in ['platform_ledger', 'custody_flows', 'alipay', 'wechatpay', 'bank',
                     'channel_batches'] %}
    select {{ columns | join(', ') }}
        {%- for column, type in extra_columns.items() %},
        {{ column if column in part_extras.get(part, []) else 'null::' ~ type ~ ' as ' ~ column }}
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
