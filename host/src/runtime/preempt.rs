//! Preemption on wake-up: a guest that is woken (a message, a child event,
//! a timer, a socket) runs within microseconds even when every runtime
//! worker is busy with CPU-bound guests.
//!
//! A guest gives its worker back only at an epoch tick (it was 10 ms), and
//! tokio has one worker per core, so with as many `loop {}` guests as cores
//! a woken guest used to wait for a tick on every wake-up: a sibling's round
//! trips fell to 0.03% of their rate. A kernel preempts on wake-up; so does
//! Hive: each worker thread marks, in a flag of its own, whether it is
//! polling a process task, and a process's waker — once it has scheduled
//! the task — advances the epoch at once when every *other* worker is busy
//! with one: the running guests yield at their next loop back-edge or call,
//! and the woken one gets a worker within microseconds. With a worker to
//! spare (or the waker's own, about to be given up) nothing is bumped.
//!
//! The flags are per thread, so the hot path (every poll) writes only its
//! own cache line; a wake-up reads one flag per worker. Guests yield
//! through tokio's `yield_now` (see `table.rs`), which parks them behind
//! the other runnable tasks rather than in the worker's LIFO slot, so a
//! yielded spinner never runs ahead of the task it made room for.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use wasmtime::Engine;

/// Busy flags of the threads that poll process tasks (the runtime's
/// workers; past 64 threads, more are not tracked and count as free).
static FLAGS: [AtomicBool; 64] = [const { AtomicBool::new(false) }; 64];
/// How many of `FLAGS` are handed out.
static KNOWN: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's busy flag, once it has polled a process task.
    static BUSY: Cell<Option<&'static AtomicBool>> = const { Cell::new(None) };
}

/// This thread's flag, handed out on first use.
fn flag() -> Option<&'static AtomicBool> {
    BUSY.with(|busy| {
        if busy.get().is_none() {
            let at = KNOWN.fetch_add(1, Ordering::AcqRel);
            busy.set(FLAGS.get(at));
        }
        busy.get()
    })
}

/// Makes running guests yield when every other worker is busy with one.
pub struct Preempt {
    engine: Engine,
    workers: usize,
}

impl Preempt {
    /// Preemption for `engine` on a runtime with `workers` workers.
    pub fn new(engine: Engine, workers: usize) -> Arc<Preempt> {
        Arc::new(Preempt {
            engine,
            workers: workers.max(1),
        })
    }

    /// A process was woken (and scheduled). If every other worker is busy
    /// with a process, make the running guests yield.
    fn woken(&self) {
        let known = KNOWN.load(Ordering::Acquire).min(FLAGS.len());
        let mine = BUSY.with(Cell::get);
        let busy = FLAGS[..known]
            .iter()
            .filter(|f| !mine.is_some_and(|m| std::ptr::eq(m, *f)))
            .filter(|f| f.load(Ordering::Relaxed))
            .count();
        // The waker's own worker is about to be free, if it is one.
        let others = self.workers - usize::from(mine.is_some() && self.workers > 1);
        if busy >= others {
            self.engine.increment_epoch();
        }
    }

    /// Wraps a process task; the time its polls take is added to `cpu`
    /// (nanoseconds: the process's CPU time, its code and host calls).
    pub fn task<F: Future>(
        self: &Arc<Self>,
        task: F,
        cpu: Arc<std::sync::atomic::AtomicU64>,
    ) -> Preemptible<F> {
        let waker = Arc::new(ProcessWaker {
            preempt: self.clone(),
            task: futures_util::task::AtomicWaker::new(),
        });
        Preemptible {
            task: Box::pin(task),
            waker: Waker::from(waker.clone()),
            handle: waker,
            cpu,
        }
    }
}

/// A process task that marks its worker busy while polled and is woken
/// through a [`ProcessWaker`].
pub struct Preemptible<F> {
    task: Pin<Box<F>>,
    handle: Arc<ProcessWaker>,
    /// `handle` as a `Waker`, made once.
    waker: Waker,
    /// Where the time of its polls goes.
    cpu: Arc<std::sync::atomic::AtomicU64>,
}

struct ProcessWaker {
    preempt: Arc<Preempt>,
    /// The runtime's waker for the task.
    task: futures_util::task::AtomicWaker,
}

impl Wake for ProcessWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Scheduled first: a guest that yields on the bump must find the
        // woken task queued, or it would resume before it.
        self.task.wake();
        self.preempt.woken();
    }
}

impl<F: Future> Future for Preemptible<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        this.handle.task.register(cx.waker());
        let flag = flag();
        let was = flag.map(|f| f.swap(true, Ordering::Relaxed));
        let start = std::time::Instant::now();
        let ready = this
            .task
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker));
        let ns = start.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        this.cpu.fetch_add(ns, Ordering::Relaxed);
        if let (Some(f), Some(was)) = (flag, was) {
            f.store(was, Ordering::Relaxed);
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Busy flags are set only while a process task is polled.
    #[test]
    fn flags_follow_polls() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let preempt = Preempt::new(Engine::default(), 2);
        rt.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..20u64 {
                let p = preempt.clone();
                let task = async move {
                    // Inside a poll: this thread's flag is up.
                    assert!(BUSY.with(Cell::get).unwrap().load(Ordering::Relaxed));
                    tokio::time::sleep(std::time::Duration::from_micros(i)).await;
                    drop(p);
                };
                tasks.push(tokio::spawn(preempt.task(task, Arc::default())));
            }
            for task in tasks {
                task.await.unwrap();
            }
        });
        let known = KNOWN.load(Ordering::Acquire).min(FLAGS.len());
        assert!(known > 0);
        assert!(FLAGS[..known].iter().all(|f| !f.load(Ordering::Relaxed)));
    }
}
