//! One client connection and its I/O: the bytes received and not yet parsed, the response bytes
//! not yet sent, and the times its deadlines count from.
//!
//! Owns: `Conn`, reading what the socket has and writing what it will take, never waiting longer
//! than `LINGER` (the poller's reads do not wait at all; a worker's `linger` waits that long for
//! a client's next request), and where the connection stands (`State`). An idle connection holds
//! no buffer.
//! Leaves out: when to read or write (the poller and the workers decide), what the bytes mean.
//! Uses: `wire` (parsing and response framing), mio (leaving the poller while lingering).

use crate::wire::{self, Limits, Parse};
use mio::Registry;
use mio::unix::SourceFd;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Instant;

/// Where a connection stands, for the poller's deadlines and for shedding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Between requests, nothing buffered: may be shed for a newcomer at the cap.
    Idle,
    /// Part of a request has arrived.
    Reading,
    /// A response is partly sent; the client has not read the rest yet.
    Writing,
}

/// How much `read_available` asks of the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// Nothing: no byte can have arrived since the last read.
    Nothing,
    /// Until a read comes back short: the socket was empty then, and the edge-triggered poller
    /// reports the next arrival. Saves the read that would only say `WouldBlock`, one system
    /// call per request.
    Arrived,
    /// Until the socket says `WouldBlock` or end of stream: after a hang-up, or when what waits
    /// is unknown.
    All,
}

pub struct Conn {
    /// Registered with the poller by its descriptor; shared (not duplicated, which costs two
    /// system calls) with the read that watches for the client hanging up.
    pub stream: Arc<TcpStream>,
    /// The socket waits (within its timeouts, `LINGER`) instead of failing with `WouldBlock`: set
    /// by a worker's first `linger` and kept while the worker serves back-to-back requests (two
    /// system calls per request saved); cleared by `unblock` before the poller has it again.
    pub blocking: bool,
    /// Received and not yet parsed (part of a request, or pipelined requests).
    pub buf: Vec<u8>,
    /// Response bytes the socket has not taken yet, and whether to close once they are sent.
    pub out: Vec<u8>,
    pub close_after: bool,
    /// When the first byte of the request now in `buf` arrived (`None` between requests).
    pub request_started: Option<Instant>,
    /// When bytes last moved in either direction.
    pub last_active: Instant,
    /// A chunked request whose body is arriving: its head and the body decoded so far (its bytes
    /// have left `buf`).
    pub chunked: Option<(wire::Head, wire::Chunked)>,
    /// `100 Continue` was sent for the request now in `buf`.
    pub continue_sent: bool,
    /// The peer closed its sending side; what is buffered is all there will be.
    pub eof: bool,
    /// The last read stopped at the buffer cap, not because the socket was empty: bytes may
    /// wait that no readiness event will announce again.
    pub unread: bool,
    /// What the poller watches this connection for: `Some(writable)`, or `None` while it is not
    /// registered (new, or a worker waits on it in `linger`, so its bytes do not wake the poller).
    pub watching: Option<bool>,
    /// The count of open connections, which this one leaves when dropped, however it ends.
    open: Arc<AtomicUsize>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.open.fetch_sub(1, SeqCst);
    }
}

impl Conn {
    pub fn new(stream: TcpStream, open: &Arc<AtomicUsize>) -> Conn {
        open.fetch_add(1, SeqCst);
        Conn {
            stream: Arc::new(stream),
            blocking: false,
            buf: Vec::new(),
            out: Vec::new(),
            close_after: false,
            request_started: None,
            chunked: None,
            last_active: Instant::now(),
            continue_sent: false,
            eof: false,
            unread: false,
            watching: None,
            open: Arc::clone(open),
        }
    }

    pub fn state(&self) -> State {
        if !self.out.is_empty() {
            State::Writing
        } else if self.buf.is_empty() && self.chunked.is_none() {
            State::Idle
        } else {
            State::Reading
        }
    }

    /// Reads what the socket holds, up to `cap` buffered bytes, without waiting (but for
    /// `linger`'s one read in blocking mode). Returns whether anything arrived; an error means
    /// the connection is broken.
    pub fn read_available(
        &mut self,
        scratch: &mut [u8],
        cap: usize,
        take: Take,
    ) -> std::io::Result<bool> {
        if take == Take::Nothing {
            return Ok(false);
        }
        let mut any = false;
        self.unread = false;
        while !self.eof {
            if self.buf.len() >= cap {
                self.unread = true;
                break;
            }
            match (&*self.stream).read(scratch) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.buf.extend_from_slice(&scratch[..n]);
                    any = true;
                    if n < scratch.len() && take == Take::Arrived {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if any {
            self.last_active = Instant::now();
            self.request_started.get_or_insert(self.last_active);
        }
        Ok(any)
    }

    /// Waits up to the socket's read timeout (`LINGER`, set at accept) for the next request
    /// after a response, so that a client sending requests back to back is served without a
    /// trip through the poller. Returns whether bytes arrived.
    pub fn linger(&mut self, scratch: &mut [u8], registry: &Registry) -> std::io::Result<bool> {
        if self.watching.take().is_some() {
            registry.deregister(&mut SourceFd(&self.stream.as_raw_fd()))?;
        }
        if !self.blocking {
            self.stream.set_nonblocking(false)?;
            self.blocking = true;
        }
        // One read: a blocking socket's timeout ends as `WouldBlock`, and the cap is one read.
        self.read_available(scratch, scratch.len(), Take::Arrived)
    }

    /// Makes the socket non-blocking again, for the poller.
    pub fn unblock(&mut self) -> std::io::Result<()> {
        if self.blocking {
            self.stream.set_nonblocking(true)?;
            self.blocking = false;
        }
        Ok(())
    }

    /// Writes as much of `out` as the socket takes now, in one call (in blocking mode, within its
    /// write timeout, `LINGER`). `Ok(true)` when all of it is sent; otherwise the socket's buffer
    /// is full and the rest waits for the poller.
    pub fn flush(&mut self) -> std::io::Result<bool> {
        let sent = loop {
            match (&*self.stream).write(&self.out) {
                Ok(n) => break n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break 0;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if sent > 0 {
            self.last_active = Instant::now();
        }
        if sent < self.out.len() {
            self.out.drain(..sent);
            return Ok(false);
        }
        // Released, not just emptied: an idle connection must not keep its last response's
        // capacity (300 idle connections that had each read a 400 KB page: RSS +146 MiB).
        self.out = Vec::new();
        Ok(true)
    }

    /// The request at the front of `buf`; `take` takes a whole one out of the buffer (the poller
    /// only looks, so a worker parses it again and a request's memory stays on one thread). A
    /// chunked body is decoded as it arrives: its bytes leave `buf` at every call, so none is
    /// parsed twice, and a whole one comes back with `consumed` 0.
    pub fn parse(&mut self, limits: &Limits, take: bool) -> Parse {
        let decoding = self.chunked.is_some();
        let mut parse = match self.chunked.take() {
            None => wire::parse_request(&self.buf, limits),
            Some((head, decoder)) => {
                let limits = limits.for_target(&head.target);
                decoder.resume(head, &self.buf, 0, &limits)
            }
        };
        if let Parse::Done { consumed, .. } = &mut parse
            && (take || decoding)
        {
            self.buf.drain(..*consumed);
            if decoding {
                *consumed = 0;
            }
        }
        let Parse::Chunking {
            head,
            decoder,
            consumed,
        } = parse
        else {
            return parse;
        };
        self.buf.drain(..consumed);
        let expect_continue = head.expect_continue;
        self.chunked = Some((head, decoder));
        Parse::Incomplete { expect_continue }
    }

    /// The head of the request now arriving, when all of it is here.
    pub fn head(&self, limits: &Limits) -> Option<wire::Head> {
        match &self.chunked {
            Some((head, _)) => Some(head.clone()),
            None => wire::read_head(&mut &self.buf[..], limits).ok(),
        }
    }

    /// After a response is sent: the next request's clock starts with its first byte.
    pub fn finish_request(&mut self) {
        self.last_active = Instant::now();
        self.continue_sent = false;
        self.request_started = (!self.buf.is_empty()).then_some(self.last_active);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A connection over a real loopback socket, as the poller makes it (non-blocking, `LINGER`
    /// timeouts), and the client's end.
    fn pair(open: &Arc<AtomicUsize>) -> (Conn, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        server.set_nonblocking(true).expect("socket");
        server
            .set_read_timeout(Some(crate::server::LINGER))
            .expect("socket");
        server
            .set_write_timeout(Some(crate::server::LINGER))
            .expect("socket");
        (Conn::new(server, open), client)
    }

    /// Waits until `socket` has `n` bytes to read (loopback delivers at once, but not
    /// synchronously with `write`).
    fn arrive(socket: &TcpStream, n: usize) {
        let mut peek = vec![0; n];
        for _ in 0..1000 {
            if socket.peek(&mut peek).unwrap_or(0) >= n {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("{n} bytes never arrived");
    }

    const LIMITS: Limits = Limits {
        max_request_line: 1024,
        max_head: 1024,
        max_headers: 10,
        max_body: 1024,
        large_body: ("", 0),
    };

    #[test]
    fn reads_up_to_the_cap_and_remembers_what_is_left() {
        let open = Arc::new(AtomicUsize::new(0));
        let (mut conn, mut client) = pair(&open);
        assert_eq!(open.load(SeqCst), 1);
        let mut scratch = [0u8; 4];
        assert!(
            !conn
                .read_available(&mut scratch, 8, Take::All)
                .expect("socket"),
            "nothing sent yet"
        );
        assert_eq!((conn.state(), conn.request_started), (State::Idle, None));
        client.write_all(b"0123456789ab").expect("socket");
        arrive(&conn.stream, 12);
        assert!(
            conn.read_available(&mut scratch, 8, Take::All)
                .expect("socket")
        );
        // Stopped at the cap (8, in reads of 4), not because the socket was empty.
        assert_eq!((conn.buf.as_slice(), conn.unread), (&b"01234567"[..], true));
        assert_eq!(conn.state(), State::Reading);
        assert!(conn.request_started.is_some());
        assert!(
            conn.read_available(&mut scratch, 64, Take::All)
                .expect("socket")
        );
        assert_eq!((conn.buf.len(), conn.unread, conn.eof), (12, false, false));
        drop(client);
        for _ in 0..1000 {
            conn.read_available(&mut scratch, 64, Take::All)
                .expect("socket");
            if conn.eof {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(conn.eof, "the peer's close is seen");
        drop(conn);
        assert_eq!(
            open.load(SeqCst),
            0,
            "a dropped connection counts itself out"
        );
    }

    #[test]
    fn an_event_read_stops_at_a_short_read_and_a_hang_up_read_takes_all() {
        let open = Arc::new(AtomicUsize::new(0));
        let (mut conn, mut client) = pair(&open);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("send");
        client
            .shutdown(std::net::Shutdown::Write)
            .expect("half-close");
        arrive(&conn.stream, 18);
        std::thread::sleep(std::time::Duration::from_millis(20)); // the FIN too
        let mut scratch = [0u8; 64];
        let read = |c: &mut Conn, s: &mut [u8], take| c.read_available(s, 1024, take);
        assert!(!read(&mut conn, &mut scratch, Take::Nothing).expect("read"));
        assert!(conn.buf.is_empty());
        // One read, shorter than the scratch buffer: the socket was empty then (the end of
        // stream behind the bytes is left for the hang-up event that announces it).
        assert!(read(&mut conn, &mut scratch, Take::Arrived).expect("read"));
        assert_eq!((conn.buf.len(), conn.eof), (18, false));
        assert!(!read(&mut conn, &mut scratch, Take::All).expect("read"));
        assert!(conn.eof, "reading all finds the end of stream");
    }

    /// A client that resets the connection: it closes with bytes of ours unread, so its kernel
    /// answers with RST, and the server's next read or write fails.
    fn reset(conn: &mut Conn, mut client: TcpStream) {
        conn.out = b"unread".to_vec();
        assert!(conn.flush().expect("write"));
        arrive(&client, 1);
        client.write_all(b"GET").expect("send"); // so a read does not end with WouldBlock
        drop(client);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    #[test]
    fn a_reset_connection_fails_its_read_and_its_write() {
        let open = Arc::new(AtomicUsize::new(0));
        let mut scratch = [0u8; 64];
        let (mut conn, client) = pair(&open);
        reset(&mut conn, client);
        // The bytes sent before the reset are read, then the reset fails the read.
        let read = conn.read_available(&mut scratch, 1024, Take::All);
        assert!(read.is_err(), "a reset is not a quiet socket: {read:?}");
        assert_eq!(conn.buf, b"GET");
        let (mut conn, client) = pair(&open);
        reset(&mut conn, client);
        conn.out = vec![b'x'; 1 << 20];
        assert!(conn.flush().is_err(), "writing to a reset connection fails");
        let (mut conn, client) = pair(&open);
        reset(&mut conn, client);
        let poll = mio::Poll::new().expect("poll");
        assert!(conn.linger(&mut scratch, poll.registry()).expect("GET"));
        let lingered = conn.linger(&mut scratch, poll.registry());
        assert!(lingered.is_err(), "a reset is not a pause: {lingered:?}");
    }

    #[test]
    fn a_short_write_keeps_the_rest_and_a_full_one_releases_the_buffer() {
        let open = Arc::new(AtomicUsize::new(0));
        let (mut conn, mut client) = pair(&open);
        conn.out = b"hello".to_vec();
        assert!(conn.flush().expect("socket"));
        assert_eq!(conn.out.capacity(), 0, "released, not just emptied");
        let mut got = [0u8; 5];
        client.read_exact(&mut got).expect("socket");
        assert_eq!(&got, b"hello");
        // Far more than the socket buffers take while the client reads nothing.
        let big: Vec<u8> = (0..64 << 20).map(|i| i as u8).collect();
        conn.out = big.clone();
        let long_ago = Instant::now() - std::time::Duration::from_secs(60);
        conn.last_active = long_ago;
        assert!(!conn.flush().expect("socket"), "the client has not read it");
        // Progress counts as activity (the write timeout runs from it); no progress does not.
        assert!(conn.last_active > long_ago);
        conn.last_active = long_ago;
        assert!(!conn.flush().expect("socket"));
        assert_eq!(conn.last_active, long_ago, "the socket took nothing more");
        assert!(conn.out.len() < big.len() && !conn.out.is_empty());
        assert_eq!(conn.state(), State::Writing);
        // The client reads it all while the rest is flushed as the socket takes it: every byte
        // arrives once, in order.
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            client.read_to_end(&mut all).map(|_| all)
        });
        while !conn.flush().expect("socket") {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        drop(conn);
        assert!(
            reader.join().expect("reader").expect("read") == big,
            "the bytes received are the response"
        );
    }

    #[test]
    fn whole_requests_are_taken_from_the_buffer_one_at_a_time() {
        let open = Arc::new(AtomicUsize::new(0));
        let (mut conn, _client) = pair(&open);
        let one = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        conn.buf = [&one[..], &one[..], b"GET /b HT"].concat();
        conn.request_started = Some(Instant::now());
        conn.continue_sent = true;
        assert!(matches!(conn.parse(&LIMITS, true), Parse::Done { .. }));
        assert_eq!(conn.buf.len(), one.len() + 9);
        conn.finish_request();
        // The next request is already buffered: its clock starts now.
        assert!(conn.request_started.is_some() && !conn.continue_sent);
        assert!(matches!(conn.parse(&LIMITS, true), Parse::Done { .. }));
        assert!(matches!(
            conn.parse(&LIMITS, true),
            Parse::Incomplete { .. }
        ));
        assert_eq!(
            conn.buf, b"GET /b HT",
            "an incomplete request stays buffered"
        );
        conn.buf.clear();
        conn.finish_request();
        assert_eq!(conn.request_started, None, "between requests no clock runs");
    }

    #[test]
    fn linger_waits_briefly_for_the_next_request_then_unblock_restores_the_poller_mode() {
        let open = Arc::new(AtomicUsize::new(0));
        let (mut conn, mut client) = pair(&open);
        let poll = mio::Poll::new().expect("poll");
        let mut scratch = [0u8; 64];
        let started = Instant::now();
        assert!(!conn.linger(&mut scratch, poll.registry()).expect("socket"));
        assert!(conn.blocking && started.elapsed() < std::time::Duration::from_secs(1));
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_micros(200));
            client.write_all(b"GET").expect("socket");
            client
        });
        // Within the 1 ms linger, or (on a loaded machine) on a later try: never a busy loop.
        let mut arrived = false;
        for _ in 0..2000 {
            if conn.linger(&mut scratch, poll.registry()).expect("socket") {
                arrived = true;
                break;
            }
        }
        let _client = writer.join().expect("writer");
        assert!(arrived && conn.buf == b"GET" && conn.request_started.is_some());
        conn.unblock().expect("socket");
        assert!(!conn.blocking);
        // Non-blocking again: an empty socket answers at once, whatever its read timeout.
        conn.stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("socket");
        let started = Instant::now();
        assert!(
            !conn
                .read_available(&mut scratch, 64, Take::All)
                .expect("socket")
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
