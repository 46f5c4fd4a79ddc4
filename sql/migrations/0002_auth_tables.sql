-- The seven tables of the Auth service (auth-schema.md; runbook section 3.2), their keys, checks,
-- indexes and the updated_at trigger. Column names, types and defaults are the service's contract.

CREATE TABLE auth_users (
    user_id                  varchar(50)  PRIMARY KEY,
    password_hash            varchar(255) NOT NULL,
    password_salt            varchar(100) NOT NULL,
    customer_id              varchar(50)  NOT NULL,
    line_number              varchar(20),
    account_status           varchar(20)  DEFAULT 'ACTIVE',
    failed_login_count       integer      DEFAULT 0,
    last_failed_login_at     timestamp,
    account_locked_until     timestamp,
    last_login_at            timestamp,
    last_password_changed_at timestamp,
    created_at               timestamp    DEFAULT CURRENT_TIMESTAMP,
    updated_at               timestamp    DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT uk_auth_users_customer_id UNIQUE (customer_id),
    CONSTRAINT chk_auth_users_account_status
        CHECK (account_status IN ('ACTIVE', 'LOCKED', 'SUSPENDED', 'INACTIVE'))
);

CREATE TABLE auth_user_sessions (
    session_id         varchar(100) PRIMARY KEY,
    user_id            varchar(50)  NOT NULL
        CONSTRAINT fk_auth_user_sessions_user REFERENCES auth_users (user_id) ON DELETE CASCADE,
    session_token      varchar(500) NOT NULL,
    refresh_token      varchar(500),
    client_ip          varchar(45),
    user_agent         text,
    auto_login_enabled boolean      DEFAULT false,
    expires_at         timestamp    NOT NULL,
    created_at         timestamp    DEFAULT CURRENT_TIMESTAMP,
    last_accessed_at   timestamp    DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE auth_services (
    service_code        varchar(30)  PRIMARY KEY,
    service_name        varchar(100) NOT NULL,
    service_description text,
    is_active           boolean      DEFAULT true,
    created_at          timestamp    DEFAULT CURRENT_TIMESTAMP,
    updated_at          timestamp    DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE auth_permissions (
    permission_id          serial       PRIMARY KEY,
    service_code           varchar(30)  NOT NULL
        CONSTRAINT fk_auth_permissions_service REFERENCES auth_services (service_code),
    permission_code        varchar(50)  NOT NULL,
    permission_name        varchar(100) NOT NULL,
    permission_description text,
    is_active              boolean      DEFAULT true,
    created_at             timestamp    DEFAULT CURRENT_TIMESTAMP,
    updated_at             timestamp    DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT uk_auth_permissions_service_permission UNIQUE (service_code, permission_code)
);

CREATE TABLE auth_user_permissions (
    user_permission_id serial      PRIMARY KEY,
    user_id            varchar(50) NOT NULL
        CONSTRAINT fk_auth_user_permissions_user REFERENCES auth_users (user_id) ON DELETE CASCADE,
    permission_id      integer     NOT NULL
        CONSTRAINT fk_auth_user_permissions_permission REFERENCES auth_permissions (permission_id),
    granted_by         varchar(50),
    granted_at         timestamp   DEFAULT CURRENT_TIMESTAMP,
    expires_at         timestamp,
    is_active          boolean     DEFAULT true,
    created_at         timestamp   DEFAULT CURRENT_TIMESTAMP,
    updated_at         timestamp   DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT uk_auth_user_permissions_user_permission UNIQUE (user_id, permission_id)
);

CREATE TABLE auth_login_history (
    history_id     serial      PRIMARY KEY,
    user_id        varchar(50)
        CONSTRAINT fk_auth_login_history_user REFERENCES auth_users (user_id) ON DELETE SET NULL,
    login_type     varchar(20) NOT NULL,
    login_status   varchar(20) NOT NULL,
    client_ip      varchar(45),
    user_agent     text,
    failure_reason varchar(100),
    session_id     varchar(100),
    attempted_at   timestamp   DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT chk_auth_login_history_login_type CHECK (login_type IN ('LOGIN', 'LOGOUT', 'AUTO_LOGIN')),
    CONSTRAINT chk_auth_login_history_login_status CHECK (login_status IN ('SUCCESS', 'FAILURE', 'LOCKED'))
);

CREATE TABLE auth_permission_access_log (
    log_id             serial       PRIMARY KEY,
    user_id            varchar(50)  NOT NULL
        CONSTRAINT fk_auth_permission_access_log_user REFERENCES auth_users (user_id) ON DELETE CASCADE,
    service_code       varchar(30)  NOT NULL,
    permission_code    varchar(50)  NOT NULL,
    access_status      varchar(20)  NOT NULL,
    client_ip          varchar(45),
    session_id         varchar(100),
    requested_resource varchar(200),
    denial_reason      varchar(100),
    accessed_at        timestamp    DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT chk_auth_permission_access_log_access_status CHECK (access_status IN ('GRANTED', 'DENIED'))
);

CREATE INDEX idx_auth_users_customer_id ON auth_users (customer_id);
CREATE INDEX idx_auth_users_account_status ON auth_users (account_status);
CREATE INDEX idx_auth_users_last_login_at ON auth_users (last_login_at);
CREATE INDEX idx_auth_users_failed_login ON auth_users (failed_login_count, last_failed_login_at);
CREATE INDEX idx_auth_users_locked_until ON auth_users (account_locked_until)
    WHERE account_locked_until IS NOT NULL;

CREATE INDEX idx_auth_user_sessions_user_id ON auth_user_sessions (user_id);
CREATE INDEX idx_auth_user_sessions_expires_at ON auth_user_sessions (expires_at);
CREATE INDEX idx_auth_user_sessions_session_token ON auth_user_sessions (session_token);

CREATE INDEX idx_auth_user_permissions_user_id ON auth_user_permissions (user_id);
CREATE INDEX idx_auth_user_permissions_user_active ON auth_user_permissions (user_id, is_active);
CREATE INDEX idx_auth_permissions_service_active ON auth_permissions (service_code, is_active);

CREATE INDEX idx_auth_login_history_user_id ON auth_login_history (user_id);
CREATE INDEX idx_auth_login_history_attempted_at ON auth_login_history (attempted_at);
CREATE INDEX idx_auth_login_history_ip_status_time ON auth_login_history (client_ip, login_status, attempted_at);

CREATE INDEX idx_auth_permission_access_log_user_id ON auth_permission_access_log (user_id);
CREATE INDEX idx_auth_permission_access_log_accessed_at ON auth_permission_access_log (accessed_at);

CREATE FUNCTION auth_set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := CURRENT_TIMESTAMP;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_auth_users_updated_at BEFORE UPDATE ON auth_users
    FOR EACH ROW EXECUTE FUNCTION auth_set_updated_at();
CREATE TRIGGER trg_auth_services_updated_at BEFORE UPDATE ON auth_services
    FOR EACH ROW EXECUTE FUNCTION auth_set_updated_at();
CREATE TRIGGER trg_auth_permissions_updated_at BEFORE UPDATE ON auth_permissions
    FOR EACH ROW EXECUTE FUNCTION auth_set_updated_at();
CREATE TRIGGER trg_auth_user_permissions_updated_at BEFORE UPDATE ON auth_user_permissions
    FOR EACH ROW EXECUTE FUNCTION auth_set_updated_at();
