{# A raw table's rows from loaded files, with the file's business date. #}
{% macro loaded_rows(source_name, table_name) -%}
    select raw_rows.*, files.business_date
    from {{ source(source_name, table_name) }} as raw_rows
    inner join {{ source('tally', 'files') }} as files
        on files.file_id = raw_rows.file_id and files.status = 'loaded'
{%- endmacro %}
