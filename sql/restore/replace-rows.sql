-- Restoring the rows of some tables (a `backup --table` file), inside the restore's transaction:
-- with triggers and foreign-key checks off for this transaction only (what pg_restore's
-- --disable-triggers does), empty exactly these tables; the file's rows follow.
SET LOCAL session_replication_role = replica;
{% for t in tables %}DELETE FROM ONLY public.{{ t | ident }};
{% endfor %}
