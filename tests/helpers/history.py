"""The invariant that ties ``status_history`` to ``statuses``, checked after every fault.

Each status has exactly one open version (``valid_to`` null) if and only if it is not
deleted, and that version holds the status's values; versions of one status never overlap.
"""

from __future__ import annotations

from sqlalchemy import Engine, text

_BROKEN = text(
    """
    SELECT 'no open version, though listed' AS problem, s.campaign_id, s.status_id
    FROM statuses s
    WHERE s.deleted_at IS NULL AND NOT EXISTS (
        SELECT 1 FROM status_history h
        WHERE h.campaign_id = s.campaign_id AND h.status_id = s.status_id
          AND h.valid_to IS NULL)
    UNION ALL
    SELECT 'an open version, though deleted', s.campaign_id, s.status_id
    FROM statuses s JOIN status_history h USING (campaign_id, status_id)
    WHERE s.deleted_at IS NOT NULL AND h.valid_to IS NULL
    UNION ALL
    SELECT 'the open version differs from the status', s.campaign_id, s.status_id
    FROM statuses s JOIN status_history h USING (campaign_id, status_id)
    WHERE h.valid_to IS NULL
      AND (s.system_status, s.dictionary_status_id, s.name)
          IS DISTINCT FROM (h.system_status, h.dictionary_status_id, h.name)
    UNION ALL
    SELECT 'a version of no status', h.campaign_id, h.status_id
    FROM status_history h
    WHERE NOT EXISTS (
        SELECT 1 FROM statuses s
        WHERE s.campaign_id = h.campaign_id AND s.status_id = h.status_id)
    UNION ALL
    SELECT 'more than one open version', campaign_id, status_id
    FROM status_history WHERE valid_to IS NULL
    GROUP BY campaign_id, status_id HAVING count(*) > 1
    UNION ALL
    SELECT 'overlapping versions', a.campaign_id, a.status_id
    FROM status_history a JOIN status_history b
      ON a.campaign_id = b.campaign_id AND a.status_id = b.status_id
     AND a.valid_from < b.valid_from
    WHERE a.valid_to IS NULL OR a.valid_to > b.valid_from
    """
)


def assert_history_matches(engine: Engine) -> None:
    """``status_history`` says exactly what ``statuses`` says, for every status."""
    with engine.connect() as conn:
        broken = conn.execute(_BROKEN).all()
    assert not broken, broken
