//! The bounded pool for CPU-heavy work (keystore decryption with PBKDF2 or scrypt, RSA signing
//! and verification, SAML signing, key and certificate generation): it runs on tokio's blocking
//! threads, never on the async workers that answer requests, and at most [`permits`] jobs run at
//! once; further jobs wait their turn without holding a thread. Shared by the whole process, so
//! a flood of expensive uploads cannot take more than half the cores from finds.

use std::sync::LazyLock;

use tokio::sync::Semaphore;

/// How many CPU-heavy jobs run at once: half the cores (rounded up), so that at least the other
/// half stays with the threads that answer requests.
pub fn permits() -> usize {
    let cores = std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(2);
    cores.div_ceil(2)
}

static JOBS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(permits()));

/// The job panicked or the runtime is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a CPU-heavy job did not finish")]
pub struct JobFailed;

/// Runs `f` on the blocking pool once one of the [`permits`] is free.
pub async fn run<T, F>(f: F) -> Result<T, JobFailed>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let _permit = JOBS.acquire().await.map_err(|_| JobFailed)?;
    tokio::task::spawn_blocking(f).await.map_err(|_| JobFailed)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_permits_jobs_run_at_once() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..permits() * 4)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        for j in jobs {
            j.await.unwrap().unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!(most >= 1 && most <= permits(), "{most} jobs at once");
    }
}
