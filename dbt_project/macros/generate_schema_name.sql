{# Layers live in schemas named as the layer (staging, intermediate, marts, reporting), not
   prefixed with the target schema: readers and grants name them directly. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name | trim if custom_schema_name else target.schema }}
{%- endmacro %}
