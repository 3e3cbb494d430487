//! The data plane's worker threads: one current-thread runtime per worker, as nginx has one
//! event loop per worker process. The accept loop hands each new connection to the next worker
//! (round robin); from then on everything of that connection runs on its worker's thread: its
//! socket is registered with that worker's reactor, the target's connections come from that
//! worker's own keep-alive pool ([`current`] picks the egress client), and a request never
//! wakes another thread. The control plane (accepting, the admin port, reloads, TCP routes) stays
//! on the process's main runtime.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use tokio::runtime::Handle;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The index of the worker running the caller (0 outside the workers).
pub fn current() -> usize {
    INDEX.with(Cell::get)
}

/// The default number of workers: one per core.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Running workers.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    stops: Mutex<Vec<tokio::sync::oneshot::Sender<()>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Workers {
    /// Starts `count` workers (at least one).
    pub fn start(count: usize) -> std::io::Result<Self> {
        let count = count.max(1);
        let mut handles = Vec::with_capacity(count);
        let mut stops = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("proxy-worker-{index}"))
                .spawn(move || {
                    INDEX.with(|c| c.set(index));
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    match runtime {
                        Ok(runtime) => {
                            let _ = ready_tx.send(Ok(runtime.handle().clone()));
                            runtime.block_on(async {
                                let _ = stop_rx.await;
                            });
                            // Whatever is still running after the grace period ends here.
                            runtime.shutdown_background();
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                })?;
            let handle = ready_rx.recv().map_err(|_| {
                std::io::Error::other("a proxy worker thread ended before its runtime started")
            })??;
            handles.push(handle);
            stops.push(stop_tx);
            threads.push(thread);
        }
        Ok(Self {
            handles,
            next: AtomicUsize::new(0),
            stops: Mutex::new(stops),
            threads: Mutex::new(threads),
        })
    }

    /// How many workers run.
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// Runs `make`'s future on the next worker; `make` itself runs there too, so that what it
    /// creates (a socket taken from a `std` stream, say) belongs to that worker's reactor.
    pub fn spawn<F, Fut>(&self, make: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].spawn(async move {
            make().await;
        });
    }

    /// Stops every worker (what still runs is dropped) and waits for their threads.
    pub fn stop(&self) {
        for stop in self
            .stops
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
        {
            let _ = stop.send(());
        }
        for thread in self
            .threads
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default()
        {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn work_goes_round_robin_and_runs_on_its_worker() {
        let workers = Workers::start(3).unwrap();
        assert_eq!(workers.count(), 3);
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..6 {
            let tx = tx.clone();
            workers.spawn(move || async move {
                // A task the job spawns stays on the same worker.
                let inner = tokio::spawn(async { current() }).await.unwrap();
                let name = std::thread::current().name().map(str::to_owned);
                tx.send((current(), inner, name)).unwrap();
            });
        }
        let mut seen: Vec<_> = (0..6).map(|_| rx.recv().unwrap()).collect();
        seen.sort();
        let indexes: Vec<usize> = seen.iter().map(|s| s.0).collect();
        assert_eq!(indexes, [0, 0, 1, 1, 2, 2]);
        for (index, inner, name) in &seen {
            assert_eq!(index, inner);
            assert_eq!(
                name.as_deref(),
                Some(format!("proxy-worker-{index}").as_str())
            );
        }
        workers.stop();
        assert_eq!(current(), 0, "outside the workers");
    }

    #[test]
    fn at_least_one_worker() {
        let workers = Workers::start(0).unwrap();
        assert_eq!(workers.count(), 1);
        workers.stop();
    }
}
