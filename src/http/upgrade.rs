//! Upgraded connections leave actix-http's dispatcher.
//!
//! Every request that asks for a WebSocket (or is a `CONNECT`) comes here
//! instead of the ordinary HTTP path. It still goes through the same `App`
//! (routing, CORS, `token_auth`, the endpoint, `websocket_relay`), so the
//! rules are the same; what differs is what happens to the socket after the
//! answer:
//!
//! - an answer of `101` carrying a [`Takeover`] is written, and the socket
//!   (with any bytes the client already sent) is handed to the takeover: the
//!   relay or the gateway's tunnel then own it outright, with their own small
//!   buffers instead of the dispatcher's 16 KiB per connection;
//! - any other answer (401, 403, 404, ...) is written as usual and the
//!   connection is closed.
//!
//! The takeover runs as a task of its own: the dispatcher's state (some 3 KiB
//! per connection) is freed once the `101` is out. The server counts open
//! takeovers, so shutdown can wait for them (`Upgraded::closed`).

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_codec::Framed;
use actix_http::body::{BoxBody, MessageBody};
use actix_http::h1::{Codec, Message};
use actix_http::{ConnectionType, Request, Response, StatusCode};
use actix_web::HttpResponse;
use actix_web::dev::Service;
use actix_web::web::BytesMut;
use futures_util::SinkExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::front::Conn;

type TakeoverFn = Box<dyn FnOnce(Socket) -> Pin<Box<dyn Future<Output = ()>>>>;

/// An upgraded connection, handed over with its `101` encoded but not yet
/// written, so that it can leave in one write with the first frames.
pub struct Socket {
    /// The connection.
    pub io: TcpStream,
    /// Bytes the client sent after its request head.
    pub read: BytesMut,
    /// The response head, still to be written.
    pub write: BytesMut,
}

/// What an upgraded connection becomes once answered `101`.
pub struct Takeover(TakeoverFn);

impl Takeover {
    /// A takeover that runs `run` with the upgraded socket.
    pub fn new<F, Fut>(run: F) -> Self
    where
        F: FnOnce(Socket) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        Takeover(Box::new(move |socket| Box::pin(run(socket))))
    }

    /// Attaches this takeover to a `101` response.
    pub fn attach(self, mut res: HttpResponse) -> HttpResponse {
        res.extensions_mut().insert(self);
        res
    }
}

/// The upgraded connections of one server that are still open.
#[derive(Default)]
pub(crate) struct Upgraded {
    live: AtomicUsize,
    idle: Notify,
}

/// Held by an upgraded connection while it is open.
struct Open(Arc<Upgraded>);

impl Drop for Open {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Upgraded {
    fn open(self: &Arc<Self>) -> Open {
        self.live.fetch_add(1, Ordering::AcqRel);
        Open(self.clone())
    }

    /// Waits until no upgraded connection is open.
    pub(crate) async fn closed(&self) {
        loop {
            let idle = self.idle.notified();
            let mut idle = pin!(idle);
            idle.as_mut().enable();
            if self.live.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// Answers one upgrade request on `framed` with the application `app`.
///
/// A takeover runs as a task of its own, so the HTTP layer's per-connection
/// state is freed as soon as the `101` is out; `upgraded` counts it instead.
pub(crate) async fn serve<S, B>(
    app: Rc<S>,
    upgraded: Arc<Upgraded>,
    req: Request,
    mut framed: Framed<Conn, Codec>,
) -> Result<(), Infallible>
where
    S: Service<Request>,
    S::Response: Into<Response<B>>,
    S::Error: Into<Response<BoxBody>>,
    B: MessageBody + 'static,
{
    let mut res: Response<BoxBody> = match app.call(req).await {
        Ok(res) => res.into().map_into_boxed_body(),
        Err(e) => e.into(),
    };
    let takeover = res.extensions_mut().remove::<Takeover>();
    let (mut head, body) = res.into_parts();
    match takeover {
        Some(Takeover(run)) if head.status() == StatusCode::SWITCHING_PROTOCOLS => {
            if framed
                .feed(Message::Item((head, actix_http::body::BodySize::None)))
                .await
                .is_err()
            {
                return Ok(());
            }
            let parts = framed.into_parts();
            // What the dispatcher read, then anything the front read that
            // the dispatcher did not.
            let (io, unread) = parts.io.into_parts();
            let mut read = BytesMut::from(&parts.read_buf[..]);
            read.extend_from_slice(&unread);
            let socket = Socket {
                io,
                // Copied: the HTTP layer's buffers are sized for requests.
                read,
                write: BytesMut::from(&parts.write_buf[..]),
            };
            let open = upgraded.open();
            actix_web::rt::spawn(async move {
                run(socket).await;
                drop(open);
            });
        }
        _ => {
            // An ordinary answer; the connection is not reused after it.
            head.head_mut().set_connection_type(ConnectionType::Close);
            let size = body.size();
            // On a connection that asked to upgrade, actix-http's codec
            // writes a body of unknown length as is, to the close, even
            // where the head would say chunked: the head must say so too.
            head.head_mut().no_chunking(true);
            if framed.send(Message::Item((head, size))).await.is_err() {
                return Ok(());
            }
            let mut body = pin!(body);
            loop {
                match poll_fn(|cx| body.as_mut().poll_next(cx)).await {
                    Some(Ok(chunk)) => {
                        if framed.feed(Message::Chunk(Some(chunk))).await.is_err() {
                            return Ok(());
                        }
                    }
                    // Cut short: what came goes out, then the close (short
                    // of its Content-Length, the client can tell).
                    Some(Err(_)) => {
                        let _ = framed.flush().await;
                        return Ok(());
                    }
                    None => break,
                }
            }
            let _ = framed.send(Message::Chunk(None)).await;
        }
    }
    Ok(())
}
