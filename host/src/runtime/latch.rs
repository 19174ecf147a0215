//! A value set once and waited for: what a tokio `watch` channel of
//! `Option<T>` gives, in a few dozen bytes instead of ~350 (a `watch`
//! carries eight `Notify`s). Every process has two (its pending fatal
//! signal, its exit status), and a host may hold 100,000 processes.

use std::sync::Mutex;
use tokio::sync::Notify;

/// A value of `T`, set at most once.
pub struct Latch<T> {
    value: Mutex<Option<T>>,
    set: Notify,
}

impl<T: Copy> Default for Latch<T> {
    fn default() -> Self {
        Latch {
            value: Mutex::new(None),
            set: Notify::new(),
        }
    }
}

impl<T: Copy> Latch<T> {
    /// Sets the value if none was set; whether this call set it.
    pub fn set(&self, value: T) -> bool {
        let mut now = self.value.lock().unwrap_or_else(|e| e.into_inner());
        if now.is_some() {
            return false;
        }
        *now = Some(value);
        drop(now);
        self.set.notify_waiters();
        true
    }

    /// The value, once set.
    pub fn get(&self) -> Option<T> {
        *self.value.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the value is set.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait(&self) -> T {
        loop {
            // Registered before the check, so a `set` in between wakes it.
            let notified = self.set.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(value) = self.get() {
                return value;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Latch;
    use std::sync::Arc;

    #[tokio::test]
    async fn the_first_value_wins_and_wakes_every_waiter() {
        let latch = Arc::new(Latch::default());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let latch = latch.clone();
                tokio::spawn(async move { latch.wait().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(latch.set(7));
        assert!(!latch.set(8));
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), 7);
        }
        assert_eq!(latch.get(), Some(7));
        assert_eq!(latch.wait().await, 7);
    }
}
