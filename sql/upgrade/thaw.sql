-- `upgrade` did not switch (it failed or was rolled back): the application writes to this server
-- again. Idempotent.
ALTER ROLE {{ app_user | ident }} IN DATABASE {{ database | ident }} RESET default_transaction_read_only;
