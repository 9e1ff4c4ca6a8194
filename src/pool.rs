//! A fixed pool of worker threads for the forward pass, built for many short parallel regions
//! (hundreds per decoded token): workers spin briefly on a generation counter before sleeping, so a
//! region costs about a microsecond to start instead of a thread wake-up.
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type Job = dyn Fn(usize, usize) + Sync;

struct Shared {
    /// Bumped by the caller to publish a job; workers run each generation once.
    generation: AtomicU64,
    /// Workers still running the current job.
    pending: AtomicUsize,
    /// The current job, valid while `pending > 0` or the caller is inside `run`.
    job: UnsafeCell<Option<*const Job>>,
    stop: AtomicBool,
    /// Workers asleep on `wake` (a region start notifies only when some are: notifying costs a
    /// system call even with no waiter).
    sleepers: AtomicUsize,
    sleep_lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the thread holding `Pool::run_lock`, before it publishes a new
// generation (Release), and read by workers after they observe that generation (Acquire); the
// pointee is `Sync` and outlives the region because `run` waits for `pending == 0` before returning.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// A pool of `n - 1` worker threads plus the calling thread.
pub struct Pool {
    n: usize,
    shared: Arc<Shared>,
    run_lock: Mutex<()>,
    handles: Vec<JoinHandle<()>>,
}

/// How long an idle worker waits (spinning, then yielding) before it sleeps on the condition variable.
const SPIN: Duration = Duration::from_millis(2);
/// Spins (a few microseconds) before a waiting thread starts yielding its time slice.
const YIELD_AFTER: u32 = 4096;

impl Pool {
    /// A pool running regions on `n` threads (at least 1: the caller alone).
    pub fn new(n: usize) -> Pool {
        let n = n.max(1);
        let shared = Arc::new(Shared {
            generation: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            stop: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let handles = (1..n)
            .map(|tid| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("graft-worker-{tid}"))
                    .spawn(move || worker(s, tid, n))
                    .expect("spawning a worker thread")
            })
            .collect();
        Pool { n, shared, run_lock: Mutex::new(()), handles }
    }

    /// Threads a region runs on.
    pub fn threads(&self) -> usize {
        self.n
    }

    /// Runs `f(tid, n)` once on each of the `n` threads (the caller is thread 0) and returns when
    /// all have finished. Concurrent callers are serialised. A panic in `f` with more than one
    /// thread aborts the process (it cannot be unwound across the region safely).
    pub fn run<F: Fn(usize, usize) + Sync>(&self, f: F) {
        if self.n == 1 {
            f(0, 1);
            return;
        }
        let _guard = self.run_lock.lock().unwrap_or_else(|e| e.into_inner());
        let job: &(dyn Fn(usize, usize) + Sync + '_) = &f;
        // SAFETY: the lifetime is erased only for the duration of this call: we wait below until
        // every worker has finished with the pointer (pending == 0) before `f` goes out of scope.
        let job: *const Job =
            unsafe { std::mem::transmute::<&(dyn Fn(usize, usize) + Sync + '_), &'static Job>(job) };
        // SAFETY: we hold run_lock, and no worker reads `job` between generations (pending == 0).
        unsafe { *self.shared.job.get() = Some(job) };
        self.shared.pending.store(self.n - 1, Ordering::Relaxed);
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        if self.shared.sleepers.load(Ordering::SeqCst) > 0 {
            let _l = self.shared.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        // A panic here would unwind while the workers still run `f` (and may wait inside it for
        // this thread, see `Arrivals`): abort instead, as a worker's panic does.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(0, self.n))).is_err() {
            eprintln!("graft: the calling thread panicked inside a parallel region; aborting");
            std::process::abort();
        }
        // Spin briefly, then yield: on an oversubscribed machine the worker we wait for may be
        // descheduled, and pure spinning would burn our whole time slice.
        let mut spins = 0u32;
        while self.shared.pending.load(Ordering::Acquire) != 0 {
            spins += 1;
            if spins < YIELD_AFTER {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

fn worker(s: Arc<Shared>, tid: usize, n: usize) {
    let mut seen = 0u64;
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        let gen = loop {
            let g = s.generation.load(Ordering::Acquire);
            if g != seen || s.stop.load(Ordering::Relaxed) {
                break g;
            }
            spins += 1;
            if spins >= YIELD_AFTER {
                std::thread::yield_now();
            }
            if spins % 1024 == 0 && start.elapsed() > SPIN {
                let guard = s.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
                // Announce the sleep before re-checking: a caller that publishes after this check
                // sees sleepers > 0 and notifies under the lock we hold until wait releases it.
                s.sleepers.fetch_add(1, Ordering::SeqCst);
                if s.generation.load(Ordering::SeqCst) == seen && !s.stop.load(Ordering::Relaxed) {
                    let _ = s.wake.wait_timeout(guard, Duration::from_millis(100));
                } else {
                    drop(guard);
                }
                s.sleepers.fetch_sub(1, Ordering::SeqCst);
            } else {
                std::hint::spin_loop();
            }
        };
        if s.stop.load(Ordering::Relaxed) {
            return;
        }
        seen = gen;
        // SAFETY: the generation was published after `job` was set (Acquire pairs with the Release in
        // `run`), and `run` keeps the closure alive until we decrement `pending`.
        let job = unsafe { (*s.job.get()).expect("job set before publishing") };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: see above: the pointee outlives this call.
            unsafe { (*job)(tid, n) }
        }));
        if result.is_err() {
            eprintln!("graft: a worker thread panicked inside a parallel region; aborting");
            std::process::abort();
        }
        s.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        {
            let _l = self.shared.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// The half-open range of `0..len` that thread `tid` of `n` takes, in chunks of `align`
/// (the last thread takes the remainder).
pub fn split(len: usize, tid: usize, n: usize, align: usize) -> std::ops::Range<usize> {
    let chunks = len.div_ceil(align);
    let per = chunks / n;
    let extra = chunks % n;
    let start = (tid * per + tid.min(extra)) * align;
    let end = ((tid + 1) * per + (tid + 1).min(extra)) * align;
    start.min(len)..end.min(len)
}

/// A split barrier inside one parallel region: each of its threads calls [`Arrivals::arrive`] once
/// it has written what the others will read, goes on with work of its own, and calls
/// [`Arrivals::wait_all`] before reading their part. Waiting spins, then yields (like
/// [`Pool::run`]); every thread of a region runs, so the wait ends.
pub(crate) struct Arrivals(AtomicUsize);

impl Arrivals {
    /// No thread arrived yet.
    pub(crate) fn new() -> Arrivals {
        Arrivals(AtomicUsize::new(0))
    }
    /// This thread's writes are done (Release: visible to a thread whose `wait_all` returns).
    pub(crate) fn arrive(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }
    /// Returns once `n` threads have arrived.
    pub(crate) fn wait_all(&self, n: usize) {
        let mut spins = 0u32;
        while self.0.load(Ordering::Acquire) < n {
            spins += 1;
            if spins < YIELD_AFTER {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// A raw pointer that the threads of one parallel region (a [`Pool::run`] or a thread scope) use
/// to write disjoint parts of one buffer.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut<T>(pub(crate) *mut T);
// SAFETY: only used inside parallel regions where each thread writes a disjoint index range
// (stated at every use), and the buffer outlives the region.
unsafe impl<T> Send for SharedMut<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// The pointer (a method, so that closures capture the whole `Sync` wrapper).
    pub(crate) fn get(&self) -> *mut T {
        self.0
    }
}

/// `f` over `items` on the calling thread and one scoped helper thread, results in the order of
/// `items`. The threads take items in turn from a shared counter rather than half each: a helper
/// that starts late (a virtual CPU waking up) then costs nothing, where with fixed halves the
/// caller would wait for its half (loads measured bimodal, 3.8–4.1 or 6.0–6.3 ms; BENCHMARKS.md).
/// For work done once (loading adapters), not per token: it starts a thread.
pub fn map_two<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = slots.get(i) else { return out };
            // Each index is taken once (the counter), so the slot still holds its item.
            let item = slot.lock().unwrap_or_else(|e| e.into_inner()).take().expect("each item is taken once");
            out.push((i, f(item)));
        }
    };
    let mut done = std::thread::scope(|sc| {
        let h = sc.spawn(work);
        let mut v = work();
        v.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        v
    });
    done.sort_unstable_by_key(|d| d.0);
    done.into_iter().map(|d| d.1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_runs_each_region_once() {
        let pool = Pool::new(2);
        let hits = AtomicUsize::new(0);
        for _ in 0..2000 {
            pool.run(|tid, n| {
                assert!(tid < n && n == 2);
                hits.fetch_add(1 << (8 * tid), Ordering::Relaxed);
            });
        }
        assert_eq!(hits.load(Ordering::Relaxed), 2000 * (1 + (1 << 8)));
    }

    #[test]
    fn split_covers_range_without_overlap() {
        for len in [0, 1, 5, 64, 577, 1536] {
            for n in 1..5 {
                for align in [1, 4, 32] {
                    let mut next = 0;
                    for t in 0..n {
                        let r = split(len, t, n, align);
                        assert_eq!(r.start, next.min(len));
                        next = r.end;
                    }
                    assert_eq!(next, len);
                }
            }
        }
    }

    /// `map_two` maps every item once, keeps the order, and handles no items and one item.
    #[test]
    fn map_two_keeps_order_and_maps_each_item_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = AtomicUsize::new(0);
        let out = super::map_two((0..1000u64).collect(), |i| {
            calls.fetch_add(1, Ordering::Relaxed);
            i * i
        });
        assert_eq!(out, (0..1000u64).map(|i| i * i).collect::<Vec<_>>());
        assert_eq!(calls.load(Ordering::Relaxed), 1000);
        assert!(super::map_two(Vec::<u8>::new(), |x| x).is_empty());
        assert_eq!(super::map_two(vec![String::from("a")], |s| s + "b"), vec!["ab".to_string()]);
    }
}
