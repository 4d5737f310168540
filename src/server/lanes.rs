//! The lanes of workers: three pools, each growing on demand up to its size, and the rule that
//! picks a request's lane.
//!
//! Webhooks have their own lane, `WEBHOOK_LANE` times larger than `WORKERS`: a webhook spends
//! most of its time waiting for its commit, and a commit holds at most one row per waiting
//! worker, so more of them waiting makes larger, cheaper commits. The probes (`/health/*`,
//! `/metrics`) have `PROBE_LANE` workers of their own: they never queue behind reads, and they
//! never wait for a lock (the store's health monitor does). Every other request goes to the
//! `WORKERS` of the general lane, so no more reads than that compete for the cores and the read
//! connections.
//!
//! A pool starts one worker and starts another whenever a job is handed over while none is
//! waiting for one, up to its size; workers then live until the server stops. An idle service
//! so keeps a handful of threads (each costs about 16 KiB of touched stack and TLS) instead of
//! the 86 a busy one may use.
//!
//! Owns: the pools and the lane rule. Leaves out: what a worker does with a job (the caller's
//! `run`). Uses: `wire` (a parsed request's method and path), `lock`.

use crate::lock;
use crate::wire::{Head, Parse};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Workers in the webhook lane for each of `WORKERS`.
pub const WEBHOOK_LANE: usize = 4;
/// Workers in the probes' lane.
pub const PROBE_LANE: usize = 2;

/// Which lane a request goes to: the index of its pool.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Lane {
    General,
    Webhooks,
    Probes,
}

/// The lane of a parsed request: a webhook POST (either protocol), the probes (any method: a
/// 405 is as cheap), or the rest (a framing error too).
pub fn lane_of(parse: &Parse) -> Lane {
    match parse {
        Parse::Done { head, .. } => lane_of_head(head),
        _ => Lane::General,
    }
}

/// The lane of a request by its head.
pub fn lane_of_head(head: &Head) -> Lane {
    match (head.method.as_str(), head.target.split('?').next()) {
        ("POST", Some("/webhook" | "/webhook/whatsapp")) => Lane::Webhooks,
        (_, Some("/health/live" | "/health/ready" | "/metrics")) => Lane::Probes,
        _ => Lane::General,
    }
}

/// What a worker does with one job.
type Run<T> = Arc<dyn Fn(T) + Send + Sync>;

/// The three pools, in the order of `Lane`.
pub struct Lanes<T>([Pool<T>; 3]);

impl<T: Send + 'static> Lanes<T> {
    /// The three lanes for `workers` general workers, each with its first worker started.
    pub fn start(workers: usize, run: Run<T>) -> io::Result<Lanes<T>> {
        Ok(Lanes([
            Pool::start("worker", workers, Arc::clone(&run))?,
            Pool::start("webhook", workers * WEBHOOK_LANE, Arc::clone(&run))?,
            Pool::start("probe", PROBE_LANE, run)?,
        ]))
    }

    /// Hands `job` to a worker of `lane`, starting one if none is waiting and there is room.
    pub fn send(&self, job: T, lane: Lane) {
        self.0[lane as usize].send(job);
    }

    /// Tells every worker to stop once the jobs before it are done, and waits for them.
    pub fn stop(&self) {
        for pool in &self.0 {
            let workers = std::mem::take(&mut *lock(&pool.workers));
            for _ in &workers {
                let _ = pool.jobs.send(None);
            }
            for w in workers {
                let _ = w.join();
            }
        }
    }
}

/// Workers sharing one queue; `None` tells one worker to stop.
struct Pool<T> {
    name: &'static str,
    size: usize,
    jobs: Sender<Option<T>>,
    queue: Arc<Queue<T>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// What a pool's workers share: the queue's end, what to run, and the counts that decide when
/// to grow.
struct Queue<T> {
    rx: Mutex<Receiver<Option<T>>>,
    run: Run<T>,
    /// Workers waiting for a job, and jobs handed over and not yet taken.
    idle: AtomicUsize,
    pending: AtomicUsize,
}

impl<T: Send + 'static> Pool<T> {
    fn start(name: &'static str, size: usize, run: Run<T>) -> io::Result<Self> {
        let (jobs, rx) = channel();
        let queue = Arc::new(Queue {
            rx: Mutex::new(rx),
            run,
            idle: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
        });
        let pool = Pool {
            name,
            size: size.max(1),
            jobs,
            queue,
            workers: Mutex::default(),
        };
        pool.grow()?;
        Ok(pool)
    }

    fn send(&self, job: T) {
        // More jobs waiting than workers waiting: one more worker, if the pool has room. A
        // worker about to wait may be missed (one thread too many, never a job left behind: the
        // pool's workers take every job in turn).
        if self.queue.pending.fetch_add(1, SeqCst) >= self.queue.idle.load(SeqCst) {
            let _ = self.grow(); // without a new thread, the job waits for a busy one
        }
        let _ = self.jobs.send(Some(job));
    }

    /// Starts one more worker unless the pool is full.
    fn grow(&self) -> io::Result<()> {
        let mut workers = lock(&self.workers);
        if workers.len() >= self.size {
            return Ok(());
        }
        let q = Arc::clone(&self.queue);
        let worker = std::thread::Builder::new()
            .name(format!("{}-{}", self.name, workers.len()))
            .spawn(move || {
                loop {
                    q.idle.fetch_add(1, SeqCst);
                    let job = lock(&q.rx).recv();
                    q.idle.fetch_sub(1, SeqCst);
                    let Ok(Some(job)) = job else { return };
                    q.pending.fetch_sub(1, SeqCst);
                    (q.run)(job);
                }
            })?;
        workers.push(worker);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_and_method_has_its_lane() {
        let limits = crate::wire::Limits {
            max_request_line: 1024,
            max_head: 1024,
            max_headers: 10,
            max_body: 1024,
            large_body: ("/webhook/whatsapp", 1024),
        };
        let lane = |method: &str, target: &str| {
            let raw = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n");
            lane_of(&crate::wire::parse_request(raw.as_bytes(), &limits))
        };
        use Lane::{General as G, Probes as P, Webhooks as W};
        for (method, target, expected) in [
            ("POST", "/webhook", W),
            ("POST", "/webhook/whatsapp?x=1", W),
            ("GET", "/webhook/whatsapp", G),
            ("GET", "/webhook", G),
            ("GET", "/health/live", P),
            ("HEAD", "/health/ready", P),
            ("DELETE", "/metrics", P),
            ("GET", "/metrics?x", P),
            ("GET", "/messages", G),
            ("POST", "/erase", G),
            ("GET", "/health", G),
        ] {
            assert_eq!(lane(method, target), expected, "{method} {target}");
        }
        let bad = crate::wire::parse_request(b"NOT HTTP\r\n\r\n", &limits);
        assert_eq!(lane_of(&bad), G, "a framing error");
    }
}
