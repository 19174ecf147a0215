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
//!
//! A process task also polls its *companions*: futures that work for the
//! process alone (its HTTP connections), run on its own task so a request
//! and its response never cross tasks: a connection that reads a request
//! queues it, the guest answers in the same poll, and the connection
//! writes the answer before the poll ends — no wake-up of another task, no
//! trip through the scheduler, on either side.

use futures_util::stream::{FuturesUnordered, StreamExt};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
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
            // The first poll runs the body.
            state: AtomicU8::new(NOTIFIED),
            incoming: OnceLock::new(),
        });
        Preemptible {
            task: Box::pin(task),
            waker: Waker::from(waker.clone()),
            companion_waker: Waker::from(Arc::new(CompanionWaker(waker.clone()))),
            companions: FuturesUnordered::new(),
            handle: waker,
            cpu,
        }
    }
}

/// A future that runs on a process's task, beside its body.
type Companion = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How often one poll goes round companions and body while the body keeps
/// waking companions (a pipelined burst) before it reschedules instead.
const ROUNDS: usize = 4;

/// `ProcessWaker::state`: the task is being polled (a wake-up only marks).
const POLLING: u8 = 1;
/// Woken while polled: poll again.
const NOTIFIED: u8 = 2;
/// A companion was woken (or added) while polled: go round again.
const COMPANION: u8 = 4;

/// Where a process's companions are spawned: its task, while it runs.
#[derive(Clone)]
pub struct TaskHandle(Arc<ProcessWaker>);

impl TaskHandle {
    /// Runs `future` on the process's task; once the task has ended (or if
    /// it never polls again), on a task of its own.
    pub fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        let incoming = self.0.incoming.get_or_init(|| Mutex::new(Some(Vec::new())));
        let mut incoming = incoming.lock().unwrap_or_else(|e| e.into_inner());
        match incoming.as_mut() {
            Some(queue) => {
                queue.push(Box::pin(future));
                drop(incoming);
                self.0.wake_with(COMPANION);
            }
            None => {
                drop(incoming);
                tokio::spawn(future);
            }
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
    /// `handle` as the companions' `Waker`.
    companion_waker: Waker,
    /// The companions it runs.
    companions: FuturesUnordered<Companion>,
    /// Where the time of its polls goes.
    cpu: Arc<std::sync::atomic::AtomicU64>,
}

struct ProcessWaker {
    preempt: Arc<Preempt>,
    /// The runtime's waker for the task.
    task: futures_util::task::AtomicWaker,
    /// `POLLING`, `NOTIFIED`, `COMPANION`.
    state: AtomicU8,
    /// Companions spawned since the last poll (made on the first spawn;
    /// `None` once the task has ended).
    incoming: OnceLock<Mutex<Option<Vec<Companion>>>>,
}

impl ProcessWaker {
    /// Marks `bit`; unless the task is being polled (the poll sees the
    /// mark), schedules it.
    fn wake_with(&self, bit: u8) {
        if self.state.fetch_or(bit, Ordering::AcqRel) & POLLING != 0 {
            return;
        }
        // Scheduled first: a guest that yields on the bump must find the
        // woken task queued, or it would resume before it.
        self.task.wake();
        self.preempt.woken();
    }

    /// Takes the companions spawned since the last call.
    fn take_incoming(&self) -> Vec<Companion> {
        match self.incoming.get() {
            Some(incoming) => incoming
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }
}

impl Wake for ProcessWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_with(NOTIFIED);
    }
}

/// Wakes a process task for one of its companions.
struct CompanionWaker(Arc<ProcessWaker>);

impl Wake for CompanionWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.wake_with(COMPANION);
    }
}

impl<F> Preemptible<F> {
    /// Where companions of this task are spawned.
    pub fn handle(&self) -> TaskHandle {
        TaskHandle(self.handle.clone())
    }

    /// Polls the companions (the new ones too) until none is ready.
    fn poll_companions(&mut self) {
        self.handle.state.fetch_and(!COMPANION, Ordering::AcqRel);
        self.companions.extend(self.handle.take_incoming());
        let mut cx = Context::from_waker(&self.companion_waker);
        while let Poll::Ready(Some(())) = self.companions.poll_next_unpin(&mut cx) {}
    }

    /// The task has ended: its companions go on, on a task of their own
    /// (a connection still answers its request, with a 503).
    fn release_companions(&mut self) {
        let mut left = std::mem::take(&mut self.companions);
        let incoming = self.handle.incoming.get_or_init(|| Mutex::new(None));
        left.extend(
            incoming
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or_default(),
        );
        if !left.is_empty() {
            tokio::spawn(async move { while left.next().await.is_some() {} });
        }
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
        this.handle.state.fetch_or(POLLING, Ordering::AcqRel);
        let mut ready = Poll::Pending;
        for _ in 0..ROUNDS {
            if this.handle.state.load(Ordering::Acquire) & COMPANION != 0 {
                this.poll_companions();
            }
            // Polled only when woken: a companion's wake-up (a socket)
            // does not resume the guest for nothing. Whatever woke it so
            // far, this poll sees.
            if this.handle.state.fetch_and(!NOTIFIED, Ordering::AcqRel) & NOTIFIED == 0 {
                break;
            }
            ready = this
                .task
                .as_mut()
                .poll(&mut Context::from_waker(&this.waker));
            if ready.is_ready() || this.handle.state.load(Ordering::Acquire) & COMPANION == 0 {
                break;
            }
        }
        // A wake-up it did not get to (a yield, a busy burst) reschedules
        // it; the marks stay for the next poll.
        let missed =
            this.handle.state.fetch_and(!POLLING, Ordering::AcqRel) & (NOTIFIED | COMPANION) != 0;
        if ready.is_ready() {
            this.release_companions();
        } else if missed {
            cx.waker().wake_by_ref();
        }
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
    use tokio::sync::oneshot;

    /// A runtime of two workers and its preemption.
    fn runtime() -> (tokio::runtime::Runtime, Arc<Preempt>) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        (rt, Preempt::new(Engine::default(), 2))
    }

    /// Busy flags are set only while a process task is polled.
    #[test]
    fn flags_follow_polls() {
        let (rt, preempt) = runtime();
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

    /// Companions run on their process's task — spawned before its first
    /// poll, from inside it, or by another companion — and a request and
    /// its answer go back and forth within it; those still running when
    /// the body ends go on elsewhere, and one spawned after runs too.
    #[test]
    fn companions_share_the_task_and_outlive_it() {
        let (rt, preempt) = runtime();
        rt.block_on(async {
            let (ids, mut seen) = tokio::sync::mpsc::unbounded_channel();
            let (ask, mut asked) = tokio::sync::mpsc::unbounded_channel::<oneshot::Sender<u32>>();
            let (finish, finished) = oneshot::channel::<()>();
            let (done, all_done) = oneshot::channel::<()>();
            let slot = Arc::new(OnceLock::<TaskHandle>::new());
            let body = {
                let (ids, slot) = (ids.clone(), slot.clone());
                async move {
                    ids.send(("body", tokio::task::id())).unwrap();
                    // A companion spawned from inside the task, and one
                    // that it spawns in turn.
                    let handle = slot.get().unwrap().clone();
                    let inner = handle.clone();
                    let ids2 = ids.clone();
                    handle.spawn(async move {
                        ids2.send(("inner", tokio::task::id())).unwrap();
                        let ids3 = ids2.clone();
                        inner.spawn(async move {
                            ids3.send(("nested", tokio::task::id())).unwrap();
                        });
                    });
                    // Requests the companion answers.
                    for i in 0..100 {
                        let (reply, answer) = oneshot::channel();
                        ask.send(reply).unwrap();
                        assert_eq!(answer.await.unwrap(), i * 2);
                    }
                }
            };
            let task = preempt.task(body, Arc::default());
            let handle = task.handle();
            let _ = slot.set(handle.clone());
            handle.spawn({
                let ids = ids.clone();
                async move {
                    ids.send(("answerer", tokio::task::id())).unwrap();
                    drop(ids);
                    let mut i = 0;
                    while let Some(reply) = asked.recv().await {
                        reply.send(i * 2).unwrap();
                        i += 1;
                    }
                    // Outlives the body: finishes once told, after it ended.
                    finished.await.unwrap();
                    done.send(()).unwrap();
                }
            });
            tokio::spawn(task).await.unwrap();
            drop(ids);
            let mut names = Vec::new();
            let mut task_ids = std::collections::HashSet::new();
            while let Some((name, id)) = seen.recv().await {
                names.push(name);
                task_ids.insert(id);
            }
            names.sort();
            assert_eq!(names, ["answerer", "body", "inner", "nested"]);
            assert_eq!(task_ids.len(), 1, "all on one task");
            finish.send(()).unwrap();
            all_done.await.unwrap();
            // The task is over: a late companion runs on its own.
            let (late, ran) = oneshot::channel();
            handle.spawn(async move { late.send(()).unwrap() });
            ran.await.unwrap();
        });
    }
}
