//! Bounds on live processes: the host's `--max-procs` and, nested under
//! it, the share a parent gave a child's subtree (fork option `max-procs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Spawning would exceed `--max-procs`, or a subtree's `max-procs`.
#[derive(Debug, thiserror::Error)]
#[error(
    "too many processes: at most {0} may be alive at once here (the host's `--max-procs`, or a fork's `max-procs`)"
)]
pub struct TooManyProcesses(pub u32);

/// A bound on live processes, wasm and OS alike: the host's
/// (`--max-procs`) at the top, and nested under it the share a parent gave
/// a child's subtree (fork option `max-procs`). A process is charged to
/// its own budget and every budget above it, so a fork bomb in one subtree
/// stops at that subtree's share and its siblings keep forking.
#[derive(Debug)]
pub struct Budget {
    limit: u32,
    used: AtomicU32,
    parent: Option<Arc<Budget>>,
}

/// One live process's place in its budgets; given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<Budget>);

impl Slot {
    /// The budget this place is in.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.0
    }
}

impl Budget {
    /// A budget of `limit` processes with none above it.
    pub fn root(limit: u32) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            used: AtomicU32::new(0),
            parent: None,
        })
    }

    /// What is left here: the least room of this budget and those above.
    pub fn left(&self) -> u32 {
        let mut left = u32::MAX;
        let mut at = Some(self);
        while let Some(b) = at {
            left = left.min(b.limit.saturating_sub(b.used.load(Ordering::Acquire)));
            at = b.parent.as_deref();
        }
        left
    }

    /// A share of `limit` processes under `parent`; more than the parent
    /// has left is refused.
    pub fn share(parent: &Arc<Budget>, limit: u32) -> Result<Arc<Budget>, TooManyProcesses> {
        let left = parent.left();
        if limit > left {
            return Err(TooManyProcesses(left));
        }
        Ok(Arc::new(Budget {
            limit,
            used: AtomicU32::new(0),
            parent: Some(parent.clone()),
        }))
    }

    /// Takes a place here and in every budget above.
    pub fn charge(self: &Arc<Self>) -> Result<Slot, TooManyProcesses> {
        let mut charged: Vec<&Budget> = Vec::new();
        let mut at = Some(&**self);
        while let Some(b) = at {
            let taken = b
                .used
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                    (u < b.limit).then_some(u + 1)
                });
            if taken.is_err() {
                for c in charged {
                    c.used.fetch_sub(1, Ordering::AcqRel);
                }
                return Err(TooManyProcesses(b.limit));
            }
            charged.push(b);
            at = b.parent.as_deref();
        }
        Ok(Slot(self.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut at = Some(&*self.0);
        while let Some(b) = at {
            b.used.fetch_sub(1, Ordering::AcqRel);
            at = b.parent.as_deref();
        }
    }
}
