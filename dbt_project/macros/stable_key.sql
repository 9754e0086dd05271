{# A canonical row's key: a hash of its source and its natural identity within that source,
   never of file ids or load order, so the key survives reloading the file. People's decisions
   (manual matches, write-offs) will point at it. #}
{% macro stable_key(source_name, parts) -%}
    md5(concat_ws('|', '{{ source_name }}'{% for part in parts %}, coalesce(({{ part }})::text, ''){% endfor %}))
{%- endmacro %}
