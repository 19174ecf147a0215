//! Flow control: how many bytes a sender may queue in a receiver's inbox.
//!
//! A channel direction has a [`Flow`]: the bytes its sender has queued in the
//! receiver's inbox and not yet taken. Past [`HIGH_WATER_MARK`] `send`
//! returns `false` (Node's backpressure signal) but still queues; past
//! [`HARD_LIMIT`] the sender blocks until the receiver catches up, so a
//! sender that ignores `false` cannot grow memory without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

/// Queued bytes past which `send` returns `false`.
pub const HIGH_WATER_MARK: usize = 1 << 20;

/// Queued bytes past which `send` blocks until the receiver takes messages.
pub const HARD_LIMIT: usize = 4 * HIGH_WATER_MARK;

/// Queued bytes over every channel of the host together past which `send`
/// blocks, as at one channel's hard limit: sixteen children each queueing
/// one 64 MiB message that nobody reads would otherwise hold 1 GiB. Past
/// half of it `send` returns `false`.
pub const MAX_TOTAL_QUEUED: usize = 256 << 20;

/// Bytes queued on many channels together, bounded: the host's (every
/// channel of this host process, [`MAX_TOTAL_QUEUED`]), or a test's.
pub struct QueueBudget {
    limit: usize,
    queued: AtomicUsize,
    /// Woken when `queued` drains from past half the limit.
    drained: Notify,
}

/// The host's budget, shared by every channel.
static HOST_QUEUE_BUDGET: QueueBudget = QueueBudget::new(MAX_TOTAL_QUEUED);

impl QueueBudget {
    /// A budget of `limit` bytes.
    pub const fn new(limit: usize) -> QueueBudget {
        QueueBudget {
            limit,
            queued: AtomicUsize::new(0),
            drained: Notify::const_new(),
        }
    }

    /// Whether `cost` more bytes fit (a message may always go when nothing
    /// is queued anywhere).
    fn fits(&self, cost: usize) -> bool {
        let queued = self.queued.load(Ordering::Acquire);
        queued == 0 || queued + cost <= self.limit
    }

    /// Takes `cost`; whether it is still under half the limit.
    fn take(&self, cost: usize) -> bool {
        self.queued.fetch_add(cost, Ordering::AcqRel) + cost <= self.limit / 2
    }

    fn give_back(&self, cost: usize) {
        if self.queued.fetch_sub(cost, Ordering::AcqRel) > self.limit / 2 {
            self.drained.notify_waiters();
        }
    }
}

/// A sender counted in `Flow::waiting` for as long as it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Waiting<'a> {
        count.fetch_add(1, Ordering::AcqRel);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One direction of a channel: how much its sender has queued.
pub struct Flow {
    queued: AtomicUsize,
    drained: Notify,
    /// Senders waiting in `reserve`: `release` wakes them whatever it
    /// leaves queued (a large message waits for room below the hard limit
    /// even when little is queued).
    waiting: AtomicUsize,
    /// The budget this flow shares with others.
    budget: &'static QueueBudget,
}

impl Default for Flow {
    fn default() -> Flow {
        Flow::with_budget(&HOST_QUEUE_BUDGET)
    }
}

impl Flow {
    /// A flow charged to `budget` too.
    pub fn with_budget(budget: &'static QueueBudget) -> Flow {
        Flow {
            queued: AtomicUsize::new(0),
            drained: Notify::new(),
            waiting: AtomicUsize::new(0),
            budget,
        }
    }

    /// Reserves room for `cost` bytes, waiting while the receiver is over the
    /// hard limit. Returns `true` while under the high-water mark.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is reserved until the wait is over.
    pub async fn reserve(&self, cost: usize) -> bool {
        // Counted while it waits, and uncounted if the wait is dropped; a
        // `Notified` made after the count sees every release after it.
        let _waiting = Waiting::new(&self.waiting);
        loop {
            let drained = self.drained.notified();
            let total_drained = self.budget.drained.notified();
            let queued = self.queued.load(Ordering::Acquire);
            // A message larger than the hard limit may still go alone.
            let fits = queued == 0 || queued + cost <= HARD_LIMIT;
            if fits && self.budget.fits(cost) {
                break;
            }
            tokio::select! {
                _ = drained => {}
                _ = total_drained => {}
            }
        }
        let under_total = self.budget.take(cost);
        let after = self.queued.fetch_add(cost, Ordering::AcqRel) + cost;
        after <= HIGH_WATER_MARK && under_total
    }

    /// Reserves room for `cost` bytes if that needs no waiting: `Some(room)`
    /// as `reserve` would return, `None` when the sender must wait.
    pub fn try_reserve(&self, cost: usize) -> Option<bool> {
        let queued = self.queued.load(Ordering::Acquire);
        if (queued != 0 && queued + cost > HARD_LIMIT) || !self.budget.fits(cost) {
            return None;
        }
        let under_total = self.budget.take(cost);
        let after = self.queued.fetch_add(cost, Ordering::AcqRel) + cost;
        Some(after <= HIGH_WATER_MARK && under_total)
    }

    /// Gives back `cost` bytes once the receiver took the message.
    pub fn release(&self, cost: usize) {
        self.queued.fetch_sub(cost, Ordering::AcqRel);
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.drained.notify_waiters();
        }
        self.budget.give_back(cost);
    }

    /// Bytes queued and not yet taken.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A large message waiting behind a small one goes once the small one
    /// is taken, though little was queued (release woke waiters only past
    /// 3 MiB queued: this sender waited for ever).
    #[tokio::test]
    async fn a_large_message_behind_a_small_one_goes() {
        let flow = std::sync::Arc::new(Flow::default());
        assert_eq!(flow.try_reserve(100), Some(true));
        assert_eq!(flow.try_reserve(HARD_LIMIT), None);
        let waiting = tokio::spawn({
            let flow = flow.clone();
            async move { flow.reserve(HARD_LIMIT).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        flow.release(100);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken when the small message was taken")
            .unwrap();
        assert_eq!(flow.waiting.load(Ordering::Acquire), 0);
    }

    /// Channels share the host-wide budget: past half of it `send` says
    /// `false`, past all of it the next sender waits — even on an empty
    /// channel — until a receiver takes something.
    #[tokio::test]
    async fn host_wide_budget() {
        static BUDGET: QueueBudget = QueueBudget::new(4 * HARD_LIMIT);
        let flows: Vec<_> = (0..6)
            .map(|_| std::sync::Arc::new(Flow::with_budget(&BUDGET)))
            .collect();
        let small = 100;
        assert_eq!(flows[3].try_reserve(small), Some(true));
        flows[3].release(small);
        let big = HARD_LIMIT * 2; // one message, larger than a channel's limit
        assert_eq!(flows[0].try_reserve(big), Some(false));
        assert_eq!(flows[1].try_reserve(big), Some(false));
        // A full budget makes even a small message on a fresh channel wait.
        assert_eq!(flows[4].try_reserve(small), None);
        assert_eq!(flows[2].try_reserve(big), None);
        let waiting = tokio::spawn({
            let flow = flows[2].clone();
            async move { flow.reserve(big).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        flows[0].release(big);
        assert!(
            !tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
                .await
                .expect("woken when the budget drained")
                .unwrap()
        );
    }

    #[tokio::test]
    async fn backpressure_then_blocks() {
        let flow = std::sync::Arc::new(Flow::default());
        let mut accepted = 0;
        while flow.reserve(1024).await {
            accepted += 1;
        }
        assert_eq!(accepted, HIGH_WATER_MARK / 1024);
        // Fill to the hard limit; the next reservation must wait.
        while flow.queued() + 1024 <= HARD_LIMIT {
            assert!(!flow.reserve(1024).await);
        }
        let waiter = tokio::spawn({
            let flow = flow.clone();
            async move { flow.reserve(1024).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        for _ in 0..(HARD_LIMIT / 1024) {
            flow.release(1024);
        }
        assert!(waiter.await.unwrap());
    }
}
