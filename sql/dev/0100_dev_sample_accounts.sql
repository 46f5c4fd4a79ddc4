-- Dev only (profile `sampleData: true`, never prod): test accounts of runbook 4.4.3, with BCrypt
-- hashes made in the database by pgcrypto, and their permission grants.
WITH accounts AS (
    SELECT user_id, password, customer_id, line_number, account_status, gen_salt('bf') AS salt
    FROM (VALUES
        ('testuser01', 'Test1234!', 'CUST001', '01012345678', 'ACTIVE'),
        ('testuser02', 'Test1234!', 'CUST002', '01087654321', 'ACTIVE'),
        ('testuser03', 'Test1234!', 'CUST003', '01055556666', 'LOCKED')
    ) AS u (user_id, password, customer_id, line_number, account_status)
)
INSERT INTO auth_users (user_id, password_hash, password_salt, customer_id, line_number, account_status)
SELECT user_id, crypt(password, salt), salt, customer_id, line_number, account_status
FROM accounts;

INSERT INTO auth_user_permissions (user_id, permission_id, granted_by)
SELECT u.user_id, p.permission_id, 'SYSTEM'
FROM auth_users u
JOIN auth_permissions p ON p.permission_code IN ('AUTH_LOGIN', 'BILL_VIEW', 'PRODUCT_VIEW', 'PRODUCT_CHANGE')
WHERE u.user_id IN ('testuser01', 'testuser02');
