//! What one host can hold past its own `--max-procs`: the kernel's bound
//! on a process's memory mappings (`vm.max_map_count`) and the address
//! space every guest reserves. Guests allocated on demand (past the pool)
//! reach these first: each maps its own memory and stack, about seven
//! mappings (memory: guard, stack region, copy-on-write image, heap, the
//! rest of its reservation; stack: guard page, stack). A fork past either
//! is refused with `EAGAIN` and one line that names the limit and the fix,
//! before anything is mapped — not a trap (`ENOMEM`) after `fork` returned.
//! Pooled guests need no check: the pool maps everything up front.

use super::budget::TooManyProcesses;
use super::caps::{Reserved, TotalMemory, format_size};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Mappings per live guest, allocated on demand (measured: 7.0 for the
/// bench's idle child; a guest with more memories or a grown memory has
/// more, which a recount sees).
pub const MAPS_PER_GUEST: usize = 8;

/// Mappings the host keeps for itself beyond its guests': threads and
/// their stacks, cached fiber stacks (`stacks::KEEP` × 2), code, sockets.
const MARGIN: usize = 4096;

/// A recount of `/proc/self/maps` near the limit is at most this often: it
/// reads every mapping (tens of milliseconds at 60,000).
const RECOUNT: Duration = Duration::from_millis(100);

/// The address space a process has (47 bits), less room for the host.
const ADDRESS_SPACE: u64 = (1 << 47) - (1 << 40);

const SYSCTL: &str = "/proc/sys/vm/max_map_count";

/// The host-wide checks a wasm fork passes before it is charged.
pub struct Capacity {
    /// Live processes the address space holds, each reserving its memory
    /// (`--max-memory` and its guards) and stack.
    by_address: u32,
    /// `None` when the pool maps everything up front, or the kernel does
    /// not say its limit.
    maps: Option<Mutex<Counted>>,
    /// Said once per stretch of refusals.
    warned: AtomicBool,
    /// `--max-procs`, for the limit to suggest.
    max_procs: u32,
    /// Reads `vm.max_map_count` (a fixed number in tests).
    read_limit: fn() -> Option<usize>,
}

/// The last count of this process's mappings.
struct Counted {
    /// `vm.max_map_count`, as read at the count.
    limit: usize,
    maps: usize,
    /// Live processes at the count.
    live: u32,
    at: Instant,
    /// Whether that count refused a fork: then the next is not before
    /// `RECOUNT`, so that forks refused in a loop cost no recount each.
    refused: bool,
}

impl Capacity {
    /// The checks for a host whose guests are allocated on demand
    /// (`on_demand`), each reserving `per_guest` bytes of address space.
    pub fn new(on_demand: bool, per_guest: u64, max_procs: u32) -> Capacity {
        let by_address = match on_demand {
            true => u32::try_from(ADDRESS_SPACE / per_guest.max(1)).unwrap_or(u32::MAX),
            false => u32::MAX,
        };
        let maps = on_demand
            .then(|| {
                Some(Counted {
                    limit: max_map_count()?,
                    maps: count_maps()?,
                    live: 0,
                    at: Instant::now(),
                    refused: false,
                })
            })
            .flatten()
            .map(Mutex::new);
        Capacity {
            by_address,
            maps,
            warned: AtomicBool::new(false),
            max_procs,
            read_limit: max_map_count,
        }
    }

    /// One line, at start-up, if `max_procs` guests cannot all fit.
    pub fn warn_if_short(&self, max_memory: u64) {
        let max_procs = self.max_procs;
        if max_procs > self.by_address {
            tracing::warn!(
                "`--max-procs {max_procs}` guests cannot all reserve `--max-memory {}` of \
                 address space: at most {} fit; lower `--max-memory` for more",
                format_size(max_memory),
                self.by_address
            );
        }
        let Some(counted) = &self.maps else { return };
        let limit = counted.lock().unwrap().limit;
        let needed = needed_maps(max_procs);
        if needed > limit {
            tracing::warn!(
                "`--max-procs {max_procs}` needs about {needed} memory mappings, and the kernel \
                 allows {limit} (at most about {} guests): raise it with `sudo sysctl -w \
                 vm.max_map_count={}`",
                limit.saturating_sub(MARGIN) / MAPS_PER_GUEST,
                suggested(needed)
            );
        }
    }

    /// Admits one more guest beside `live` processes, or refuses it: it
    /// must fit the address space and the kernel's mappings, and the
    /// `needs` bytes of linear memory it starts with are taken from `total`
    /// (`--max-total-memory`) now, given back if it never starts.
    pub fn admit(
        &self,
        live: u32,
        total: &Arc<TotalMemory>,
        needs: u64,
    ) -> Result<Option<Reserved>, TooManyProcesses> {
        self.fits(live)?;
        let reserved = self.reserve(total, needs)?;
        // Admitted: the next refusal is a new stretch, and says so.
        self.warned.store(false, Ordering::Relaxed);
        Ok(reserved)
    }

    /// Whether one more guest fits the address space and the mappings.
    fn fits(&self, live: u32) -> Result<(), TooManyProcesses> {
        if live >= self.by_address {
            return self.refuse(format!(
                "no address space left for another guest: {} guests each reserve their \
                 `--max-memory`; lower it for more",
                self.by_address
            ));
        }
        let Some(counted) = &self.maps else {
            return Ok(());
        };
        let mut c = counted.lock().unwrap_or_else(|e| e.into_inner());
        let fits = |c: &Counted| {
            let more = live.saturating_sub(c.live) as usize * MAPS_PER_GUEST;
            c.maps + more + MAPS_PER_GUEST + MARGIN <= c.limit
        };
        let recount_due = !c.refused || c.at.elapsed() >= RECOUNT;
        if !fits(&c) && recount_due {
            // The estimate is near the limit: count what is really mapped
            // (each guest's share is an estimate, guests that ended gave
            // theirs back, and the limit may have been raised).
            if let (Some(limit), Some(maps)) = ((self.read_limit)(), super::blocking(count_maps)) {
                *c = Counted {
                    limit,
                    maps,
                    live,
                    at: Instant::now(),
                    refused: false,
                };
            }
        }
        if fits(&c) {
            return Ok(());
        }
        c.refused = true;
        let (limit, maps) = (c.limit, c.maps);
        drop(c);
        self.refuse(format!(
            "the kernel's limit on memory mappings is reached ({maps} of vm.max_map_count \
             {limit}, and each guest takes about {MAPS_PER_GUEST}): raise it with `sudo sysctl -w \
             vm.max_map_count={}`",
            suggested(needed_maps(self.max_procs).max(limit.saturating_mul(2)))
        ))
    }

    /// Takes the `needs` bytes of linear memory a guest starts with from
    /// `total`: refused here, not trapped at its instantiation.
    fn reserve(
        &self,
        total: &Arc<TotalMemory>,
        needs: u64,
    ) -> Result<Option<Reserved>, TooManyProcesses> {
        if needs == 0 {
            return Ok(None);
        }
        if let Some(reserved) = total.reserve(needs) {
            return Ok(Some(reserved));
        }
        let used = total.used();
        self.refuse(format!(
            "all guests together have {} of linear memory, and another needs {} more than \
             the host's `--max-total-memory` of {}: raise it for more",
            format_size(used),
            format_size(used.saturating_add(needs).saturating_sub(total.limit())),
            format_size(total.limit())
        ))
    }

    fn refuse<T>(&self, why: String) -> Result<T, TooManyProcesses> {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!("fork refused (EAGAIN): {why}");
        }
        Err(TooManyProcesses::Capacity(why))
    }
}

/// Mappings `procs` guests need, with the host's own.
fn needed_maps(procs: u32) -> usize {
    (procs as usize).saturating_mul(MAPS_PER_GUEST) + MARGIN
}

/// A round `vm.max_map_count` of at least `needed`.
fn suggested(needed: usize) -> usize {
    needed.checked_next_power_of_two().unwrap_or(usize::MAX)
}

fn max_map_count() -> Option<usize> {
    std::fs::read_to_string(SYSCTL).ok()?.trim().parse().ok()
}

/// This process's mappings: the lines of `/proc/self/maps`.
fn count_maps() -> Option<usize> {
    use std::io::Read;
    let mut file = std::fs::File::open("/proc/self/maps").ok()?;
    let mut buf = vec![0u8; 1 << 16];
    let mut lines = 0;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Some(lines),
            Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host whose kernel allows `limit` mappings, of which `maps` were
    /// counted at the start.
    fn counted(read_limit: fn() -> Option<usize>, maps: usize) -> Capacity {
        Capacity {
            by_address: u32::MAX,
            maps: Some(Mutex::new(Counted {
                limit: read_limit().unwrap(),
                maps,
                live: 0,
                at: Instant::now(),
                refused: false,
            })),
            warned: AtomicBool::new(false),
            max_procs: 100_000,
            read_limit,
        }
    }

    /// Admits `live` + 1 with no memory to take.
    fn admit(c: &Capacity, live: u32) -> Result<(), TooManyProcesses> {
        c.admit(live, &TotalMemory::new(0), 0).map(drop)
    }

    /// Far from the limit, a fork is admitted on the estimate alone; near
    /// it, on a count of this process's mappings.
    #[test]
    fn near_the_limit_the_mappings_are_counted() {
        let c = counted(|| Some(65_530), 200);
        assert!(admit(&c, 0).is_ok());
        assert!(admit(&c, 7_000).is_ok());
        // 200 + 7,700 × 8 + 8 + 4,096 > 65,530: this test process, counted,
        // has far fewer.
        assert!(admit(&c, 7_700).is_ok());
        let counted = c.maps.as_ref().unwrap().lock().unwrap().maps;
        assert!(counted < 4_000, "{counted}");
    }

    /// Past the limit a fork is refused with the sysctl that would raise
    /// it (enough for `--max-procs`), and refused forks in a loop do not
    /// each count again.
    #[test]
    fn forks_stop_before_the_kernel_s_mapping_limit() {
        let c = counted(|| Some(1_000), 0);
        let err = admit(&c, 10).unwrap_err().to_string();
        assert!(err.contains("vm.max_map_count 1000"), "{err}");
        assert!(
            err.contains("sudo sysctl -w vm.max_map_count=1048576"),
            "{err}"
        );
        let at = c.maps.as_ref().unwrap().lock().unwrap().at;
        assert!(admit(&c, 10).is_err());
        assert_eq!(c.maps.as_ref().unwrap().lock().unwrap().at, at);
    }

    /// Guests that reserve much address space stop where it ends.
    #[test]
    fn forks_stop_where_the_address_space_ends() {
        let c = Capacity::new(true, 1 << 40, 1_000);
        assert_eq!(c.by_address, 127);
        assert!(admit(&c, 126).is_ok());
        let err = admit(&c, 127).unwrap_err().to_string();
        assert!(err.contains("--max-memory"), "{err}");
    }

    /// A fork whose module needs more memory than is left is refused,
    /// naming the flag.
    #[test]
    fn forks_stop_at_the_total_memory() {
        let c = Capacity::new(false, 0, 10);
        let total = TotalMemory::new(10 << 20);
        let first = c.admit(0, &total, 6 << 20).unwrap();
        // Taken at the fork: a second fork does not fit until it ends.
        let err = c.admit(1, &total, 6 << 20).unwrap_err().to_string();
        assert!(err.contains("--max-total-memory"), "{err}");
        drop(first);
        assert!(c.admit(0, &total, 6 << 20).is_ok());
    }

    #[test]
    fn suggested_limits_are_round() {
        assert_eq!(suggested(needed_maps(100_000)), 1 << 20);
        assert_eq!(suggested(65_536), 65_536);
    }
}
