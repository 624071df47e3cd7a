//! The listening socket: salvo's TCP acceptor, except that a stop also closes connections that
//! have not sent their first byte.
//!
//! salvo's graceful stop lets every connection finish the request it is serving, and hyper closes
//! idle keep-alive connections at once. A connection that was opened but has sent nothing yet (a
//! client pool's spare connection, a browser's preconnect) is different: it waits in salvo's
//! protocol-detection read, which the stop does not interrupt, so the stop would wait out its whole
//! drain timeout for a request that never comes. Here such a connection reads end-of-file as soon
//! as the stop begins; nothing was asked on it, so nothing is lost.

use std::future::Future;
use std::io::Result as IoResult;
use std::pin::Pin;
use std::task::{Context, Poll};

use salvo::conn::tcp::{TcpAcceptor, TcpCoupler};
use salvo::conn::{Accepted, Acceptor, Holding};
use salvo::fuse::ArcFusePolicy;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

type TcpStream = <TcpAcceptor as Acceptor>::Stream;

/// Accepts TCP connections whose first read ends at `stopping` if no byte has come by then.
pub struct StoppableAcceptor {
    inner: TcpAcceptor,
    stopping: CancellationToken,
}

impl StoppableAcceptor {
    pub fn new(inner: TcpAcceptor, stopping: CancellationToken) -> Self {
        Self { inner, stopping }
    }
}

impl Acceptor for StoppableAcceptor {
    type Coupler = TcpCoupler<Self::Stream>;
    type Stream = UntilFirstByte;

    fn holdings(&self) -> &[Holding] {
        self.inner.holdings()
    }

    async fn accept(
        &mut self,
        fuse_policy: Option<ArcFusePolicy>,
    ) -> IoResult<Accepted<Self::Coupler, Self::Stream>> {
        let Accepted {
            stream,
            fuse_config,
            conn_ctrl,
            local_addr,
            remote_addr,
            http_scheme,
            ..
        } = self.inner.accept(fuse_policy).await?;
        Ok(Accepted {
            coupler: TcpCoupler::new(),
            stream: UntilFirstByte {
                inner: stream,
                stopping: Some(Box::pin(self.stopping.clone().cancelled_owned())),
            },
            fuse_config,
            conn_ctrl,
            local_addr,
            remote_addr,
            http_scheme,
        })
    }
}

/// A connection that reads end-of-file once the server stops, until its first byte arrives;
/// from then on it is the plain stream.
pub struct UntilFirstByte {
    inner: TcpStream,
    /// Set until the first byte is read.
    stopping: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

impl AsyncRead for UntilFirstByte {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<IoResult<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Some(stopping) = self.stopping.as_mut() {
            match read {
                Poll::Ready(Ok(())) if buf.filled().len() > before => self.stopping = None,
                Poll::Pending if stopping.as_mut().poll(cx).is_ready() => {
                    return Poll::Ready(Ok(()));
                }
                _ => {}
            }
        }
        read
    }
}

impl AsyncWrite for UntilFirstByte {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<IoResult<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<IoResult<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<IoResult<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<IoResult<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
