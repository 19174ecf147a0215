//! Bytes that live in the host on behalf of guests: a transferable buffer
//! (Node's `ArrayBuffer` in a transfer list), which one process holds at a
//! time, and a shared one (Node's `SharedArrayBuffer`) with `Atomics` on
//! its 32-bit words, which several hold at once.
//!
//! Both are charged to `--max-total-memory` with every guest's linear
//! memory, from allocation until the last holder drops them.

use super::caps::{Reserved, TotalMemory};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// The largest buffer of either kind: 1 GiB.
pub const MAX_BUFFER_BYTES: u64 = 1 << 30;

/// The most bytes one `read` copies out (a guest reads a larger buffer in
/// pieces): a read is a host-side copy that `--max-total-memory` does not
/// count, made on a runtime thread.
pub const MAX_READ_BYTES: u64 = 64 << 20;

/// Why a buffer call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferError {
    /// Larger than [`MAX_BUFFER_BYTES`], or past `--max-total-memory`.
    AllocationFailed,
    /// An offset, length or index outside the buffer.
    OutOfRange,
}

/// Takes `len` bytes of `total` for a new buffer.
fn charge(total: &Arc<TotalMemory>, len: u64) -> Result<Reserved, BufferError> {
    if len > MAX_BUFFER_BYTES {
        return Err(BufferError::AllocationFailed);
    }
    total.reserve(len).ok_or(BufferError::AllocationFailed)
}

/// `offset..offset + len` for a read: within `size` and at most
/// [`MAX_READ_BYTES`].
fn read_range(size: usize, offset: u64, len: u64) -> Result<std::ops::Range<usize>, BufferError> {
    if len > MAX_READ_BYTES {
        return Err(BufferError::OutOfRange);
    }
    range(size, offset, len)
}

/// `offset..offset + len` if it lies within `size` bytes.
fn range(size: usize, offset: u64, len: u64) -> Result<std::ops::Range<usize>, BufferError> {
    let end = offset.checked_add(len).ok_or(BufferError::OutOfRange)?;
    if end > size as u64 {
        return Err(BufferError::OutOfRange);
    }
    Ok(offset as usize..end as usize)
}

/// A transferable buffer's bytes: moved whole between holders, never
/// copied unless a guest reads or writes them.
#[derive(Debug)]
pub struct BufferBytes {
    bytes: Vec<u8>,
    _charge: Reserved,
}

impl BufferBytes {
    /// `len` zero bytes.
    pub fn zeroed(total: &Arc<TotalMemory>, len: u64) -> Result<BufferBytes, BufferError> {
        let charge = charge(total, len)?;
        Ok(BufferBytes {
            bytes: zeroed::<u8>(len as usize)?.into_vec(),
            _charge: charge,
        })
    }

    /// A buffer that holds `bytes`.
    pub fn from_vec(total: &Arc<TotalMemory>, bytes: Vec<u8>) -> Result<BufferBytes, BufferError> {
        let charge = charge(total, bytes.len() as u64)?;
        Ok(BufferBytes {
            bytes,
            _charge: charge,
        })
    }

    /// A copy (what an untransferable buffer in a transfer list becomes).
    pub fn copy(&self, total: &Arc<TotalMemory>) -> Result<BufferBytes, BufferError> {
        let charge = charge(total, self.bytes.len() as u64)?;
        let mut bytes = Vec::new();
        bytes
            .try_reserve_exact(self.bytes.len())
            .map_err(|_| BufferError::AllocationFailed)?;
        bytes.extend_from_slice(&self.bytes);
        Ok(BufferBytes {
            bytes,
            _charge: charge,
        })
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// `len` bytes from `offset`.
    pub fn read(&self, offset: u64, len: u64) -> Result<&[u8], BufferError> {
        Ok(&self.bytes[read_range(self.bytes.len(), offset, len)?])
    }

    /// Writes `bytes` at `offset`.
    pub fn write(&mut self, offset: u64, bytes: &[u8]) -> Result<(), BufferError> {
        let at = range(self.bytes.len(), offset, bytes.len() as u64)?;
        self.bytes[at].copy_from_slice(bytes);
        Ok(())
    }
}

/// What `Atomics.wait` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitResult {
    /// A `notify` woke it.
    Ok,
    /// The word was not the expected value.
    NotEqual,
    /// The timeout passed.
    TimedOut,
}

/// An `Atomics` read-modify-write operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomicOp {
    /// `Atomics.add` (wrapping).
    Add,
    /// `Atomics.sub` (wrapping).
    Sub,
    /// `Atomics.and`.
    And,
    /// `Atomics.or`.
    Or,
    /// `Atomics.xor`.
    Xor,
    /// `Atomics.exchange`.
    Exchange,
}

/// A type whose all-zero bytes are a valid value.
trait Zeroable {}
impl Zeroable for u8 {}
impl Zeroable for AtomicU32 {}

/// `n` zero values from zeroed pages (calloc: untouched until used, not
/// written one by one — a 1 GiB buffer written word by word held a
/// runtime thread ~0.3 s inside the host call), or `AllocationFailed`
/// instead of aborting the host when the allocator has no room.
#[expect(unsafe_code, reason = "a fallible zeroed allocation")]
fn zeroed<T: Zeroable>(n: usize) -> Result<Box<[T]>, BufferError> {
    let layout = std::alloc::Layout::array::<T>(n).map_err(|_| BufferError::AllocationFailed)?;
    if layout.size() == 0 {
        return Ok(std::iter::empty().collect());
    }
    // SAFETY: `layout` has a non-zero size. The pointer, if not null, is
    // an allocation of `n` `T`s from the global allocator with `layout`,
    // which is what `Box<[T]>` frees with; all-zero bytes are a valid `T`
    // (`Zeroable`), so every element is initialised.
    unsafe {
        let at = std::alloc::alloc_zeroed(layout).cast::<T>();
        if at.is_null() {
            return Err(BufferError::AllocationFailed);
        }
        Ok(Box::from_raw(std::ptr::slice_from_raw_parts_mut(at, n)))
    }
}

/// One caller sleeping in `wait`.
struct Waiter {
    index: u64,
    id: u64,
    wake: oneshot::Sender<()>,
}

/// A shared buffer's bytes: 32-bit words every holder reaches atomically,
/// and the callers waiting on them.
pub struct SharedBytes {
    words: Box<[AtomicU32]>,
    len: usize,
    /// In the order they began to wait (`notify` wakes the oldest first).
    /// At most one per waiting guest: `wait` blocks its caller.
    waiters: Mutex<Vec<Waiter>>,
    next_waiter: AtomicU64,
    _charge: Reserved,
}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedBytes({} bytes)", self.len)
    }
}

impl SharedBytes {
    /// `len` zero bytes.
    pub fn zeroed(total: &Arc<TotalMemory>, len: u64) -> Result<Arc<SharedBytes>, BufferError> {
        let charge = charge(total, len)?;
        Ok(Arc::new(SharedBytes {
            words: zeroed::<AtomicU32>((len as usize).div_ceil(4))?,
            len: len as usize,
            waiters: Mutex::default(),
            next_waiter: AtomicU64::new(0),
            _charge: charge,
        }))
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Word `index` of the `Int32Array` view (which covers whole words only).
    fn word(&self, index: u64) -> Result<&AtomicU32, BufferError> {
        if index >= (self.len / 4) as u64 {
            return Err(BufferError::OutOfRange);
        }
        Ok(&self.words[index as usize])
    }

    /// `Atomics.load`.
    pub fn load(&self, index: u64) -> Result<i32, BufferError> {
        Ok(self.word(index)?.load(SeqCst) as i32)
    }

    /// `Atomics.store`.
    pub fn store(&self, index: u64, value: i32) -> Result<i32, BufferError> {
        self.word(index)?.store(value as u32, SeqCst);
        Ok(value)
    }

    /// A read-modify-write; returns the old value.
    pub fn update(&self, index: u64, op: AtomicOp, value: i32) -> Result<i32, BufferError> {
        let word = self.word(index)?;
        let v = value as u32;
        let old = match op {
            AtomicOp::Add => word.fetch_add(v, SeqCst),
            AtomicOp::Sub => word.fetch_sub(v, SeqCst),
            AtomicOp::And => word.fetch_and(v, SeqCst),
            AtomicOp::Or => word.fetch_or(v, SeqCst),
            AtomicOp::Xor => word.fetch_xor(v, SeqCst),
            AtomicOp::Exchange => word.swap(v, SeqCst),
        };
        Ok(old as i32)
    }

    /// `Atomics.compareExchange`; returns the old value.
    pub fn compare_exchange(
        &self,
        index: u64,
        expected: i32,
        replacement: i32,
    ) -> Result<i32, BufferError> {
        let word = self.word(index)?;
        Ok(
            match word.compare_exchange(expected as u32, replacement as u32, SeqCst, SeqCst) {
                Ok(old) | Err(old) => old as i32,
            },
        )
    }

    /// `len` bytes from `offset`, each word read atomically.
    pub fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, BufferError> {
        let at = read_range(self.len, offset, len)?;
        let mut out = Vec::with_capacity(at.len());
        let mut i = at.start;
        while i < at.end {
            let bytes = self.words[i / 4].load(SeqCst).to_le_bytes();
            let from = i % 4;
            let take = (4 - from).min(at.end - i);
            out.extend_from_slice(&bytes[from..from + take]);
            i += take;
        }
        Ok(out)
    }

    /// Writes `bytes` at `offset`: whole words are stored, partial ones
    /// updated atomically, so no concurrent atomic on a neighbouring byte
    /// is lost.
    pub fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), BufferError> {
        let at = range(self.len, offset, bytes.len() as u64)?;
        let mut i = at.start;
        let mut src = bytes;
        while i < at.end {
            let from = i % 4;
            let take = (4 - from).min(at.end - i);
            let word = &self.words[i / 4];
            if take == 4 {
                word.store(u32::from_le_bytes(src[..4].try_into().unwrap()), SeqCst);
            } else {
                let _ = word.fetch_update(SeqCst, SeqCst, |old| {
                    let mut b = old.to_le_bytes();
                    b[from..from + take].copy_from_slice(&src[..take]);
                    Some(u32::from_le_bytes(b))
                });
            }
            src = &src[take..];
            i += take;
        }
        Ok(())
    }

    /// `Atomics.wait`: sleeps while word `index` is `expected`, until a
    /// `notify` or the timeout. The check and the registration happen
    /// under the waiters' lock, which `notify` takes too, so a store and
    /// notify after the check always wake this caller.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped wait is skipped (and forgotten) by `notify`.
    pub async fn wait(
        &self,
        index: u64,
        expected: i32,
        timeout: Option<Duration>,
    ) -> Result<WaitResult, BufferError> {
        let word = self.word(index)?;
        let (woken, id) = {
            let mut waiters = self.waiters.lock().unwrap();
            if word.load(SeqCst) != expected as u32 {
                return Ok(WaitResult::NotEqual);
            }
            // Waits dropped unfinished (a killed guest) leave closed senders.
            waiters.retain(|w| !w.wake.is_closed());
            let (wake, woken) = oneshot::channel();
            let id = self.next_waiter.fetch_add(1, SeqCst);
            waiters.push(Waiter { index, id, wake });
            (woken, id)
        };
        let Some(timeout) = timeout else {
            let _ = woken.await;
            return Ok(WaitResult::Ok);
        };
        let mut woken = woken;
        match tokio::time::timeout(timeout, &mut woken).await {
            Ok(_) => Ok(WaitResult::Ok),
            Err(_) => {
                let mut waiters = self.waiters.lock().unwrap();
                match waiters.iter().position(|w| w.id == id) {
                    Some(at) => {
                        waiters.remove(at);
                        Ok(WaitResult::TimedOut)
                    }
                    // Notified as the timer fired: the notify counted it.
                    None => Ok(WaitResult::Ok),
                }
            }
        }
    }

    /// `Atomics.notify`: wakes up to `count` (`None`: all) callers waiting
    /// on word `index`, oldest first; returns how many.
    pub fn notify(&self, index: u64, count: Option<u32>) -> Result<u32, BufferError> {
        self.word(index)?;
        let mut left = count.unwrap_or(u32::MAX);
        let mut woken = 0;
        let mut waiters = self.waiters.lock().unwrap();
        let mut i = 0;
        while i < waiters.len() && left > 0 {
            if waiters[i].index != index {
                i += 1;
                continue;
            }
            let waiter = waiters.remove(i);
            if waiter.wake.send(()).is_ok() {
                woken += 1;
                left -= 1;
            }
        }
        Ok(woken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total() -> Arc<TotalMemory> {
        TotalMemory::new(1 << 20)
    }

    #[test]
    fn buffers_are_bounded_and_charged() {
        let total = total();
        let a = BufferBytes::zeroed(&total, 1000).unwrap();
        assert_eq!(total.used(), 1000);
        assert_eq!(
            BufferBytes::zeroed(&total, 1 << 20).unwrap_err(),
            BufferError::AllocationFailed
        );
        assert_eq!(
            SharedBytes::zeroed(&total, MAX_BUFFER_BYTES + 1).unwrap_err(),
            BufferError::AllocationFailed
        );
        drop(a);
        assert_eq!(total.used(), 0);
    }

    #[test]
    fn ranges_and_bytes() {
        let total = total();
        let mut a = BufferBytes::from_vec(&total, vec![1, 2, 3]).unwrap();
        assert_eq!(a.read(1, 2).unwrap(), [2, 3]);
        assert_eq!(a.read(2, 2), Err(BufferError::OutOfRange));
        assert_eq!(a.read(u64::MAX, 2), Err(BufferError::OutOfRange));
        a.write(0, &[9]).unwrap();
        assert_eq!(a.read(0, 3).unwrap(), [9, 2, 3]);

        let s = SharedBytes::zeroed(&total, 10).unwrap();
        s.write(1, &[1, 2, 3, 4, 5, 6, 7]).unwrap();
        assert_eq!(s.read(0, 10).unwrap(), [0, 1, 2, 3, 4, 5, 6, 7, 0, 0]);
        assert_eq!(s.load(0).unwrap(), i32::from_le_bytes([0, 1, 2, 3]));
        // Two whole words: index 2 (bytes 8..12) is past the end.
        assert_eq!(s.load(2), Err(BufferError::OutOfRange));
        assert_eq!(s.write(9, &[0, 0]), Err(BufferError::OutOfRange));
    }

    #[test]
    fn atomics() {
        let s = SharedBytes::zeroed(&total(), 8).unwrap();
        assert_eq!(s.update(0, AtomicOp::Add, 5).unwrap(), 0);
        assert_eq!(s.update(0, AtomicOp::Sub, 7).unwrap(), 5);
        assert_eq!(s.load(0).unwrap(), -2);
        assert_eq!(s.update(1, AtomicOp::Or, 0b1010).unwrap(), 0);
        assert_eq!(s.update(1, AtomicOp::And, 0b0110).unwrap(), 0b1010);
        assert_eq!(s.update(1, AtomicOp::Xor, 0b0001).unwrap(), 0b0010);
        assert_eq!(s.update(1, AtomicOp::Exchange, 42).unwrap(), 0b0011);
        assert_eq!(s.compare_exchange(1, 41, 0).unwrap(), 42);
        assert_eq!(s.compare_exchange(1, 42, 7).unwrap(), 42);
        assert_eq!(s.load(1).unwrap(), 7);
        assert_eq!(s.update(0, AtomicOp::Add, i32::MAX).unwrap(), -2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wait_and_notify() {
        let s = SharedBytes::zeroed(&total(), 8).unwrap();
        assert_eq!(s.wait(0, 1, None).await.unwrap(), WaitResult::NotEqual);
        let timed = s.wait(0, 0, Some(Duration::from_millis(10))).await.unwrap();
        assert_eq!(timed, WaitResult::TimedOut);
        assert_eq!(s.notify(0, None).unwrap(), 0, "a timed-out waiter is gone");

        let waiter = {
            let s = s.clone();
            tokio::spawn(async move { s.wait(0, 0, None).await.unwrap() })
        };
        // Until the waiter is registered, notify wakes nobody (the word
        // stays 0, so the waiter always gets to sleep).
        let mut woken = 0;
        while woken == 0 {
            tokio::task::yield_now().await;
            woken = s.notify(0, Some(1)).unwrap();
        }
        assert_eq!(waiter.await.unwrap(), WaitResult::Ok);

        // A dropped (killed) waiter is not counted as woken.
        let dropped = {
            let s = s.clone();
            tokio::spawn(async move { s.wait(1, 0, None).await })
        };
        while s.waiters.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        dropped.abort();
        let _ = dropped.await;
        assert_eq!(s.notify(1, None).unwrap(), 0);
    }
}
