-- `upgrade` that did not switch, `--rollback`: the app role logs in again (freeze.sql); its exact
-- privileges follow (app-role.sql).
ALTER ROLE {{ app_user | ident }} LOGIN;
