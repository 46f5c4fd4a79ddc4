//! Transient API failures are retried, inside the command's time: connection refused, reset or
//! closed before the answer; 429 (after its Retry-After); 500, 502, 503, 504; a 409 Conflict on a
//! write that is not a server-side apply. Capped exponential backoff with jitter, until the
//! command's deadline; then the last answer goes to the caller, who reports it. Everything else
//! (400, 401, 403, 404, 409 AlreadyExists, 422, …) is answered at once.
//!
//! It is a tower layer under kube's client, so every request retries the same way: reads, applies,
//! waits, and the upgrade requests of exec and port-forward.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::{Body, DynBody};
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt};

use super::client::root_cause;

/// The first wait; it doubles up to [`MAX_DELAY`], each with jitter (50–100 % of it).
pub const FIRST_DELAY: Duration = Duration::from_millis(200);
pub const MAX_DELAY: Duration = Duration::from_secs(5);

static SAY: AtomicBool = AtomicBool::new(false);
/// Has any request of this process got an answer? Until one has, an API server that cannot be
/// reached is more likely a wrong kubeconfig than a restart: it is retried for [`UNREACHED`] only.
static REACHED: AtomicBool = AtomicBool::new(false);
pub const UNREACHED: Duration = Duration::from_secs(5);

/// Say each retry on stderr (`-v`).
pub fn say_retries(on: bool) {
    SAY.store(on, Ordering::Relaxed);
}

#[derive(Clone)]
pub struct RetryLayer {
    pub deadline: Instant,
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;
    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner: Arc::new(tokio::sync::Mutex::new(inner)),
            deadline: self.deadline,
        }
    }
}

pub struct Retry<S> {
    inner: Arc<tokio::sync::Mutex<S>>,
    deadline: Instant,
}

impl<S> Clone for Retry<S> {
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            deadline: self.deadline,
        }
    }
}

type Answer = Response<Box<DynBody>>;

impl<S> Service<Request<Body>> for Retry<S>
where
    S: Service<Request<Body>, Response = Answer, Error = BoxError> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Answer;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(())) // the inner service is made ready per attempt, below
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let deadline = self.deadline;
        Box::pin(async move {
            let apply = request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch"));
            let what = format!("{} {}", request.method(), request.uri().path());
            let conflict_retried = !apply
                && matches!(
                    *request.method(),
                    Method::PUT | Method::PATCH | Method::DELETE
                );
            let mut next = Some(request);
            let mut attempt: u32 = 0;
            let started = Instant::now();
            loop {
                let request = next.take().expect("a request for this attempt");
                // A copy for the attempt after this one; a streaming body cannot be sent twice.
                next = copy(&request);
                let answer = {
                    let mut svc = inner.lock().await;
                    svc.ready().await?;
                    svc.call(request)
                }
                .await;
                if answer.is_ok() {
                    REACHED.store(true, Ordering::Relaxed);
                }
                let (why, answer, after) = match answer {
                    Err(e) if transient(&*e) => (root_cause(&*e), Err(e), None),
                    Err(e) => return Err(e),
                    Ok(r) => match r.status() {
                        StatusCode::TOO_MANY_REQUESTS
                        | StatusCode::INTERNAL_SERVER_ERROR
                        | StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT => {
                            let after = retry_after(&r);
                            (r.status().to_string(), Ok(r), after)
                        }
                        StatusCode::CONFLICT if conflict_retried => {
                            let (r, conflict) = is_conflict(r).await?;
                            if !conflict {
                                return Ok(r);
                            }
                            ("409 Conflict".to_string(), Ok(r), None)
                        }
                        _ => return Ok(r),
                    },
                };
                attempt += 1;
                let delay = after.unwrap_or_else(|| backoff(attempt));
                let deadline = if REACHED.load(Ordering::Relaxed) {
                    deadline
                } else {
                    deadline.min(started + UNREACHED)
                };
                if next.is_none() || Instant::now() + delay > deadline {
                    return answer; // out of time (or a body that cannot be sent again)
                }
                if SAY.load(Ordering::Relaxed) {
                    eprintln!(
                        "{what}: {why}; retrying in {:.1}s (attempt {})",
                        delay.as_secs_f64(),
                        attempt + 1
                    );
                }
                tokio::time::sleep(delay).await;
            }
        })
    }
}

fn copy(request: &Request<Body>) -> Option<Request<Body>> {
    let body = request.body().try_clone()?;
    let mut copy = Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    Some(copy)
}

/// Capped exponential backoff with jitter: attempt 1 waits 100–200 ms, 2 waits 200–400 ms, …
pub fn backoff(attempt: u32) -> Duration {
    let full = FIRST_DELAY
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(10))
        .min(MAX_DELAY);
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let share = 0.5 + f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX) / 2.0;
    full.mul_f64(share)
}

/// `Retry-After: SECONDS` (at most a minute; the deadline bounds it anyway).
fn retry_after(r: &Answer) -> Option<Duration> {
    let secs: u64 = r
        .headers()
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(60)))
}

/// A 409's Status reason: `Conflict` (the object changed meanwhile: worth another try) or another
/// (`AlreadyExists`: final). The body is read, so the answer is rebuilt from it.
async fn is_conflict(r: Answer) -> Result<(Answer, bool), BoxError> {
    let (parts, body) = r.into_parts();
    let bytes: Bytes = body.collect().await?.to_bytes();
    let conflict = serde_json::from_slice::<serde_json::Value>(&bytes)
        .is_ok_and(|v| v["reason"] == "Conflict");
    let body: Box<DynBody> = Box::new(http_body_util::Full::new(bytes).map_err(|e| match e {}));
    Ok((Response::from_parts(parts, body), conflict))
}

/// Connection-level failures that another attempt may not meet: refused, reset, closed before
/// the answer, timed out.
fn transient(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled() || h.is_closed() || h.is_timeout())
        {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | BrokenPipe
                    | UnexpectedEof
                    | NotConnected
                    | TimedOut
            ) {
                return true;
            }
        }
        let text = err.to_string();
        if text.contains("connection closed before message completed")
            || text.contains("error trying to connect")
        {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for _ in 0..50 {
            let one = backoff(1);
            assert!(one >= FIRST_DELAY / 2 && one <= FIRST_DELAY, "{one:?}");
            let three = backoff(3);
            assert!(
                three >= FIRST_DELAY * 2 && three <= FIRST_DELAY * 4,
                "{three:?}"
            );
            assert!(backoff(30) <= MAX_DELAY);
            assert!(backoff(30) >= MAX_DELAY / 2);
        }
    }

    #[test]
    fn connection_failures_are_transient_other_errors_are_not() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        assert!(transient(&reset));
        let denied = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no");
        assert!(!transient(&denied));
    }
}
