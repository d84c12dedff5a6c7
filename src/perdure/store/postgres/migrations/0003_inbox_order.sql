-- perdure PostgreSQL schema 3: the inbox index a fetch walks in delivery order.
-- A fetch looks at only the oldest visible messages (a bounded window, not the whole
-- backlog), oldest first: visible_at, then id, since most messages share visible_at 0
-- (visible at once). This index yields them in that order, so the window stops after
-- its first rows instead of sorting every visible message.

CREATE INDEX inbox_visible_order ON perdure.inbox (hub, visible_at, id);
DROP INDEX perdure.inbox_visible;
