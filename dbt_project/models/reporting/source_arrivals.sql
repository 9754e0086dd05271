-- Per business date and expected source: did a usable file arrive by its feed's cut-off?
-- Written by the landing DAGs (tally.source_arrivals); a late file turns `missing` into
-- `arrived` when it is landed.
select
    business_date,
    feed,
    source,
    status,
    files,
    detail
from {{ source('tally', 'source_arrivals') }}
