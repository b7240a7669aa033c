//! An upstream's response body, read only as fast as the client takes it:
//! by `Content-Length`, chunked (extensions and trailers read and dropped)
//! or to the close. At its end the connection goes back to the pool when
//! it may.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;
use tokio::net::TcpStream;

use super::pool::checkin;
use super::{MAX_LINE, MAX_TRAILERS, poll_fill, trim};

/// How the rest of the body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// This many bytes are still to come.
    Length(u64),
    Chunked(Chunk),
    /// Everything until the upstream closes.
    Eof,
    /// The body has been read to its end.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many bytes of the chunk are still to come.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// Reading trailer lines; this many bytes so far.
    Trailers(usize),
}

/// An upstream response body. Reads the socket only when the bytes already
/// read have been handed on; returns the connection to the pool at the end.
pub struct Body {
    io: Option<TcpStream>,
    buf: BytesMut,
    framing: Framing,
    /// Where the connection goes back to at the end, when it may.
    pool: Option<(Arc<str>, usize)>,
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl Body {
    /// The body read from `io` after what `buf` already holds; `pool`:
    /// where the connection goes at the end; `drained`: the read that
    /// brought the head found the socket empty (see `checkin`).
    pub(super) fn new(
        io: TcpStream,
        buf: BytesMut,
        framing: Framing,
        pool: Option<(Arc<str>, usize)>,
        drained: bool,
    ) -> Self {
        let mut body = Body {
            io: Some(io),
            buf,
            framing,
            pool,
        };
        body.settle(drained);
        body
    }

    /// The next piece of body from `buf`, or `None` when more must be read
    /// (or the body is done). With `data` false, only framing is consumed:
    /// it stops where body bytes begin.
    fn decode(&mut self, data: bool) -> io::Result<Option<Bytes>> {
        loop {
            match self.framing {
                Framing::Done => return Ok(None),
                Framing::Length(n) if n > 0 && !data => return Ok(None),
                Framing::Eof | Framing::Chunked(Chunk::Data(_)) if !data => return Ok(None),
                Framing::Length(0) => {
                    self.framing = Framing::Done;
                    return Ok(None);
                }
                Framing::Length(n) => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    let take = (self.buf.len() as u64).min(n);
                    self.framing = Framing::Length(n - take);
                    return Ok(Some(self.buf.split_to(take as usize).freeze()));
                }
                Framing::Eof => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(self.buf.split().freeze()));
                }
                Framing::Chunked(Chunk::Data(n)) => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    let take = (self.buf.len() as u64).min(n);
                    self.framing = Framing::Chunked(if take == n {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(n - take)
                    });
                    return Ok(Some(self.buf.split_to(take as usize).freeze()));
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    if self.buf.len() < 2 {
                        return Ok(None);
                    }
                    if &self.buf[..2] != b"\r\n" {
                        return Err(invalid("chunk data not followed by CRLF"));
                    }
                    self.buf.advance(2);
                    self.framing = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Size) => {
                    let Some(end) = find_crlf(&self.buf, MAX_LINE) else {
                        if self.buf.len() >= MAX_LINE {
                            return Err(invalid("chunk size line too long"));
                        }
                        return Ok(None);
                    };
                    let size = chunk_size(&self.buf[..end]).ok_or(invalid("bad chunk size"))?;
                    self.buf.advance(end + 2);
                    self.framing = Framing::Chunked(if size == 0 {
                        Chunk::Trailers(0)
                    } else {
                        Chunk::Data(size)
                    });
                }
                Framing::Chunked(Chunk::Trailers(seen)) => {
                    let room = MAX_TRAILERS.saturating_sub(seen);
                    let Some(end) = find_crlf(&self.buf, room) else {
                        if self.buf.len() >= room {
                            return Err(invalid("trailers too long"));
                        }
                        return Ok(None);
                    };
                    self.buf.advance(end + 2);
                    self.framing = if end == 0 {
                        Framing::Done
                    } else {
                        Framing::Chunked(Chunk::Trailers(seen + end + 2))
                    };
                }
            }
        }
    }

    /// Decodes what needs no more bytes (a chunk's end, the last chunk,
    /// trailers already read) and, when that ends the body, lets the
    /// connection go: back to the pool if it may, closed otherwise.
    /// `drained`: this poll's last read found the socket empty.
    fn settle(&mut self, drained: bool) {
        if self.decode(false).is_err() {
            // Left where it failed: the next poll reports it.
            return;
        }
        // The rest of the body already in hand: the connection can carry
        // the next request while these bytes go to the client.
        if drained
            && let Framing::Length(n) = self.framing
            && self.buf.len() as u64 == n
            && let Some((authority, keepalive)) = self.pool.take()
            && let Some(io) = self.io.take()
        {
            checkin(&authority, io, keepalive, true);
        }
        if self.framing == Framing::Done
            && let Some(io) = self.io.take()
            && let Some((authority, keepalive)) = self.pool.take()
            && self.buf.is_empty()
        {
            checkin(&authority, io, keepalive, drained);
        }
    }

    /// The whole body when all of it is in hand, it is the `length` the
    /// answer declares (not so for a HEAD's), and the connection is no
    /// longer this body's (back in the pool): it can go out as one piece,
    /// with no stream to drive and no timer to keep.
    pub fn take_whole(&mut self, length: Option<u64>) -> Option<Bytes> {
        let in_hand = match self.framing {
            Framing::Done => 0,
            Framing::Length(n) if self.buf.len() as u64 == n => n,
            _ => return None,
        };
        if self.io.is_some() || length != Some(in_hand) {
            return None;
        }
        self.framing = Framing::Done;
        Some(if in_hand == 0 {
            Bytes::new()
        } else {
            self.buf.split().freeze()
        })
    }

    fn fail(&mut self, e: io::Error) -> Poll<Option<io::Result<Bytes>>> {
        self.framing = Framing::Done;
        self.io = None;
        self.pool = None;
        Poll::Ready(Some(Err(e)))
    }
}

/// The index of the first CRLF within the first `limit` bytes of `buf`.
fn find_crlf(buf: &[u8], limit: usize) -> Option<usize> {
    let window = &buf[..buf.len().min(limit)];
    window.windows(2).position(|w| w == b"\r\n")
}

/// A chunk-size line's size: 1 to 15 hex digits, then optional whitespace
/// and `;extensions`.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = trim(&line[digits..]);
    if digits == 0 || digits > 15 || !(rest.is_empty() || rest[0] == b';') {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(&line[..digits]).ok()?, 16).ok()
}

impl Stream for Body {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        // Whether a read in this poll found the socket empty (see `checkin`).
        let mut drained = false;
        loop {
            match this.decode(true) {
                Err(e) => return this.fail(e),
                Ok(Some(piece)) => {
                    this.settle(drained);
                    return Poll::Ready(Some(Ok(piece)));
                }
                Ok(None) if this.framing == Framing::Done => {
                    this.settle(drained);
                    return Poll::Ready(None);
                }
                Ok(None) => {}
            }
            let Some(io) = &this.io else {
                return Poll::Ready(None);
            };
            match ready!(poll_fill(io, &mut this.buf, cx)) {
                Ok((0, _)) if this.framing == Framing::Eof => {
                    this.framing = Framing::Done;
                    this.io = None;
                    return Poll::Ready(None);
                }
                Ok((0, _)) => return this.fail(invalid("upstream closed mid-body")),
                Ok((_, all)) => drained = all,
                Err(e) => return this.fail(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_short_hex_with_optional_extensions() {
        assert_eq!(chunk_size(b"1a"), Some(26));
        assert_eq!(chunk_size(b"0"), Some(0));
        assert_eq!(chunk_size(b"FF ; name=value"), Some(255));
        assert_eq!(chunk_size(b"10;x"), Some(16));
        for bad in [
            &b""[..],
            b"x",
            b" 1",
            b"1 2",
            b"-1",
            b"1000000000000000",
            b"+5",
        ] {
            assert_eq!(chunk_size(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
