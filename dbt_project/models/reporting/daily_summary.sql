-- Daily counts and amounts per outcome, for dashboards.
select * from {{ ref('fct_daily_summary') }}
