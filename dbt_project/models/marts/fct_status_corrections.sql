-- Platform rows to correct: the platform says processing, the statement says success.
select
    outcomes.as_of_date,
    outcomes.project,
    outcomes.reference,
    outcomes.source,
    outcomes.account,
    outcomes.amount_minor,
    outcomes.currency,
    outcomes.status as platform_status,
    'success' as statement_status,
    outcomes.rule,
    outcomes.transaction_key,
    outcomes.counterpart_key
from {{ ref('fct_outcomes') }} as outcomes
where outcomes.outcome = 'matched' and outcomes.status_corrected
    and outcomes.recon_side = 'left'
