-- Every status Thulium lists (statuses.deleted_at is null) has exactly one open version in
-- status_history (valid_to is null), and a deleted one has none: the history says what the
-- statuses say. Rows returned are the statuses for which that does not hold.
with open_versions as (
    select campaign_id, status_id, count(*) as open_versions
    from {{ source('thulium_etl', 'status_history') }}
    where valid_to is null
    group by campaign_id, status_id
)
select s.campaign_id, s.status_id, s.deleted_at, coalesce(o.open_versions, 0) as open_versions
from {{ source('thulium_etl', 'statuses') }} as s
left join open_versions as o
  on o.campaign_id = s.campaign_id and o.status_id = s.status_id
where (s.deleted_at is null and coalesce(o.open_versions, 0) <> 1)
   or (s.deleted_at is not null and coalesce(o.open_versions, 0) <> 0)
