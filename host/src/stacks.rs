//! Fiber stacks for a host that allocates its guests on demand (past the
//! pool, see `hive::POOL_MAX_PROCS`): each stack is its own mapping with a
//! guard page below it, as wasmtime's own, but a stack whose guest ended
//! goes back to a bounded free list instead of to `munmap`, so a fork reuses
//! a mapped stack (two syscalls and a TLB shootdown fewer) as a pooled fork
//! does.
#![expect(unsafe_code, reason = "wasmtime's stack traits are unsafe, and mmap")]

use std::ops::Range;
use std::sync::{Arc, Mutex};
use wasmtime::{StackCreator, StackMemory};

/// Stacks kept for reuse, enough for a burst of forks after a burst of
/// exits. Each keeps the pages its last guest touched — a few KiB for most,
/// the whole 2 MiB for one that recursed to its limit — so what the list
/// holds is bounded by 256 stacks (at most 512 MiB, as a pool of 256 holds
/// with its stacks' dirty pages kept too), not by what guests do.
const KEEP: usize = 256;

/// Hands out fiber stacks, reusing those of ended guests.
#[derive(Default)]
pub struct StackCache {
    free: Arc<Mutex<Vec<Mapping>>>,
}

/// One stack's mapping: a guard page, then the stack.
struct Mapping {
    base: *mut u8,
    /// The whole mapping, guard page included.
    len: usize,
}

// SAFETY: the mapping is owned by whoever holds the `Mapping`; nothing else
// refers to it.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

impl Mapping {
    fn new(size: usize) -> std::io::Result<Mapping> {
        let page = page_size();
        let len = size.div_ceil(page) * page + page;
        // SAFETY: a fresh anonymous mapping that nothing else refers to.
        unsafe {
            let base = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            );
            if base == libc::MAP_FAILED {
                return Err(std::io::Error::last_os_error());
            }
            let mapping = Mapping {
                base: base.cast(),
                len,
            };
            if libc::mprotect(base, page, libc::PROT_NONE) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(mapping)
        }
    }

    fn stack(&self) -> Range<usize> {
        self.base as usize + page_size()..self.base as usize + self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and no stack frame is on it any more.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// A stack lent to wasmtime; back to the cache when wasmtime drops it.
struct Lent {
    mapping: Option<Mapping>,
    free: Arc<Mutex<Vec<Mapping>>>,
}

// SAFETY: the stack is page aligned, zero filled when new (anonymous
// memory), and guarded by a PROT_NONE page below it.
unsafe impl StackMemory for Lent {
    fn top(&self) -> *mut u8 {
        let m = self.mapping.as_ref().unwrap();
        // SAFETY: one past the end of the mapping.
        unsafe { m.base.add(m.len) }
    }

    fn range(&self) -> Range<usize> {
        self.mapping.as_ref().unwrap().stack()
    }

    fn guard_range(&self) -> Range<*mut u8> {
        let m = self.mapping.as_ref().unwrap();
        // SAFETY: the first page of the mapping.
        m.base..unsafe { m.base.add(page_size()) }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let mapping = self.mapping.take().unwrap();
        let mut free = self.free.lock().unwrap();
        if free.len() < KEEP {
            free.push(mapping);
        }
    }
}

// SAFETY: every stack is its own mapping with a guard page; a reused one is
// zeroed first when wasmtime asks for zeroed stacks.
unsafe impl StackCreator for StackCache {
    fn new_stack(&self, size: usize, zeroed: bool) -> wasmtime::Result<Box<dyn StackMemory>> {
        let page = page_size();
        let want = size.div_ceil(page) * page + page;
        let reused = {
            let mut free = self.free.lock().unwrap();
            // Every stack of one engine has the same size.
            free.pop().filter(|m| m.len == want)
        };
        let mapping = match reused {
            Some(m) => {
                if zeroed {
                    let stack = m.stack();
                    // SAFETY: the stack is ours and unused; dropping its
                    // pages makes them read back as zeros.
                    unsafe {
                        libc::madvise(
                            stack.start as *mut libc::c_void,
                            stack.len(),
                            libc::MADV_DONTNEED,
                        )
                    };
                }
                m
            }
            None => Mapping::new(size)?,
        };
        Ok(Box::new(Lent {
            mapping: Some(mapping),
            free: self.free.clone(),
        }))
    }
}
