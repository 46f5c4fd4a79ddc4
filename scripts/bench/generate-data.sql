-- Generated rows across the Auth tables, for the backup/restore tests and the benchmark.
-- psql variable `users` sets the scale: 9 x users rows in all (users, 2 sessions each, one
-- permission grant each, 3 x users login history and access log rows). Runs after apply-schema.
-- Every value is a function of the row number, so two runs at one scale hold the same data.
INSERT INTO auth_users (user_id, password_hash, password_salt, customer_id, line_number,
                        account_status, failed_login_count, last_login_at)
SELECT 'gen-user-' || i,
       md5(i::text) || md5((i * 7)::text),
       md5((i * 3)::text),
       'GEN-CUST-' || i,
       '010-' || lpad((i % 10000)::text, 4, '0') || '-' || lpad((i / 10000 % 10000)::text, 4, '0'),
       (ARRAY['ACTIVE', 'LOCKED', 'SUSPENDED', 'INACTIVE'])[1 + i % 4],
       i % 5,
       timestamp '2025-01-01' + i * interval '1 minute'
  FROM generate_series(1, :users) AS i;

INSERT INTO auth_user_sessions (session_id, user_id, session_token, refresh_token, client_ip,
                                user_agent, auto_login_enabled, expires_at)
SELECT 'gen-sess-' || i || '-' || k,
       'gen-user-' || i,
       md5(i || '-' || k) || md5(k || '-' || i) || md5(i::text),
       md5(i::text || 'refresh'),
       '10.0.' || (i % 256) || '.' || k,
       'Mozilla/5.0 (phonebill generator; user ' || i || ')',
       k = 1,
       timestamp '2026-01-01' + i * interval '1 second'
  FROM generate_series(1, :users) AS i, generate_series(1, 2) AS k;

INSERT INTO auth_user_permissions (user_id, permission_id, granted_by)
SELECT 'gen-user-' || i, p.ids[1 + i % array_length(p.ids, 1)], 'generator'
  FROM generate_series(1, :users) AS i,
       (SELECT array_agg(permission_id ORDER BY permission_id) AS ids FROM auth_permissions) AS p;

INSERT INTO auth_login_history (user_id, login_type, login_status, client_ip, user_agent,
                                failure_reason, session_id, attempted_at)
SELECT 'gen-user-' || (1 + i % :users),
       (ARRAY['LOGIN', 'LOGOUT', 'AUTO_LOGIN'])[1 + i % 3],
       (ARRAY['SUCCESS', 'FAILURE', 'LOCKED'])[1 + i % 3],
       '192.168.' || (i % 256) || '.' || (i % 200),
       'Mozilla/5.0 (phonebill generator; history ' || i || ')',
       CASE WHEN i % 3 = 1 THEN 'wrong password' END,
       'gen-sess-' || i,
       timestamp '2025-06-01' + i * interval '1 second'
  FROM generate_series(1, 3 * :users) AS i;

INSERT INTO auth_permission_access_log (user_id, service_code, permission_code, access_status,
                                        client_ip, session_id, requested_resource, denial_reason)
SELECT 'gen-user-' || (1 + i % :users),
       'BILL_INQUIRY',
       'BILL_VIEW',
       (ARRAY['GRANTED', 'DENIED'])[1 + i % 2],
       '172.16.' || (i % 256) || '.1',
       'gen-sess-' || i,
       '/api/bills/' || i,
       CASE WHEN i % 2 = 1 THEN 'no permission' END
  FROM generate_series(1, 3 * :users) AS i;

ANALYZE;
