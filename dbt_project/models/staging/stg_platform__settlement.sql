-- The daily trade settlement file: per user fund account, reductions, increases and fees.
with settlement as (
    {{ loaded_rows('raw', 'platform_settlement') }}
)

select
    {{ stable_key('platform_settlement', ['trim(batch_no)', 'trim(user_fund_account)']) }}
        as settlement_key,
    trim(settlement_date)::date as settlement_date,
    trim(batch_no) as batch_no,
    trim(user_fund_account) as user_fund_account,
    debit_minor,
    credit_minor,
    fee_minor,
    upper(trim(currency)) as currency,
    business_date,
    file_id,
    line_no
from settlement
