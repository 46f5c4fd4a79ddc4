//! The schema apply-schema creates, read back from the catalog (information_schema / pg_catalog)
//! and compared with docs/schema.md as transcribed here — not with our own SQL or expectations file.

use std::collections::BTreeSet;

use crate::pg::{Pg, run_url};

/// docs/schema.md, table by table: "table column type nullable default" (`-` = no default;
/// `serial` = a sequence default). Types: varchar(N), integer, text, boolean, timestamp.
const COLUMNS: &str = "
auth_users user_id varchar(50) NO -
auth_users password_hash varchar(255) NO -
auth_users password_salt varchar(100) NO -
auth_users customer_id varchar(50) NO -
auth_users line_number varchar(20) YES -
auth_users account_status varchar(20) YES 'ACTIVE'
auth_users failed_login_count integer YES 0
auth_users last_failed_login_at timestamp YES -
auth_users account_locked_until timestamp YES -
auth_users last_login_at timestamp YES -
auth_users last_password_changed_at timestamp YES -
auth_users created_at timestamp YES CURRENT_TIMESTAMP
auth_users updated_at timestamp YES CURRENT_TIMESTAMP
auth_user_sessions session_id varchar(100) NO -
auth_user_sessions user_id varchar(50) NO -
auth_user_sessions session_token varchar(500) NO -
auth_user_sessions refresh_token varchar(500) YES -
auth_user_sessions client_ip varchar(45) YES -
auth_user_sessions user_agent text YES -
auth_user_sessions auto_login_enabled boolean YES false
auth_user_sessions expires_at timestamp NO -
auth_user_sessions created_at timestamp YES CURRENT_TIMESTAMP
auth_user_sessions last_accessed_at timestamp YES CURRENT_TIMESTAMP
auth_services service_code varchar(30) NO -
auth_services service_name varchar(100) NO -
auth_services service_description text YES -
auth_services is_active boolean YES true
auth_services created_at timestamp YES CURRENT_TIMESTAMP
auth_services updated_at timestamp YES CURRENT_TIMESTAMP
auth_permissions permission_id integer NO serial
auth_permissions service_code varchar(30) NO -
auth_permissions permission_code varchar(50) NO -
auth_permissions permission_name varchar(100) NO -
auth_permissions permission_description text YES -
auth_permissions is_active boolean YES true
auth_permissions created_at timestamp YES CURRENT_TIMESTAMP
auth_permissions updated_at timestamp YES CURRENT_TIMESTAMP
auth_user_permissions user_permission_id integer NO serial
auth_user_permissions user_id varchar(50) NO -
auth_user_permissions permission_id integer NO -
auth_user_permissions granted_by varchar(50) YES -
auth_user_permissions granted_at timestamp YES CURRENT_TIMESTAMP
auth_user_permissions expires_at timestamp YES -
auth_user_permissions is_active boolean YES true
auth_user_permissions created_at timestamp YES CURRENT_TIMESTAMP
auth_user_permissions updated_at timestamp YES CURRENT_TIMESTAMP
auth_login_history history_id integer NO serial
auth_login_history user_id varchar(50) YES -
auth_login_history login_type varchar(20) NO -
auth_login_history login_status varchar(20) NO -
auth_login_history client_ip varchar(45) YES -
auth_login_history user_agent text YES -
auth_login_history failure_reason varchar(100) YES -
auth_login_history session_id varchar(100) YES -
auth_login_history attempted_at timestamp YES CURRENT_TIMESTAMP
auth_permission_access_log log_id integer NO serial
auth_permission_access_log user_id varchar(50) NO -
auth_permission_access_log service_code varchar(30) NO -
auth_permission_access_log permission_code varchar(50) NO -
auth_permission_access_log access_status varchar(20) NO -
auth_permission_access_log client_ip varchar(45) YES -
auth_permission_access_log session_id varchar(100) YES -
auth_permission_access_log requested_resource varchar(200) YES -
auth_permission_access_log denial_reason varchar(100) YES -
auth_permission_access_log accessed_at timestamp YES CURRENT_TIMESTAMP
";

/// Keys: "table TYPE columns[ -> table(columns) on delete RULE]".
const KEYS: &str = "
auth_users PRIMARY KEY user_id
auth_users UNIQUE customer_id
auth_user_sessions PRIMARY KEY session_id
auth_user_sessions FOREIGN KEY user_id -> auth_users(user_id) CASCADE
auth_services PRIMARY KEY service_code
auth_permissions PRIMARY KEY permission_id
auth_permissions FOREIGN KEY service_code -> auth_services(service_code) NO ACTION
auth_permissions UNIQUE service_code,permission_code
auth_user_permissions PRIMARY KEY user_permission_id
auth_user_permissions FOREIGN KEY user_id -> auth_users(user_id) CASCADE
auth_user_permissions FOREIGN KEY permission_id -> auth_permissions(permission_id) NO ACTION
auth_user_permissions UNIQUE user_id,permission_id
auth_login_history PRIMARY KEY history_id
auth_login_history FOREIGN KEY user_id -> auth_users(user_id) SET NULL
auth_permission_access_log PRIMARY KEY log_id
auth_permission_access_log FOREIGN KEY user_id -> auth_users(user_id) CASCADE
";

/// Indexes of docs/schema.md: "table columns[ partial]".
const INDEXES: &str = "
auth_users customer_id
auth_users account_status
auth_users last_login_at
auth_users failed_login_count,last_failed_login_at
auth_users account_locked_until partial
auth_user_sessions user_id
auth_user_sessions expires_at
auth_user_sessions session_token
auth_user_permissions user_id
auth_user_permissions user_id,is_active
auth_permissions service_code,is_active
auth_login_history user_id
auth_login_history attempted_at
auth_login_history client_ip,login_status,attempted_at
auth_permission_access_log user_id
auth_permission_access_log accessed_at
";

fn lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

fn rows(pg: &Pg, db: &str, sql: &str) -> BTreeSet<String> {
    lines(&pg.psql(db, sql).replace('|', " "))
}

#[tokio::test]
async fn the_schema_matches_auth_schema_md_in_the_catalog() {
    let pg = Pg::get();
    let db = pg.create_database("schema");
    let run = run_url(&["apply-schema", "--database-url", &pg.url(&db)], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    let columns = rows(&pg, &db, "
        SELECT table_name, column_name,
               CASE data_type WHEN 'character varying' THEN 'varchar(' || character_maximum_length || ')'
                              WHEN 'timestamp without time zone' THEN 'timestamp' ELSE data_type END,
               is_nullable,
               CASE WHEN column_default IS NULL THEN '-'
                    WHEN column_default LIKE 'nextval(%' THEN 'serial'
                    ELSE regexp_replace(column_default, '::character varying$', '') END
        FROM information_schema.columns WHERE table_schema = 'public' AND table_name IN
             (SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE')");
    assert_eq!(columns, lines(COLUMNS));

    let keys = rows(&pg, &db, "
        SELECT tc.table_name, tc.constraint_type,
               (SELECT string_agg(k.column_name, ',' ORDER BY k.ordinal_position) FROM information_schema.key_column_usage k
                 WHERE k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema)
               || COALESCE((SELECT ' -> ' || ccu.table_name || '(' || string_agg(ccu.column_name, ',') || ') ' || rc.delete_rule
                 FROM information_schema.referential_constraints rc
                 JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = rc.unique_constraint_name
                 WHERE rc.constraint_name = tc.constraint_name GROUP BY ccu.table_name, rc.delete_rule), '')
        FROM information_schema.table_constraints tc
        WHERE tc.table_schema = 'public' AND tc.constraint_type IN ('PRIMARY KEY', 'UNIQUE', 'FOREIGN KEY')");
    assert_eq!(keys, lines(KEYS));

    // CHECK constraints: every allowed value of docs/schema.md, and nothing else allowed.
    for (table, column, allowed, refused) in [
        (
            "auth_users",
            "account_status",
            "ACTIVE,LOCKED,SUSPENDED,INACTIVE",
            "DELETED",
        ),
        (
            "auth_login_history",
            "login_type",
            "LOGIN,LOGOUT,AUTO_LOGIN",
            "SSO",
        ),
        (
            "auth_login_history",
            "login_status",
            "SUCCESS,FAILURE,LOCKED",
            "MAYBE",
        ),
        (
            "auth_permission_access_log",
            "access_status",
            "GRANTED,DENIED",
            "PENDING",
        ),
    ] {
        let defs = pg.psql(&db, &format!(
            "SELECT string_agg(pg_get_constraintdef(oid), ' ') FROM pg_constraint WHERE conrelid = '{table}'::regclass AND contype = 'c'"
        ));
        for v in allowed.split(',') {
            assert!(
                defs.contains(&format!("'{v}'")),
                "{table}.{column} allows {v}: {defs}"
            );
        }
        assert!(!defs.contains(&format!("'{refused}'")), "{defs}");
        assert!(defs.contains(column), "{defs}");
    }

    let indexes = rows(&pg, &db, "
        SELECT t.relname, array_to_string(ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o), ',')
               || CASE WHEN i.indpred IS NULL THEN '' ELSE ' partial' END
        FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
        WHERE t.relnamespace = 'public'::regnamespace AND NOT i.indisprimary AND NOT i.indisunique");
    assert_eq!(indexes, lines(INDEXES));
    let partial = pg.psql(
        &db,
        "SELECT indexdef FROM pg_indexes WHERE indexdef LIKE '%account_locked_until%'",
    );
    assert!(
        partial.ends_with("WHERE (account_locked_until IS NOT NULL)"),
        "{partial}"
    );

    let triggers = rows(&pg, &db, "
        SELECT event_object_table, action_timing, event_manipulation, action_orientation, action_statement
        FROM information_schema.triggers WHERE trigger_schema = 'public'");
    let want: BTreeSet<String> = [
        "auth_users",
        "auth_services",
        "auth_permissions",
        "auth_user_permissions",
    ]
    .iter()
    .map(|t| format!("{t} BEFORE UPDATE ROW EXECUTE FUNCTION auth_set_updated_at()"))
    .collect();
    assert_eq!(triggers, want);
    // The trigger works: an update moves updated_at.
    pg.psql(
        &db,
        "UPDATE auth_services SET updated_at = '2000-01-01' WHERE service_code = 'AUTH'",
    );
    assert_eq!(
        pg.psql(
            &db,
            "SELECT updated_at > '2001-01-01' FROM auth_services WHERE service_code = 'AUTH'"
        ),
        "t"
    );

    let extensions = rows(
        &pg,
        &db,
        "SELECT extname FROM pg_extension WHERE extname <> 'plpgsql'",
    );
    assert_eq!(extensions, lines("uuid-ossp\npgcrypto\npg_stat_statements"));
    assert_eq!(pg.psql(&db, "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()"), "UTF8");

    // Reference data and sample accounts (dev), with BCrypt hashes made by pgcrypto.
    assert_eq!(
        rows(&pg, &db, "SELECT service_code FROM auth_services"),
        lines("AUTH\nBILL_INQUIRY\nPRODUCT_CHANGE")
    );
    assert_eq!(
        pg.psql(
            &db,
            "SELECT count(DISTINCT service_code) FROM auth_permissions"
        ),
        "3",
        "at least one permission per service"
    );
    for p in [
        "BILL_INQUIRY BILL_VIEW",
        "PRODUCT_CHANGE PRODUCT_VIEW",
        "PRODUCT_CHANGE PRODUCT_CHANGE",
    ] {
        assert!(
            rows(
                &pg,
                &db,
                "SELECT service_code, permission_code FROM auth_permissions"
            )
            .contains(p),
            "{p}"
        );
    }
    assert_eq!(
        pg.psql(&db, "SELECT bool_and(password_hash LIKE '$2a$%' AND crypt('Test1234!', password_hash) = password_hash) FROM auth_users"),
        "t"
    );
    assert!(
        pg.psql(&db, "SELECT count(*) FROM auth_user_permissions")
            .parse::<i32>()
            .unwrap()
            > 0
    );
}

#[tokio::test]
async fn without_sample_data_no_accounts_are_loaded() {
    let pg = Pg::get();
    let db = pg.create_database("nosample");
    let values = std::env::temp_dir().join(format!("{db}-values.yaml"));
    std::fs::write(&values, "sampleData: false\n").unwrap();
    let v = values.display().to_string();
    let run = run_url(
        &[
            "apply-schema",
            "-o",
            "json",
            "--database-url",
            &pg.url(&db),
            "--values",
            &v,
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["applied"].as_array().unwrap().len(), 3);
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM auth_users"), "0");
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM auth_services"), "3");
}
