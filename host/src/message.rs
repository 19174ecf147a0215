//! Messages between processes: validation, size limits and flow control.
//!
//! A channel direction has a [`Flow`]: the bytes its sender has queued in the
//! receiver's inbox and not yet taken. Past [`HIGH_WATER_MARK`] `send`
//! returns `false` (Node's backpressure signal) but still queues; past
//! [`HARD_LIMIT`] the sender blocks until the receiver catches up, so a
//! sender that ignores `false` cannot grow memory without bound.

use crate::bindings::{ErrorCode, Message};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

/// The largest message `send` accepts (the WIT's `max-message-bytes`).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Queued bytes past which `send` returns `false`.
pub const HIGH_WATER_MARK: usize = 1 << 20;

/// Queued bytes past which `send` blocks until the receiver takes messages.
pub const HARD_LIMIT: usize = 4 * HIGH_WATER_MARK;

/// What each queued message costs on top of its payload, so that a flood of
/// tiny messages is bounded too.
const PER_MESSAGE_COST: usize = 64;

/// Checks a message before it leaves its sender; returns its flow cost.
pub fn validate(msg: &Message) -> Result<usize, ErrorCode> {
    let len = match msg {
        Message::Json(text) => text.len(),
        Message::Bytes(bytes) => bytes.len(),
    };
    if len > MAX_MESSAGE_BYTES {
        return Err(ErrorCode::MessageTooLarge);
    }
    if let Message::Json(text) = msg {
        // Node's JSON channel is newline-delimited, so a message must be one
        // JSON value; validate it here so a receiver never sees bad input.
        if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
            return Err(ErrorCode::InvalidJson);
        }
    }
    Ok(len + PER_MESSAGE_COST)
}

/// One direction of a channel: how much its sender has queued.
#[derive(Default)]
pub struct Flow {
    queued: AtomicUsize,
    drained: Notify,
}

impl Flow {
    /// Reserves room for `cost` bytes, waiting while the receiver is over the
    /// hard limit. Returns `true` while under the high-water mark.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is reserved until the wait is over.
    pub async fn reserve(&self, cost: usize) -> bool {
        loop {
            let drained = self.drained.notified();
            let queued = self.queued.load(Ordering::Acquire);
            // A message larger than the hard limit may still go alone.
            if queued == 0 || queued + cost <= HARD_LIMIT {
                break;
            }
            drained.await;
        }
        let after = self.queued.fetch_add(cost, Ordering::AcqRel) + cost;
        after <= HIGH_WATER_MARK
    }

    /// Reserves room for `cost` bytes if that needs no waiting: `Some(room)`
    /// as `reserve` would return, `None` when the sender must wait.
    pub fn try_reserve(&self, cost: usize) -> Option<bool> {
        let queued = self.queued.load(Ordering::Acquire);
        if queued != 0 && queued + cost > HARD_LIMIT {
            return None;
        }
        let after = self.queued.fetch_add(cost, Ordering::AcqRel) + cost;
        Some(after <= HIGH_WATER_MARK)
    }

    /// Gives back `cost` bytes once the receiver took the message.
    pub fn release(&self, cost: usize) {
        let before = self.queued.fetch_sub(cost, Ordering::AcqRel);
        if before > HARD_LIMIT.saturating_sub(HIGH_WATER_MARK) {
            self.drained.notify_waiters();
        }
    }

    /// Bytes queued and not yet taken.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_json_and_size() {
        assert!(validate(&Message::Json("{\"a\":[1,2]}".into())).is_ok());
        assert!(validate(&Message::Json("42".into())).is_ok());
        assert_eq!(
            validate(&Message::Json("{".into())),
            Err(ErrorCode::InvalidJson)
        );
        assert_eq!(
            validate(&Message::Json("".into())),
            Err(ErrorCode::InvalidJson)
        );
        assert_eq!(
            validate(&Message::Json("1 2".into())),
            Err(ErrorCode::InvalidJson)
        );
        assert_eq!(
            validate(&Message::Bytes(vec![0; MAX_MESSAGE_BYTES + 1])),
            Err(ErrorCode::MessageTooLarge)
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
