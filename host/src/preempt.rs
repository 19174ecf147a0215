//! Preemption on wake-up: a guest that is woken (a message, a child event,
//! a timer, a socket) runs within microseconds even when every runtime
//! worker is busy with CPU-bound guests.
//!
//! A guest gives its worker back only at an epoch tick (it was 10 ms), and tokio
//! has one worker per core, so with as many `loop {}` guests as cores a
//! woken guest used to wait for a tick on every wake-up: a sibling's round
//! trips fell to 0.03% of their rate. A kernel preempts on wake-up; so
//! does Hive: every process task counts itself as *active* from its
//! wake-up until its poll ends, and its waker, when the other active tasks
//! already fill every worker, advances the epoch at once: the running
//! guests yield at their next loop back-edge or call (and a queued one as
//! soon as it resumes), so the woken one gets a worker within
//! microseconds. Counting queued tasks, not only running ones, matters:
//! tokio's LIFO slot gives a ping-pong pair's wake-ups to the same worker
//! only three times in a row, then queues them behind whatever else is
//! runnable there. With a worker to spare, nothing is bumped. Guests yield
//! through tokio's `yield_now` (see `table.rs`), which queues them behind
//! the others instead of in the LIFO slot.

use futures_util::task::AtomicWaker;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use wasmtime::Engine;

thread_local! {
    /// Whether this thread is polling a process task right now.
    static POLLING: Cell<bool> = const { Cell::new(false) };
    /// The waker of the process task this thread is polling.
    static CURRENT: std::cell::RefCell<Option<Arc<ProcessWaker>>> =
        const { std::cell::RefCell::new(None) };
}

/// The running guest gives its worker back for a moment (its epoch
/// deadline passed): it stays active, as a runnable task does, until it is
/// woken to go on. Call from the epoch-deadline callback, then yield.
pub fn yielding() {
    CURRENT.with(|current| {
        if let Some(task) = &*current.borrow()
            && !task.yielding.swap(true, Ordering::AcqRel)
        {
            task.preempt.active.fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// How many process tasks want a worker, against how many workers exist.
pub struct Preempt {
    engine: Engine,
    /// Process tasks woken and not yet polled, or being polled.
    active: AtomicUsize,
    workers: usize,
}

impl Preempt {
    pub fn new(engine: Engine, workers: usize) -> Arc<Preempt> {
        Arc::new(Preempt {
            engine,
            active: AtomicUsize::new(0),
            workers: workers.max(1),
        })
    }

    /// A process was woken. If the other active tasks fill every worker
    /// (the waker's own task, when it wakes another, is about to give its
    /// worker up), make the running guests yield.
    fn woken(&self, counted: bool) {
        let waking_from_a_process = POLLING.with(Cell::get);
        let before = self
            .active
            .load(Ordering::Relaxed)
            .saturating_sub(usize::from(counted));
        if before.saturating_sub(usize::from(waking_from_a_process)) >= self.workers {
            self.engine.increment_epoch();
        }
    }

    /// Wraps a process task.
    pub fn task<F: Future>(self: &Arc<Self>, task: F) -> Preemptible<F> {
        // A new task is scheduled for its first poll.
        self.active.fetch_add(1, Ordering::Relaxed);
        let waker = Arc::new(ProcessWaker {
            preempt: self.clone(),
            task: AtomicWaker::new(),
            scheduled: AtomicBool::new(true),
            yielding: AtomicBool::new(false),
        });
        Preemptible {
            task: Box::pin(task),
            waker: Waker::from(waker.clone()),
            handle: waker,
            done: false,
        }
    }
}

/// A process task that counts itself while polled and is woken through a
/// [`ProcessWaker`].
pub struct Preemptible<F> {
    task: Pin<Box<F>>,
    handle: Arc<ProcessWaker>,
    /// `handle` as a `Waker`, made once.
    waker: Waker,
    /// Whether the task completed (its counts already taken back).
    done: bool,
}

struct ProcessWaker {
    preempt: Arc<Preempt>,
    /// The runtime's waker for the task.
    task: AtomicWaker,
    /// Woken and not yet polled (then counted in `active`).
    scheduled: AtomicBool,
    /// Yielded at an epoch deadline, to be woken again (counted in
    /// `active` meanwhile; see [`yielding`]).
    yielding: AtomicBool,
}

impl ProcessWaker {
    /// The task is gone (done or dropped, e.g. killed): take back what it
    /// still counts, and let no later wake-up count it again.
    fn retire(&self) {
        let active = &self.preempt.active;
        if self.scheduled.swap(true, Ordering::AcqRel) {
            active.fetch_sub(1, Ordering::Relaxed);
        }
        if self.yielding.swap(false, Ordering::AcqRel) {
            active.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl<F> Drop for Preemptible<F> {
    fn drop(&mut self) {
        if !self.done {
            self.handle.retire();
        }
    }
}

impl Wake for ProcessWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let newly = !self.scheduled.swap(true, Ordering::AcqRel);
        // A task back from a yield was counted all along.
        let counted = newly && !self.yielding.swap(false, Ordering::AcqRel);
        if counted {
            self.preempt.active.fetch_add(1, Ordering::Relaxed);
        }
        // Scheduled first: a guest that yields on the bump must find the
        // woken task queued, or it would resume before it.
        self.task.wake();
        self.preempt.woken(counted);
    }
}

impl<F: Future> Future for Preemptible<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        this.handle.task.register(cx.waker());
        let active = &this.handle.preempt.active;
        // Scheduled becomes polling (still active); a poll nobody woke us
        // for (the runtime may) starts being active now.
        if !this.handle.scheduled.swap(false, Ordering::AcqRel) {
            active.fetch_add(1, Ordering::Relaxed);
        }
        let was = POLLING.with(|p| p.replace(true));
        let outer = CURRENT.with(|c| c.replace(Some(this.handle.clone())));
        let ready = this
            .task
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker));
        CURRENT.with(|c| *c.borrow_mut() = outer);
        POLLING.with(|p| p.set(was));
        // A wake-up during the poll counted itself again.
        active.fetch_sub(1, Ordering::Relaxed);
        if ready.is_ready() {
            this.handle.retire();
            this.done = true;
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way a task can go — woken, yielding, woken while polled,
    /// done, dropped unfinished — leaves the count where it started.
    #[test]
    fn counts_balance() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let engine = Engine::default();
        let preempt = Preempt::new(engine, 2);
        rt.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..50u64 {
                tasks.push(tokio::spawn(preempt.task(async move {
                    for _ in 0..i % 5 {
                        yielding();
                        tokio::task::yield_now().await;
                        tokio::time::sleep(std::time::Duration::from_micros(i)).await;
                    }
                })));
            }
            for task in tasks {
                task.await.unwrap();
            }
            // Dropped before done: one never polled, one parked forever.
            drop(preempt.task(std::future::pending::<()>()));
            let parked = tokio::spawn(preempt.task(std::future::pending::<()>()));
            tokio::task::yield_now().await;
            parked.abort();
            let _ = parked.await;
        });
        assert_eq!(preempt.active.load(Ordering::Relaxed), 0);
    }
}
