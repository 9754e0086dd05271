-- Balance checks per business date (var as_of), one row per account, statement or batch:
--   statement_rollforward      a bank statement: opening + credits - debits = closing
--   platform_account_rollforward  a user fund or fee account: opening + settlement changes
--                               + recharges - withdrawals = closing
--   settlement_trial_balance   a settlement batch: debits = credits + platform fees
--   platform_vs_bank           the platform's record of a bank account against the bank's
--                               closing balance; the difference must equal the signed sum of
--                               the day's open items on that account (explained)
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ replace_rows('as_of_date = ' ~ as_of()) }}",
    full_refresh=false,
    post_hook=["{{ index_on('as_of_date') }}", "{{ drop_gate_day_index() }}"],
) }}
{%- set config = recon_config() %}
{%- set balance_projects = config.get('balance_projects', []) %}

with statements as (
    select * from {{ ref('int_bank_statement_balances') }}
    where business_date = {{ as_of() }}
),

statement_rollforward as (
    select
        'statement_rollforward' as check_type, account, currency, statement as subject,
        closing_minor as expected_minor,
        opening_minor + credits_minor - debits_minor as actual_minor,
        null::bigint as explained_minor
    from statements
),

balances as (
    select * from {{ ref('stg_platform__balances') }} where business_date = {{ as_of() }}
),

settlement as (
    select user_fund_account as account, sum(credit_minor - debit_minor + fee_minor) as change
    from {{ ref('stg_platform__settlement') }} where business_date = {{ as_of() }}
    group by user_fund_account
),

flows as (
    select user_fund_account as account,
           sum(case when flow_type = 'recharge' then amount_minor else -amount_minor end)
               as change
    from {{ ref('stg_platform__custody_flows') }}
    where business_date = {{ as_of() }} and status = 'success'
    group by user_fund_account
),

platform_account_rollforward as (
    select
        'platform_account_rollforward' as check_type, b.account, b.currency,
        b.account_type as subject,
        b.closing_balance_minor as expected_minor,
        b.opening_balance_minor + coalesce(s.change, 0) + coalesce(f.change, 0) as actual_minor,
        null::bigint as explained_minor
    from balances as b
    left join settlement as s using (account)
    left join flows as f using (account)
    where b.account_type <> 'bank_mirror'
),

settlement_trial_balance as (
    select
        'settlement_trial_balance' as check_type, null::text as account, currency,
        batch_no as subject,
        sum(debit_minor) as expected_minor,
        sum(credit_minor) + sum(fee_minor) as actual_minor,
        null::bigint as explained_minor
    from {{ ref('stg_platform__settlement') }}
    where business_date = {{ as_of() }}
    group by batch_no, currency
),

-- What the day's outcomes say the platform and the bank disagree on, per account: platform
-- rows count +, bank rows -, for rows of today still open, matched across business dates, or
-- matched with an allowed difference.
open_items as (
    select o.account, sum(
        case
            when o.outcome <> 'matched' or o.break_type = 'timing'
                then case when o.recon_side = 'left' then 1 else -1 end
                     * case when o.direction = 'credit' then o.amount_minor
                            else -o.amount_minor end
            -- a match within tolerance explains its difference (bank minus platform)
            when o.recon_side = 'left' and coalesce(o.amount_difference_minor, 0) <> 0
                then -o.amount_difference_minor
                     * case when o.direction = 'credit' then 1 else -1 end
            else 0
        end
    ) as signed_minor
    from {{ ref('fct_outcomes') }} as o
    where o.as_of_date = {{ as_of() }} and o.business_date = {{ as_of() }}
      and o.project in ({{ "'" ~ (balance_projects | join("', '")) ~ "'" if balance_projects else "''" }})
    group by o.account
),

platform_vs_bank as (
    select
        'platform_vs_bank' as check_type, m.account, m.currency, 'bank_mirror' as subject,
        s.closing_minor + coalesce(i.signed_minor, 0) as expected_minor,
        m.closing_balance_minor as actual_minor,
        coalesce(i.signed_minor, 0) as explained_minor
    from balances as m
    inner join statements as s on s.account = m.account
    left join open_items as i on i.account = m.account
    where m.account_type = 'bank_mirror'
)

select
    {{ as_of() }} as as_of_date,
    checks.*,
    checks.actual_minor - checks.expected_minor as difference_minor,
    checks.actual_minor = checks.expected_minor as passed
from (
    select * from statement_rollforward
    union all select * from platform_account_rollforward
    union all select * from settlement_trial_balance
    union all select * from platform_vs_bank
) as checks
