//! The poller: one thread that owns the listener and every connection waiting for bytes (new,
//! idle between requests, part of a request received) or for a slow reader (part of a response
//! unsent), parked in the kernel's readiness poller (epoll, through mio, edge-triggered).
//!
//! It reads what arrives and parses it to learn whether a request is whole; a whole request (or
//! a framing error) goes to a worker of its lane with its connection.
//! It keeps the deadlines: `IDLE_TIMEOUT_MS` between requests (closed),
//! `READ_TIMEOUT_MS` of silence and `REQUEST_TIMEOUT_MS` in total mid-request (408, closed),
//! `WRITE_TIMEOUT_MS` without progress on an unsent response (dropped). At `MAX_CONNECTIONS` it
//! sheds the connection idle longest for a newcomer; with none idle, the newcomer gets 503.
//! Bytes parked are bounded in total (`MAX_HELD`): past it an upload gets 503, a non-reader is
//! dropped.
//!
//! Owns: accepting, waiting, deadlines, shedding, and the end of the server (it returns once
//! stopping and no connection has a request left to finish).
//! Leaves out: running requests (the workers in `mod`).
//! Uses: `conn`, `lanes`, `wire`, `http` and `router` (the 408 and 503 it answers itself, through
//! `handle`), `log`, `lock`, `ts` (the Date of those answers), mio.

use super::conn::{Conn, State, Take};
use super::lanes::{Lanes, lane_of};
use super::{Job, Shared, handle, wait_limit};
use crate::http::{ApiError, Req};
use crate::log::{Level, Line};
use crate::wire::{self, Parse};
use crate::{App, lock, router};
use mio::net::TcpListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(0);
pub const WAKER: Token = Token(1);
/// How often deadlines are checked (and a failed accept retried).
const TICK: Duration = Duration::from_millis(100);
/// Bytes parked across all connections, at most: requests part-received and responses unsent.
/// Past it, a connection mid-request gets 503 and one mid-response is dropped, so a crowd of
/// slow uploads or of readers that do not read cannot grow the process without bound.
const MAX_HELD: usize = 64 << 20;

pub struct Poller {
    app: Arc<App>,
    shared: Arc<Shared>,
    poll: Poll,
    listener: Option<TcpListener>,
    jobs: Arc<Lanes<Job>>,
    parked: HashMap<usize, Conn>,
    /// The parked connections with nothing in progress, oldest activity first.
    idle: BTreeSet<(Instant, usize)>,
    /// Bytes parked now (`held` of every parked connection).
    held: usize,
    /// Connections a worker has that had bytes arrive meanwhile: read when handed back. The
    /// others are not (an edge-triggered poller reports every arrival, so one with no event has
    /// nothing new): a system call saved per request.
    missed: HashSet<usize>,
    next_token: usize,
    scratch: Vec<u8>,
    /// An accept failed (out of descriptors): retried every tick, since the listener's readiness
    /// edge has passed.
    accept_failed: Option<Instant>,
}

impl Poller {
    pub fn new(
        app: Arc<App>,
        shared: Arc<Shared>,
        poll: Poll,
        mut listener: TcpListener,
        jobs: Arc<Lanes<Job>>,
    ) -> std::io::Result<Poller> {
        (poll.registry()).register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Poller {
            app,
            shared,
            poll,
            listener: Some(listener),
            jobs,
            parked: HashMap::new(),
            idle: BTreeSet::new(),
            held: 0,
            missed: HashSet::new(),
            next_token: 2,
            scratch: vec![0; 16 * 1024],
            accept_failed: None,
        })
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut swept = Instant::now();
        loop {
            if let Err(e) = self.poll.poll(&mut events, Some(TICK))
                && e.kind() != ErrorKind::Interrupted
            {
                self.log_error("poll_error", &e);
                std::thread::sleep(TICK);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    // Events for a connection a worker has are not lost: it is read when it is
                    // handed back.
                    Token(t) => match self.unpark(t) {
                        Some(conn) if event.is_read_closed() || event.is_error() => {
                            self.guarded(t, conn, Take::All)
                        }
                        Some(conn) => self.guarded(t, conn, Take::Arrived),
                        None => _ = self.missed.insert(t),
                    },
                }
            }
            let back = std::mem::take(&mut *lock(&self.shared.back));
            for (t, conn) in back {
                let missed = self.missed.remove(&t);
                if let Some(conn) = conn {
                    // Out of the poller while it lingered, or bytes left unread at the buffer
                    // cap: whatever waits is unknown.
                    let read = missed || conn.watching.is_none() || conn.unread;
                    self.guarded(t, conn, if read { Take::All } else { Take::Nothing });
                }
            }
            if swept.elapsed() >= TICK {
                swept = Instant::now();
                self.sweep(swept);
                if self.accept_failed.is_some() {
                    self.accept();
                }
            }
            (self.app.metrics.idle_connections).store(self.idle.len(), SeqCst);
            if self.shared.stopping.load(SeqCst) && self.stop() {
                return;
            }
        }
    }

    /// Accepts every pending connection.
    fn accept(&mut self) {
        while let Some(listener) = &self.listener {
            match listener.accept() {
                Ok((stream, _)) => self.admit(stream.into()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: the condition passes when connections close.
                    if (self.accept_failed).is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                        self.log_error("accept_error", &e);
                        self.accept_failed = Some(Instant::now());
                    }
                    return;
                }
            }
        }
        self.accept_failed = None;
    }

    /// A new connection: under the cap it is parked; at the cap the one idle longest is shed
    /// to make room, and with none idle the newcomer gets 503 and is closed.
    fn admit(&mut self, stream: TcpStream) {
        let m = &self.app.metrics;
        if m.open_connections.load(SeqCst) >= self.app.config.max_connections {
            if let Some((_, t)) = self.idle.pop_first() {
                self.parked.remove(&t);
                m.shed_connections.fetch_add(1, SeqCst);
            } else {
                m.rejected_connections.fetch_add(1, SeqCst);
                // Through `handle`, like every answer: logged, counted, with its X-Request-ID.
                let error = Some(ApiError::TooManyConnections);
                let reply = handle(&self.app, &Req::default(), error, Instant::now());
                let _ = (&stream).write(&closing(&reply));
                return;
            }
        }
        let _ = stream.set_nodelay(true);
        // The waits of a worker's blocking reads and writes (`Conn::linger`, `Conn::flush`).
        let _ = stream.set_read_timeout(Some(super::LINGER));
        let _ = stream.set_write_timeout(Some(super::LINGER));
        let t = self.next_token;
        self.next_token += 1;
        self.park(t, Conn::new(stream, &m.open_connections));
    }

    /// `progress`, where a panic (a bug in framing or here) drops that one connection, logged and
    /// counted, instead of the poller thread every client depends on.
    fn guarded(&mut self, t: usize, conn: Conn, take: Take) {
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| self.progress(t, conn, take)));
        if run.is_err() {
            self.app.metrics.connection_panics.fetch_add(1, SeqCst);
            let line = Line::new(Level::Error).str("event", "connection_panic");
            self.app.log.write(line.raw("token", t));
        }
    }

    /// Moves a connection on as far as it can go without waiting: finish sending a response,
    /// read what has arrived, and hand a whole request to a worker; otherwise park it again.
    fn progress(&mut self, t: usize, mut conn: Conn, mut take: Take) {
        if conn.state() == State::Writing {
            match conn.flush() {
                Ok(true) if !conn.close_after => conn.finish_request(),
                Ok(false) => return self.park(t, conn),
                _ => return,
            }
        }
        let b = self.shared.bounds;
        // Parsed here only to learn whether it is whole; a worker parses it again and takes it out
        // of the buffer, so a request's allocations are made and freed on one thread (glibc frees
        // another thread's memory slowly: a third of the poller's cost per request). A chunked
        // body that made room in the buffer is read on: its bytes past the cap raise no event.
        let parse = loop {
            if (conn.read_available(&mut self.scratch, b.max_buffered, take)).is_err() {
                return;
            }
            let before = conn.buf.len();
            match conn.parse(&b.limits, false) {
                Parse::Incomplete { .. } if conn.unread && conn.buf.len() < before => {
                    take = Take::All;
                }
                Parse::Incomplete { expect_continue } if expect_continue && !conn.continue_sent => {
                    break self.answer_expect(&mut conn);
                }
                parse => break parse,
            }
        };
        match parse {
            Parse::Incomplete { .. } | Parse::Chunking { .. } if conn.eof => {}
            Parse::Incomplete { .. } | Parse::Chunking { .. } => self.park(t, conn),
            parse => {
                self.app.metrics.in_progress.fetch_add(1, SeqCst);
                self.shared.queued.fetch_add(1, SeqCst);
                let lane = lane_of(&parse);
                // A synthetic answer (the buffer cleared above) or a framing error goes as is.
                let again = matches!(parse, Parse::Done { consumed, .. } if consumed > 0);
                let parse = (!again).then_some(parse);
                let job = Job {
                    token: t,
                    conn,
                    parse,
                    lane,
                };
                // The gauge as the request will see it (a scrape must not count itself idle).
                (self.app.metrics.idle_connections).store(self.idle.len(), SeqCst);
                self.jobs.send(job, lane);
            }
        }
    }

    /// The answer to `Expect: 100-continue` once the head is here: `100 Continue`; or, for a
    /// request refused whatever its body, that request with no body, answered instead, and the
    /// connection closed after (its body is never read).
    fn answer_expect(&self, conn: &mut Conn) -> Parse {
        conn.continue_sent = true;
        let refused = |h: &wire::Head| {
            router::refused_without_body(&self.app, &super::to_req(h.clone(), Vec::new()))
        };
        let Some(mut head) = conn.head(&self.shared.bounds.limits).filter(refused) else {
            let _ = (&*conn.stream).write(b"HTTP/1.1 100 Continue\r\n\r\n");
            let expect_continue = true;
            return Parse::Incomplete { expect_continue };
        };
        head.keep_alive = false;
        conn.buf.clear();
        conn.chunked = None;
        Parse::Done {
            head,
            body: Vec::new(),
            consumed: 0,
        }
    }

    /// Waits for the connection's next readiness: writable while a response is unsent, else
    /// readable. The registration changes only when that does: edge-triggered, the next bytes
    /// raise a new edge, and what came while a worker had it was read in `progress`.
    fn park(&mut self, t: usize, mut conn: Conn) {
        let state = conn.state();
        if self.held + held(&conn) > MAX_HELD {
            if state == State::Reading {
                self.refuse_unfinished(&conn, ApiError::TooManyConnections);
            }
            return;
        }
        let writable = state == State::Writing;
        let interest = [Interest::READABLE, Interest::WRITABLE][usize::from(writable)];
        let (fd, registry) = (conn.stream.as_raw_fd(), self.poll.registry());
        let watched = match conn.watching {
            None => registry.register(&mut SourceFd(&fd), Token(t), interest),
            Some(w) if w != writable => registry.reregister(&mut SourceFd(&fd), Token(t), interest),
            Some(_) => Ok(()),
        };
        let Ok(()) = watched else { return };
        conn.watching = Some(writable);
        if state == State::Idle {
            conn.buf = Vec::new(); // an idle connection holds no buffer
            self.idle.insert((conn.last_active, t));
        }
        self.held += held(&conn);
        self.parked.insert(t, conn);
    }

    /// Takes a parked connection out of the poller's books.
    fn unpark(&mut self, t: usize) -> Option<Conn> {
        let conn = self.parked.remove(&t)?;
        if conn.state() == State::Idle {
            self.idle.remove(&(conn.last_active, t));
        }
        self.held -= held(&conn);
        Some(conn)
    }

    /// Closes what is past its deadline: idle connections (oldest first, so only the expired
    /// ones are looked at), requests too slow to arrive (408), responses not read in time.
    fn sweep(&mut self, now: Instant) {
        let b = self.shared.bounds;
        while let Some(&(at, t)) = self.idle.first()
            && now.saturating_duration_since(at) >= b.idle
        {
            self.unpark(t);
        }
        let expired: Vec<usize> = self
            .parked
            .iter()
            .filter(|(_, c)| match c.state() {
                State::Idle => false,
                State::Reading => wait_limit(c.request_started, c.last_active, now, &b).is_zero(),
                State::Writing => now.saturating_duration_since(c.last_active) >= b.write,
            })
            .map(|(t, _)| *t)
            .collect();
        for t in expired {
            let Some(conn) = self.unpark(t) else { continue };
            if conn.state() == State::Reading {
                self.refuse_unfinished(&conn, ApiError::Protocol(408, "request timeout"));
                continue;
            }
            // A response's progress shows on writable events, which a large send buffer raises
            // only once a third of it has drained: a client reading steadily but slowly may
            // raise none for a while. The socket is asked once more; it is dropped (by `unpark`)
            // only if it took nothing.
            let before = conn.last_active;
            self.guarded(t, conn, Take::Nothing);
            if (self.parked.get(&t)).is_some_and(|c| c.last_active == before) {
                self.unpark(t);
            }
        }
    }

    /// While stopping: no new connections, idle ones closed; true once no connection has a
    /// request left to finish (parked mid-request or with a worker). What clients sent before
    /// the signal is a request arriving: the first call accepts the backlog and reads every idle
    /// connection once (its first pass), so only those with nothing sent are closed (the second).
    fn stop(&mut self) -> bool {
        let first = self.listener.is_some();
        self.accept();
        self.listener = None;
        for read in [first, false] {
            for (_, t) in std::mem::take(&mut self.idle) {
                if let Some(conn) = self.unpark(t).filter(|_| read) {
                    self.guarded(t, conn, Take::All);
                }
            }
        }
        self.parked.is_empty()
            && self.app.metrics.in_progress.load(SeqCst) == 0
            && lock(&self.shared.back).is_empty()
    }

    /// Answers a request that will not be finished with `error` (logged and counted like every
    /// reply); the caller then drops the connection.
    fn refuse_unfinished(&self, conn: &Conn, error: ApiError) {
        let started = conn.request_started.unwrap_or_else(Instant::now);
        // The method and path, for the log line, when the head has arrived.
        let head = conn.head(&self.shared.bounds.limits);
        let req = head.map_or_else(Req::default, |h| super::to_req(h, Vec::new()));
        let reply = handle(&self.app, &req, Some(error), started);
        let _ = (&*conn.stream).write(&closing(&reply));
    }

    fn log_error(&self, event: &str, e: &std::io::Error) {
        let line = Line::new(Level::Error).str("event", event);
        self.app.log.write(line.str("error", &e.to_string()));
    }
}

/// The bytes a parked connection holds: its request so far (a chunked body's decoded part too),
/// or its unsent response.
fn held(conn: &Conn) -> usize {
    match conn.state() {
        State::Idle => 0,
        State::Reading => {
            conn.buf.capacity() + conn.chunked.as_ref().map_or(0, |c| c.1.body.capacity())
        }
        State::Writing => conn.out.len(),
    }
}

/// The bytes of an answer the poller gives itself (a 408, a 503): the connection closes after.
fn closing(reply: &crate::http::Reply) -> Vec<u8> {
    wire::response(reply, true, false, false, &crate::ts::http_date())
}
