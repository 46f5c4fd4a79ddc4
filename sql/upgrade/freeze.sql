-- `upgrade`, before its backup: the application may no longer write to the old server, by any
-- path, so nothing it writes after the backup is lost when the Services move to the new server.
-- Taking privileges is not enough: a group role's grant, a SECURITY DEFINER function, nextval and
-- large objects (which need no privilege to create) still write, and default_transaction_read_only
-- is the session's to switch off. So the app role may not log in at all; end-sessions.sql then ends
-- the sessions it has. Undone by thaw.sql. Idempotent.
ALTER ROLE {{ app_user | ident }} NOLOGIN;
