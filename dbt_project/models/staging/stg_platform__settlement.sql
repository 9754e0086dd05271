-- The daily trade settlement file: per user fund account, reductions, increases and fees.
with loaded_files as (
    select file_id, business_date
    from {{ source('tally', 'files') }}
    where status = 'loaded'
)

select
    {{ stable_key('platform_settlement', ['trim(batch_no)', 'trim(user_fund_account)']) }}
        as settlement_key,
    trim(settlement.settlement_date)::date as settlement_date,
    trim(settlement.batch_no) as batch_no,
    trim(settlement.user_fund_account) as user_fund_account,
    settlement.debit_minor,
    settlement.credit_minor,
    settlement.fee_minor,
    upper(trim(settlement.currency)) as currency,
    loaded_files.business_date,
    settlement.file_id,
    settlement.line_no
from {{ source('raw', 'platform_settlement') }} as settlement
inner join loaded_files using (file_id)
