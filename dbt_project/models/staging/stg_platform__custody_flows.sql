-- Users' recharges and withdrawals as the platform records them, typed.
with flows as (
    {{ loaded_rows('raw', 'platform_custody_flows') }}
),

numbered as (
    select
        *,
        row_number() over (
            partition by serial_no, business_date
            order by file_id, line_no
        ) as occurrence
    from flows
)

select
    {{ stable_key('platform_custody_flows', ['trim(serial_no)', 'business_date', 'occurrence']) }}
        as transaction_key,
    trim(serial_no) as serial_no,
    trim(user_fund_account) as user_fund_account,
    trim(flow_type) as flow_type,
    amount_minor,
    upper(trim(currency)) as currency,
    trim(status) as status,
    trim(bank_account) as bank_account,
    {{ local_timestamp('created_at') }} as created_at,
    {{ local_timestamp('completed_at') }} as completed_at,
    business_date,
    file_id,
    line_no
from numbered
