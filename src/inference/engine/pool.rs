//! The inference thread pool: a fixed number of threads (`--threads` / `EDGESTRA_THREADS`,
//! default the machine's cores) that share each job by taking small chunks from a counter, with
//! the calling thread taking part. A thread that another process keeps off its core simply takes
//! fewer chunks, so a busy core slows a job by its share instead of stalling it; idle threads
//! sleep on a condition variable after a short spin.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an idle worker keeps looking for the next job before it sleeps: long enough to
/// bridge the gaps between the matmuls of one forward pass, short enough not to matter to
/// another process.
const SPIN: Duration = Duration::from_micros(60);

struct Job<'a> {
    work: &'a (dyn Fn(usize) + Sync),
    chunks: usize,
    next: AtomicUsize,
    /// Workers inside this job; the caller returns only when none is.
    active: AtomicUsize,
    panicked: AtomicBool,
}

#[derive(Clone, Copy)]
struct JobPtr(*const Job<'static>);
// SAFETY: the pointer is only followed while the job is posted or a worker holds it (`active`),
// and the caller keeps the job alive until both have ended.
unsafe impl Send for JobPtr {}

struct State {
    job: Option<JobPtr>,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Bumped whenever a job is posted; spinning workers watch it.
    posted: AtomicU64,
}

pub struct Pool {
    shared: Arc<Shared>,
    threads: usize,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    /// A pool of `threads` in all (the caller counts as one).
    pub fn new(threads: usize) -> Pool {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                job: None,
                shutdown: false,
            }),
            wake: Condvar::new(),
            posted: AtomicU64::new(0),
        });
        let handles = (1..threads)
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("edgestra-infer-{i}"))
                    .spawn(move || worker(&shared))
                    .expect("spawn an inference thread")
            })
            .collect();
        Pool {
            shared,
            threads,
            handles,
        }
    }

    /// The process's pool, sized by [`configure`], else `EDGESTRA_THREADS`, else the cores.
    pub fn global() -> &'static Pool {
        GLOBAL.get_or_init(|| Pool::new(configured_threads()))
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `work(0..chunks)`, each chunk once, on the pool; returns when all are done. A panic
    /// in any chunk is raised again here, after the others finished.
    pub fn run(&self, chunks: usize, work: &(dyn Fn(usize) + Sync)) {
        if chunks == 0 {
            return;
        }
        if self.threads == 1 || chunks == 1 {
            (0..chunks).for_each(work);
            return;
        }
        let job = Job {
            work,
            chunks,
            next: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
        };
        // SAFETY: the lifetime is erased only for the time this function waits below.
        let ptr = JobPtr(std::ptr::from_ref(&job).cast::<Job<'static>>());
        {
            let mut st = self.shared.state.lock().expect("pool state");
            st.job = Some(ptr);
            // Under the lock, so a worker about to sleep cannot miss it.
            self.shared.posted.fetch_add(1, Ordering::Release);
        }
        self.shared.wake.notify_all();
        take_chunks(&job);
        {
            let mut st = self.shared.state.lock().expect("pool state");
            st.job = None;
        }
        let started = Instant::now();
        while job.active.load(Ordering::Acquire) != 0 {
            if started.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        if job.panicked.load(Ordering::Acquire) {
            panic!("an inference thread panicked");
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Ok(mut st) = self.shared.state.lock() {
            st.shutdown = true;
        }
        self.shared.wake.notify_all();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

static GLOBAL: OnceLock<Pool> = OnceLock::new();
static CONFIGURED: OnceLock<usize> = OnceLock::new();

/// Sets the size of the process's pool (`--threads`); only before the pool first runs.
pub fn configure(threads: usize) {
    let _ = CONFIGURED.set(threads.max(1));
}

/// Threads from [`configure`], else `EDGESTRA_THREADS`, else the cores this process may use.
pub fn configured_threads() -> usize {
    if let Some(&n) = CONFIGURED.get() {
        return n;
    }
    std::env::var("EDGESTRA_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

fn take_chunks(job: &Job<'_>) {
    loop {
        let i = job.next.fetch_add(1, Ordering::Relaxed);
        if i >= job.chunks {
            return;
        }
        if std::panic::catch_unwind(AssertUnwindSafe(|| (job.work)(i))).is_err() {
            job.panicked.store(true, Ordering::Release);
        }
    }
}

fn worker(shared: &Shared) {
    let mut seen = 0u64;
    loop {
        // Spin briefly for the next job, then sleep until one is posted.
        let started = Instant::now();
        while shared.posted.load(Ordering::Acquire) == seen && started.elapsed() < SPIN {
            std::hint::spin_loop();
        }
        let job = {
            let mut st = shared.state.lock().expect("pool state");
            loop {
                if st.shutdown {
                    return;
                }
                let now = shared.posted.load(Ordering::Acquire);
                if now != seen {
                    seen = now;
                    if let Some(job) = st.job {
                        // SAFETY: the job is posted, so its caller is still waiting.
                        unsafe { &*job.0 }.active.fetch_add(1, Ordering::AcqRel);
                        break job;
                    }
                }
                st = shared.wake.wait(st).expect("pool state");
            }
        };
        // SAFETY: `active` counts this worker, so the caller keeps the job alive.
        let job = unsafe { &*job.0 };
        take_chunks(job);
        job.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A slice that the chunks of one [`Pool::run`] write in disjoint parts.
pub struct Disjoint<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: callers of `part` promise that no two chunks touch the same elements.
unsafe impl<T: Send> Send for Disjoint<T> {}
unsafe impl<T: Send> Sync for Disjoint<T> {}

impl<T> Disjoint<T> {
    pub fn new(slice: &mut [T]) -> Disjoint<T> {
        Disjoint {
            ptr: slice.as_mut_ptr(),
            len: slice.len(),
        }
    }

    /// The whole slice, for a chunk that writes only its own elements of it.
    ///
    /// # Safety
    /// No two chunks may write (or one write and another read) the same element, and the
    /// slice given to [`Disjoint::new`] must outlive the run.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn all(&self) -> &mut [T] {
        // SAFETY: as the caller promised.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_runs_once_and_panics_come_back() {
        let pool = Pool::new(3);
        for chunks in [0, 1, 2, 7, 100] {
            let counts: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
            pool.run(chunks, &|i| {
                counts[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
        }
        let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
            pool.run(8, &|i| assert!(i != 5, "chunk five fails"));
        }));
        assert!(caught.is_err());
        // The pool still works afterwards.
        let total = AtomicUsize::new(0);
        pool.run(10, &|i| {
            total.fetch_add(i, Ordering::Relaxed);
        });
        assert_eq!(total.load(Ordering::Relaxed), 45);
    }
}
