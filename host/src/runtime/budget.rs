//! Bounds on live processes: the host's `--max-procs` and, nested under
//! it, the share a parent gave a child's subtree (fork option `max-procs`).
//!
//! A share bounds what the OS programs in it start themselves too: its OS
//! programs run in a pids cgroup of the share's own (`runtime::cgroup`),
//! nested in its parent share's, whose `pids.max` is the share's limit
//! less the wasm processes charged to it. So at every moment, per share,
//! wasm processes + everything in the cgroup ≤ the limit: the kernel holds
//! the OS side at fork, and a wasm charge lowers `pids.max` first and
//! checks the cgroup still fits under it.

use super::cgroup::{self, Pids};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// Spawning would exceed `--max-procs`, a subtree's `max-procs`, or what
/// the host can hold (`runtime::capacity`): `EAGAIN`.
#[derive(Debug, thiserror::Error)]
pub enum TooManyProcesses {
    /// At most this many may be alive at once here.
    #[error(
        "too many processes: at most {0} may be alive at once here (the host's `--max-procs`, or a fork's `max-procs`)"
    )]
    Limit(u32),
    /// What of the host's capacity is used up, and how to raise it.
    #[error("{0}")]
    Capacity(String),
}

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
    /// A share's pids cgroup, made for its first OS program; `None` for
    /// the host's own budget, or where the host has no pids hierarchy.
    /// Every charge to a share that may have one is taken under this lock,
    /// so that `pids.max` always follows the wasm processes charged here.
    cgroup: Option<Mutex<Place>>,
}

/// A share's cgroup: not made yet, made, or not to be had.
#[derive(Debug)]
enum Place {
    Later,
    Made(Cgroup),
    Failed,
}

impl Place {
    fn made(&mut self) -> Option<&mut Cgroup> {
        match self {
            Place::Made(c) => Some(c),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Cgroup {
    pids: Pids,
    /// Its `pids.max` as last written.
    max: u32,
}

impl Cgroup {
    /// Whether one more process fits in the cgroup now.
    fn has_room(&self) -> bool {
        self.pids.current().is_ok_and(|n| n < self.max)
    }

    /// Takes one place from the cgroup's `pids.max`, if what is in it
    /// still fits under the lower bound.
    fn reserve(&mut self) -> bool {
        let Some(lower) = self.max.checked_sub(1) else {
            return false;
        };
        if self.pids.set_max(lower).is_err() {
            return false;
        }
        if self.pids.current().unwrap_or(u32::MAX) > lower {
            let _ = self.pids.set_max(self.max);
            return false;
        }
        self.max = lower;
        true
    }

    /// Gives one place back to `pids.max`.
    fn release(&mut self) {
        self.max += 1;
        let _ = self.pids.set_max(self.max);
    }
}

/// What a process is charged as: wasm processes are outside the cgroups
/// (they take a place from `pids.max`), OS programs inside (counted there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Wasm,
    Os,
}

/// One live process's place in its budgets; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    budget: Arc<Budget>,
    kind: Kind,
}

impl Slot {
    /// The budget this place is in.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }
}

impl Budget {
    /// A budget of `limit` processes with none above it.
    pub fn root(limit: u32) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            used: AtomicU32::new(0),
            parent: None,
            cgroup: None,
        })
    }

    /// Live processes charged here.
    pub fn used(&self) -> u32 {
        self.used.load(Ordering::Acquire)
    }

    /// Whether this is a fork's `max-procs` share (not the host's own).
    pub fn is_share(&self) -> bool {
        self.parent.is_some()
    }

    /// This share's cgroup state (locked). Only for a budget that may have
    /// a cgroup.
    fn lock(&self) -> std::sync::MutexGuard<'_, Place> {
        self.cgroup
            .as_ref()
            .expect("a share that may have a cgroup")
            .lock()
            .unwrap_or_else(|e| e.into_inner())
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
            return Err(TooManyProcesses::Limit(left));
        }
        Ok(Arc::new(Budget {
            limit,
            used: AtomicU32::new(0),
            parent: Some(parent.clone()),
            cgroup: cgroup::available().then(|| Mutex::new(Place::Later)),
        }))
    }

    /// Takes a place for a wasm process here and in every budget above.
    pub fn charge(self: &Arc<Self>) -> Result<Slot, TooManyProcesses> {
        self.charge_as(Kind::Wasm)
    }

    /// Takes a place for an OS program here and above. In a share, the
    /// program is to join the share's cgroup ([`Budget::with_cgroup`]),
    /// made now if this is the share's first program (its ancestors'
    /// first); it is charged only if one more process fits in every
    /// cgroup above it. (A program that joins while another in the share
    /// forks can take a cgroup one over its `pids.max`: the kernel then
    /// refuses forks there until it is back under.)
    pub fn charge_program(self: &Arc<Self>) -> Result<Slot, TooManyProcesses> {
        if self.is_share() {
            if self.cgroup.is_none() {
                cgroup::warn_unavailable();
            } else {
                self.ensure_cgroup();
            }
        }
        self.charge_as(Kind::Os)
    }

    /// The `cgroup.procs` descriptor of the cgroup an OS program charged
    /// here joins, if this share has one; `f` runs under the share's lock.
    pub fn with_cgroup<T>(&self, f: impl FnOnce(&Pids) -> T) -> Option<T> {
        self.cgroup.as_ref()?;
        self.lock().made().map(|c| f(&c.pids))
    }

    /// Makes this share's cgroup, and its ancestors' first, if not made.
    fn ensure_cgroup(&self) {
        let parent = self.parent.as_ref().filter(|p| p.is_share());
        if let Some(parent) = parent {
            parent.ensure_cgroup();
        }
        let mut place = self.lock();
        if !matches!(*place, Place::Later) {
            return;
        }
        // Inside the parent share's cgroup, so that it counts there too.
        let within = match parent {
            Some(p) => match p.with_cgroup(|c| c.dir().to_owned()) {
                Some(dir) => Some(dir),
                None => {
                    *place = Place::Failed;
                    return;
                }
            },
            None => None,
        };
        // No OS program was charged here yet: every place used is a wasm
        // process's (and charges wait on this lock).
        let max = self.limit.saturating_sub(self.used.load(Ordering::Acquire));
        *place = match Pids::create(within.as_deref(), max) {
            Ok(pids) => Place::Made(Cgroup { pids, max }),
            Err(e) => {
                tracing::warn!(
                    "could not make a pids cgroup ({e}): this share bounds its OS programs, not what they start"
                );
                Place::Failed
            }
        };
    }

    /// Takes a place at every level, as `kind`; in a share that has a
    /// cgroup, under its lock: for a wasm process, a place from `pids.max`
    /// too; for an OS program, only if the cgroup has room.
    fn charge_as(self: &Arc<Self>, kind: Kind) -> Result<Slot, TooManyProcesses> {
        let mut charged: Vec<&Arc<Budget>> = Vec::new();
        let mut at = Some(self);
        while let Some(b) = at {
            let ok = match &b.cgroup {
                Some(_) => {
                    let mut place = b.lock();
                    let fits = b.used.load(Ordering::Acquire) < b.limit
                        && place.made().is_none_or(|c| match kind {
                            Kind::Wasm => c.reserve(),
                            Kind::Os => c.has_room(),
                        });
                    if fits {
                        b.used.fetch_add(1, Ordering::AcqRel);
                    }
                    fits
                }
                None => b
                    .used
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                        (u < b.limit).then_some(u + 1)
                    })
                    .is_ok(),
            };
            if !ok {
                for c in charged {
                    c.give_back(kind);
                }
                return Err(TooManyProcesses::Limit(b.limit));
            }
            charged.push(b);
            at = b.parent.as_ref();
        }
        Ok(Slot {
            budget: self.clone(),
            kind,
        })
    }

    /// Gives a place back here (a wasm process's to `pids.max` too).
    fn give_back(&self, kind: Kind) {
        if self.cgroup.is_none() {
            self.used.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let mut place = self.lock();
        self.used.fetch_sub(1, Ordering::AcqRel);
        if let (Kind::Wasm, Some(cgroup)) = (kind, place.made()) {
            cgroup.release();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut at = Some(&*self.budget);
        while let Some(b) = at {
            b.give_back(self.kind);
            at = b.parent.as_deref();
        }
    }
}
