{# A daily build tests the rows it built, not the whole history (a test over a whole table
   grows with it: 6 s of the build for one uniqueness test after two weeks at 100,000 a day).
   dbt_project.yml gives each folder's tests `where: in_this_run(<column>)`: the rows of the
   dates this run builds by business_date (macro new_days), or of its as_of date by
   as_of_date (the marts). Any other `where` is dbt's own. #}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') or '' -%}
    {%- if where.startswith('in_this_run(') and where.endswith(')') -%}
        {%- set column = where[12:-1] -%}
        {%- set condition = column ~ ' = ' ~ as_of() if column == 'as_of_date'
                            else new_days(column) -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ condition }}) dbt_subquery
        {%- endset -%}
        {{ return(filtered) }}
    {%- endif -%}
    {{ return(dbt.default__get_where_subquery(relation)) }}
{%- endmacro %}
