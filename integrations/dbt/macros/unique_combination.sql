{#- A generic test: no two rows share the values of `columns` (a key of several columns).
    dbt itself tests one column at a time; dbt_utils has the same test, but a package here must
    need no other. -#}
{% test unique_combination(model, columns) %}
select {{ columns | join(", ") }}, count(*) as rows_sharing_the_key
from {{ model }}
group by {{ columns | join(", ") }}
having count(*) > 1
{% endtest %}
