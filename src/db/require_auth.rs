//! libpq's `require_auth` for the tool's own sessions (tokio-postgres has no such setting): which
//! authentication methods the server may ask for before this tool sends a password. The default
//! refuses a request for the password in clear text (`!password`): a server that asks for it —
//! misconfigured, or not the server meant — would otherwise be handed the password (for prod's
//! `install --server X`, the server administrator's). The release's own pod is held to SCRAM
//! (`scram-sha-256`), the only method its pg_hba.conf uses.
//!
//! [`Guarded`] reads the server's messages as they arrive, under TLS where there is TLS (the
//! socket's own guard steps aside once the server accepts the SSLRequest, [`GuardTls`] guards the
//! TLS stream), and fails the read that carries a refused request: tokio-postgres never sees it,
//! so the password is never written. The local tools get the same rule as `PGREQUIREAUTH`
//! (libpq 16 and later; older libpq does not know it).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};

/// An authentication method, as `require_auth` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The password in clear text (pg_hba `password`, and `ldap`, `radius`, `pam`, which ask the
    /// client the same way).
    Password,
    Md5,
    Gss,
    Sspi,
    ScramSha256,
    /// The server asked for nothing (`trust`, `peer`, a certificate).
    None,
}

impl Method {
    const ALL: [Method; 6] = [
        Method::Password,
        Method::Md5,
        Method::Gss,
        Method::Sspi,
        Method::ScramSha256,
        Method::None,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Password => "password",
            Method::Md5 => "md5",
            Method::Gss => "gss",
            Method::Sspi => "sspi",
            Method::ScramSha256 => "scram-sha-256",
            Method::None => "none",
        }
    }

    /// The method an `AuthenticationRequest` code asks for (PostgreSQL's protocol, 55.7).
    fn of_request(code: u32) -> Option<Method> {
        match code {
            0 => Some(Method::None),
            3 => Some(Method::Password),
            5 => Some(Method::Md5),
            2 | 7 => Some(Method::Gss),
            9 => Some(Method::Sspi),
            10 => Some(Method::ScramSha256),
            _ => None, // 8, 11, 12: the continuation of a request already judged
        }
    }
}

/// Which methods the server may use: a list, or all but a list (`!` before each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequireAuth {
    negated: bool,
    methods: Vec<Method>,
}

impl Default for RequireAuth {
    /// Anything but the password in clear text.
    fn default() -> RequireAuth {
        RequireAuth {
            negated: true,
            methods: vec![Method::Password],
        }
    }
}

impl fmt::Display for RequireAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bang = if self.negated { "!" } else { "" };
        let names: Vec<String> = self
            .methods
            .iter()
            .map(|m| format!("{bang}{}", m.name()))
            .collect();
        f.write_str(&names.join(","))
    }
}

impl RequireAuth {
    /// SCRAM only: the release's own server.
    pub fn scram() -> RequireAuth {
        RequireAuth {
            negated: false,
            methods: vec![Method::ScramSha256],
        }
    }

    /// libpq's syntax: `scram-sha-256`, `md5,scram-sha-256`, `!password`, `!password,!md5`; every
    /// entry negated or none, each method once.
    pub fn parse(text: &str) -> Result<RequireAuth, String> {
        let mut negated = None;
        let mut methods = Vec::new();
        for entry in text.split(',') {
            let (bang, name) = match entry.strip_prefix('!') {
                Some(n) => (true, n),
                None => (false, entry),
            };
            if *negated.get_or_insert(bang) != bang {
                return Err(
                    "negative require_auth methods cannot be mixed with positive ones".into(),
                );
            }
            let Some(method) = Method::ALL.into_iter().find(|m| m.name() == name) else {
                return Err(format!(
                    "require_auth: `{}` is not one of password, md5, gss, sspi, scram-sha-256, none",
                    crate::error::shown(name)
                ));
            };
            if methods.contains(&method) {
                return Err(format!("require_auth names {} twice", method.name()));
            }
            methods.push(method);
        }
        Ok(RequireAuth {
            negated: negated.unwrap_or(false),
            methods,
        })
    }

    pub fn allows(&self, method: Method) -> bool {
        self.methods.contains(&method) != self.negated
    }

    /// Why a request for `method` is refused, if it is.
    fn refusal(&self, method: Method) -> Option<Refused> {
        (!self.allows(method)).then(|| Refused {
            method,
            rule: self.to_string(),
        })
    }
}

/// The server asked for a method the rule refuses; nothing was sent in answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub method: Method,
    pub rule: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.method {
            Method::Password => write!(
                f,
                "the server asked for the password in clear text, which require_auth={} refuses; the password was not sent",
                self.rule
            ),
            Method::None => write!(
                f,
                "the server let the session in without asking for a password, which require_auth={} refuses",
                self.rule
            ),
            m => write!(
                f,
                "the server asked for authentication method {}, which require_auth={} refuses; the password was not sent",
                m.name(),
                self.rule
            ),
        }
    }
}

impl std::error::Error for Refused {}

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 4, 210, 22, 47];
const PROTOCOL_3: [u8; 4] = [0, 3, 0, 0];

#[derive(Debug)]
enum State {
    /// Before the client's first 8 bytes: an SSLRequest, a startup message, or TLS (direct).
    Start(Vec<u8>),
    /// The SSLRequest's one-byte answer: `S` (TLS follows: [`GuardTls`] guards it) or `N`.
    SslReply,
    /// The server's messages up to the end of authentication.
    Messages {
        /// The message being read: its type, length, and the request code of an `R`.
        head: Vec<u8>,
        /// Bytes of the current message still to pass.
        skip: usize,
        asked: bool,
    },
    /// Authentication is over (or this stream carries TLS): bytes pass unread.
    Pass,
}

/// A stream whose server side is read, up to the end of authentication, for a request the
/// rule refuses.
pub struct Guarded<S> {
    inner: S,
    rule: RequireAuth,
    state: State,
    refused: Option<Refused>,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, rule: RequireAuth) -> Guarded<S> {
        Guarded {
            inner,
            rule,
            state: State::Start(Vec::with_capacity(8)),
            refused: None,
        }
    }

    fn written(&mut self, bytes: &[u8]) {
        let State::Start(seen) = &mut self.state else {
            return;
        };
        let want = 8 - seen.len();
        seen.extend_from_slice(&bytes[..want.min(bytes.len())]);
        if seen.len() < 8 {
            return;
        }
        self.state = if seen[..] == SSL_REQUEST {
            State::SslReply
        } else if seen[4..8] == PROTOCOL_3 {
            State::messages()
        } else {
            State::Pass // TLS from the first byte (sslnegotiation=direct)
        };
    }

    /// Read what the server sent; the refusal when it asks for a refused method.
    fn read(&mut self, mut bytes: &[u8]) -> Result<(), Refused> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Start(_) | State::Pass => return Ok(()),
                State::SslReply => {
                    self.state = match bytes[0] {
                        b'S' => State::Pass,
                        b'N' => State::messages(),
                        _ => {
                            self.state = State::messages();
                            continue; // an old server's ErrorResponse: read as a message
                        }
                    };
                    bytes = &bytes[1..];
                }
                State::Messages { head, skip, asked } => {
                    if *skip > 0 {
                        let n = (*skip).min(bytes.len());
                        *skip -= n;
                        bytes = &bytes[n..];
                        continue;
                    }
                    // The type and length; for a request, its code too.
                    let need = if head.len() >= 5 && head[0] == b'R' {
                        9
                    } else {
                        5
                    };
                    let n = (need - head.len()).min(bytes.len());
                    head.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if head.len() < need || (need == 5 && head[0] == b'R') {
                        continue;
                    }
                    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
                    match head[0] {
                        b'R' => {
                            let code = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
                            if let Some(method) = Method::of_request(code) {
                                // AuthenticationOk after a request ends it; before any, it is
                                // the method `none`.
                                let judged = !(method == Method::None && *asked);
                                if judged && let Some(refused) = self.rule.refusal(method) {
                                    return Err(refused);
                                }
                                if method == Method::None {
                                    self.state = State::Pass;
                                    continue;
                                }
                                *asked = true;
                            }
                            *skip = len.saturating_sub(8);
                            head.clear();
                        }
                        // NegotiateProtocolVersion comes before authentication.
                        b'v' => {
                            *skip = len.saturating_sub(4);
                            head.clear();
                        }
                        // An ErrorResponse, or anything else: authentication is not going on.
                        _ => self.state = State::Pass,
                    }
                }
            }
        }
        Ok(())
    }
}

impl State {
    fn messages() -> State {
        State::Messages {
            head: Vec::with_capacity(9),
            skip: 0,
            asked: false,
        }
    }
}

fn refused_error(r: &Refused) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, r.clone())
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(r) = &self.refused {
            return Poll::Ready(Err(refused_error(r)));
        }
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if let Err(r) = this.read(&buf.filled()[before..]) {
                    buf.set_filled(before);
                    let e = refused_error(&r);
                    this.refused = Some(r);
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(r) = &self.refused {
            return Poll::Ready(Err(refused_error(r)));
        }
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.written(&buf[..n]);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: TlsStream + Unpin> TlsStream for Guarded<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

/// A TLS connector whose stream is [`Guarded`]: the server's messages read after decryption.
pub struct GuardTls<T> {
    pub inner: T,
    pub rule: RequireAuth,
}

impl<S, T> TlsConnect<S> for GuardTls<T>
where
    T: TlsConnect<S>,
    T::Future: Send + 'static,
    T::Stream: Send + 'static,
{
    type Stream = Guarded<T::Stream>;
    type Error = T::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Stream, T::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let rule = self.rule;
        let connecting = self.inner.connect(stream);
        Box::pin(async move { connecting.await.map(|s| Guarded::new(s, rule)) })
    }
}

/// The refusal an error carries, if it carries one (tokio-postgres wraps the read's error).
pub fn refusal_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    std::iter::successors(Some(e), |s| s.source()).find_map(|s| {
        s.downcast_ref::<Refused>().or_else(|| {
            s.downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|i| i.downcast_ref::<Refused>())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(code: u32, extra: &[u8]) -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend_from_slice(&((8 + extra.len()) as u32).to_be_bytes());
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(extra);
        m
    }

    fn startup() -> Vec<u8> {
        let mut m = 9u32.to_be_bytes().to_vec();
        m.extend_from_slice(&PROTOCOL_3);
        m.push(0);
        m
    }

    /// What the guard makes of `server` after the client wrote `client`, fed in pieces of `step`.
    fn judge(rule: &str, client: &[u8], server: &[u8], step: usize) -> Result<(), Refused> {
        let mut g = Guarded::new((), RequireAuth::parse(rule).unwrap());
        g.written(client);
        for chunk in server.chunks(step) {
            g.read(chunk)?;
        }
        Ok(())
    }

    #[test]
    fn rules_parse_as_libpq_reads_them() {
        let r = RequireAuth::parse("!password").unwrap();
        assert_eq!(r, RequireAuth::default());
        assert!(
            !r.allows(Method::Password) && r.allows(Method::ScramSha256) && r.allows(Method::None)
        );
        let r = RequireAuth::parse("md5,scram-sha-256").unwrap();
        assert!(r.allows(Method::Md5) && !r.allows(Method::Password) && !r.allows(Method::None));
        assert_eq!(r.to_string(), "md5,scram-sha-256");
        for bad in ["", "scram", "!md5,password", "md5,md5", "!"] {
            assert!(RequireAuth::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_clear_text_request_is_refused_however_the_bytes_arrive() {
        let sasl = request(10, b"SCRAM-SHA-256\0\0");
        let clear = request(3, b"");
        for step in [1, 2, 3, 5, 9, 100] {
            // Without TLS: the startup message, then the server's request.
            let e = judge("!password", &startup(), &clear, step).unwrap_err();
            assert_eq!(e.method, Method::Password);
            assert!(judge("!password", &startup(), &sasl, step).is_ok());
            assert!(judge("scram-sha-256", &startup(), &request(5, b"salt"), step).is_err());
            // A NegotiateProtocolVersion first, then the request.
            let mut v = vec![b'v', 0, 0, 0, 10, 0, 0, 0, 0, 0, 0];
            v.extend_from_slice(&clear);
            assert!(judge("!password", &startup(), &v, step).is_err());
            // After the SSLRequest: `S` hands over to the TLS stream's guard; `N` goes on here.
            let mut n = vec![b'N'];
            n.extend_from_slice(&clear);
            assert!(judge("!password", &SSL_REQUEST, &n, step).is_err());
            let mut s = vec![b'S'];
            s.extend_from_slice(&[0x16, 3, 3, 0, 5, 1, 2, 3, 4, 5]);
            assert!(judge("!password", &SSL_REQUEST, &s, step).is_ok());
        }
    }

    #[test]
    fn after_authentication_nothing_is_read_and_none_is_judged() {
        // SCRAM to its end, then AuthenticationOk, then anything (even bytes like a request).
        let mut ok = request(10, b"SCRAM-SHA-256\0\0");
        ok.extend(request(11, b"r=abc"));
        ok.extend(request(12, b"v=xyz"));
        ok.extend(request(0, b""));
        ok.extend(request(3, b""));
        assert!(judge("scram-sha-256", &startup(), &ok, 1).is_ok());
        // Let in without a request: `none`, refused by a list without it.
        let trust = request(0, b"");
        assert!(judge("!password", &startup(), &trust, 4).is_ok());
        let e = judge("scram-sha-256", &startup(), &trust, 4).unwrap_err();
        assert_eq!(e.method, Method::None);
        // An error instead of a request: not judged.
        let mut err = vec![b'E', 0, 0, 0, 6, b'x', 0];
        err.extend(request(3, b""));
        assert!(judge("!password", &startup(), &err, 2).is_ok());
    }
}
