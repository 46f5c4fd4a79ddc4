//! What a support report must never carry: the release's secret values wherever they appear (a
//! log line, a setting, a query's text), and anything shaped like a credential (a URL's
//! password, a `password=` pair, a PEM private key, a SCRAM verifier, a bearer token).

use std::sync::LazyLock;

use regex::Regex;

/// What a removed value is replaced with.
pub const MARK: &str = "<redacted>";

/// The shortest secret value scrubbed by value: shorter ones (a port, a flag) would blot out
/// ordinary words; every secret the tool generates is far longer.
const SHORTEST: usize = 8;

/// Scrubs text of known secret values and of credential-shaped strings.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// Longest first, so a value that holds another is replaced whole.
    values: Vec<String>,
}

static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // A PEM private key block, whatever its type.
        (
            r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----",
            "-----BEGIN ${1}PRIVATE KEY----- <redacted> -----END ${1}PRIVATE KEY-----",
        ),
        // postgresql://user:PASSWORD@host and the like.
        (
            r"(?i)([a-z][a-z0-9+.-]*://[^/:@\s]*:)[^@\s/]+@",
            "${1}<redacted>@",
        ),
        // password=..., password: ..., PGPASSWORD=... (conninfo, settings, env dumps).
        (
            r#"(?i)\b((?:pg)?pass(?:word)?\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&;,'"]+)"#,
            "${1}<redacted>",
        ),
        // ALTER/CREATE ROLE ... PASSWORD '...' in a logged statement.
        (r"(?i)(password\s+)'(?:[^']|'')*'", "${1}'<redacted>'"),
        // A SCRAM verifier (what pg_authid holds).
        (
            r"SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+",
            "<redacted SCRAM verifier>",
        ),
        // Authorization: Bearer ... (a token in an API error).
        (r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}", "${1}<redacted>"),
    ]
    .into_iter()
    .map(|(re, with)| (Regex::new(re).expect("the patterns are valid"), with))
    .collect()
});

impl Redactor {
    /// A redactor for these secret values (a Secret's decoded data); certificates are public and
    /// kept, short values skipped (see [`SHORTEST`]).
    pub fn new<I, S>(values: I) -> Redactor
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut values: Vec<String> = values
            .into_iter()
            .map(Into::into)
            .map(|v| v.trim().to_string())
            .filter(|v| v.len() >= SHORTEST && !is_public(v))
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Redactor { values }
    }

    /// How many values it scrubs by value.
    pub fn known(&self) -> usize {
        self.values.len()
    }

    /// The text with every known value and every credential-shaped string replaced.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MARK);
            }
            // A multi-line value (a PEM key) may appear with its lines joined or re-indented.
            for line in v.lines().map(str::trim).filter(|l| l.len() >= 32) {
                if out.contains(line) {
                    out = out.replace(line, MARK);
                }
            }
        }
        for (re, with) in PATTERNS.iter() {
            if re.is_match(&out) {
                out = re.replace_all(&out, *with).into_owned();
            }
        }
        out
    }
}

/// A certificate (PEM), or a bundle of them: public, and what a reader of the report needs.
fn is_public(value: &str) -> bool {
    value.starts_with("-----BEGIN CERTIFICATE-----") && !value.contains("PRIVATE KEY")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_go_wherever_they_appear() {
        let r = Redactor::new(["s3cr3t-Pa55word", "5432", "another-long-secret"]);
        assert_eq!(r.known(), 2, "a short value is not scrubbed by value");
        assert_eq!(
            r.scrub("login with s3cr3t-Pa55word failed; port 5432; xanother-long-secretx"),
            "login with <redacted> failed; port 5432; x<redacted>x"
        );
    }

    #[test]
    fn credential_shapes_go_without_knowing_the_value() {
        let r = Redactor::default();
        assert_eq!(
            r.scrub("postgresql://auth:hunter2xyz@db:5432/auth?sslmode=require"),
            "postgresql://auth:<redacted>@db:5432/auth?sslmode=require"
        );
        assert_eq!(
            r.scrub("primary_conninfo = 'host=a password=abc123 user=b'"),
            "primary_conninfo = 'host=a password=<redacted> user=b'"
        );
        assert_eq!(
            r.scrub("LOG: statement: ALTER ROLE app PASSWORD 'it''s-new'"),
            "LOG: statement: ALTER ROLE app PASSWORD '<redacted>'"
        );
        assert_eq!(
            r.scrub("PGPASSWORD=zzz9 psql"),
            "PGPASSWORD=<redacted> psql"
        );
        assert_eq!(
            r.scrub("SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy"),
            "<redacted SCRAM verifier>"
        );
        assert_eq!(
            r.scrub("Authorization: Bearer eyJhbGciOi.abc.def"),
            "Authorization: Bearer <redacted>"
        );
        let key = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----";
        assert_eq!(
            r.scrub(&format!("key: {key}\nafter")),
            "key: -----BEGIN EC PRIVATE KEY----- <redacted> -----END EC PRIVATE KEY-----\nafter"
        );
        // Ordinary text is left as it is.
        let plain = "checkpoint complete: wrote 3 buffers; password_encryption = scram-sha-256";
        assert_eq!(
            r.scrub("checkpoint complete: wrote 3 buffers"),
            "checkpoint complete: wrote 3 buffers"
        );
        assert_eq!(r.scrub(plain), plain);
        assert_eq!(r.scrub("bypass = on"), "bypass = on");
    }

    #[test]
    fn certificates_are_kept_and_keys_go_line_by_line() {
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        let key_line = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg";
        let key = format!("-----BEGIN PRIVATE KEY-----\n{key_line}\n-----END PRIVATE KEY-----");
        let r = Redactor::new([cert.to_string(), key.clone()]);
        assert_eq!(r.known(), 1);
        assert_eq!(r.scrub(cert), cert);
        assert_eq!(
            r.scrub(&format!("seen {key_line} in a log")),
            "seen <redacted> in a log"
        );
    }
}
