-- Reference data every environment needs (auth-schema.md; runbook 4.4.3): the services of the
-- system and their permission codes.
INSERT INTO auth_services (service_code, service_name, service_description) VALUES
    ('AUTH',           'Authentication', 'Login, logout and sessions'),
    ('BILL_INQUIRY',   'Bill inquiry',   'Looking up phone bills'),
    ('PRODUCT_CHANGE', 'Product change', 'Changing the subscribed product');

INSERT INTO auth_permissions (service_code, permission_code, permission_name, permission_description) VALUES
    ('AUTH',           'AUTH_LOGIN',     'Log in',         'Authenticate and open a session'),
    ('BILL_INQUIRY',   'BILL_VIEW',      'View bills',     'Look up the bills of the own line'),
    ('PRODUCT_CHANGE', 'PRODUCT_VIEW',   'View products',  'Look up the products that can be chosen'),
    ('PRODUCT_CHANGE', 'PRODUCT_CHANGE', 'Change product', 'Change the product of the own line');
