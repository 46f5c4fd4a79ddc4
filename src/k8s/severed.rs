//! An exec session's streams that end when its connection does. kube hands out the streams of an
//! exec as in-memory pipes fed by a task that speaks the WebSocket; when that task fails (the
//! connection reset, the API server gone) it drops its ends of the pipes without closing them, so
//! a reader of stdout would wait forever, and a writer of stdin too once the pipe is full. Here
//! each stream watches the task: once it has failed, a read with nothing left to read (or a write
//! with no room) fails with the task's error — what was sent before the break is still read.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Set once, when the session's connection broke: why.
#[derive(Clone, Default)]
pub struct Break {
    token: CancellationToken,
    cause: Arc<Mutex<Option<String>>>,
}

impl Break {
    /// The connection broke because of `cause`: every stream of the session fails from now on.
    pub fn set(&self, cause: String) {
        *self.cause.lock().expect("the cause's lock") = Some(cause);
        self.token.cancel();
    }

    /// Why the connection broke, if it did.
    pub fn cause(&self) -> Option<String> {
        self.cause.lock().expect("the cause's lock").clone()
    }

    /// `inner`, failing once this break is set and `inner` has nothing more to give.
    pub fn guard<T>(&self, inner: T) -> Severable<T> {
        Severable {
            inner,
            broken: Box::pin(self.token.clone().cancelled_owned()),
            cause: self.cause.clone(),
        }
    }
}

pub struct Severable<T> {
    inner: T,
    broken: Pin<Box<WaitForCancellationFutureOwned>>,
    cause: Arc<Mutex<Option<String>>>,
}

impl<T> Severable<T> {
    /// Pending until the break is set; then the error every call returns.
    fn severed(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.broken.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let cause = self
            .cause
            .lock()
            .expect("the cause's lock")
            .clone()
            .unwrap_or_else(|| "it ended".into());
        Poll::Ready(io::Error::new(
            io::ErrorKind::BrokenPipe,
            format!("the connection to the API server broke: {cause}"),
        ))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Severable<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => self.severed(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Severable<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Poll::Ready(e) = self.severed(cx) {
            return Poll::Ready(Err(e));
        }
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => self.severed(cx).map(Err),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => self.severed(cx).map(Err),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => self.severed(cx).map(Err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The way kube's exec task leaves its pipes when it fails: the writer dropped, not closed.
    #[tokio::test]
    async fn a_reader_gets_what_was_sent_then_the_cause_instead_of_waiting_forever() {
        let (reader, mut writer) = tokio::io::simplex(64);
        writer.write_all(b"before").await.unwrap();
        drop(writer);
        let broke = Break::default();
        let mut reader = broke.guard(reader);
        let mut buf = [0u8; 6];
        reader.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"before");
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(100), async {
            reader.read(&mut buf).await
        })
        .await;
        assert!(waiting.is_err(), "not broken yet: a quiet stream waits");
        broke.set("connection reset by peer".into());
        let e = reader.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(
            e.to_string(),
            "the connection to the API server broke: connection reset by peer"
        );
        assert_eq!(broke.cause().as_deref(), Some("connection reset by peer"));
    }

    #[tokio::test]
    async fn a_writer_with_a_full_pipe_fails_once_the_session_broke() {
        let (reader, writer) = tokio::io::simplex(4);
        let broke = Break::default();
        let mut writer = broke.guard(writer);
        writer.write_all(b"full").await.unwrap();
        let b = broke.clone();
        let setter = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            b.set("the API server went away".into());
        });
        let e = writer.write_all(b"more").await.unwrap_err();
        assert!(e.to_string().contains("the API server went away"), "{e}");
        setter.await.unwrap();
        drop(reader);
    }
}
