//! What a process may use beyond its own instance: OS programs, the network
//! and memory. A forked child gets its parent's capabilities, never more.

use super::net::NetPolicy;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// One wasm page: linear memory grows in these.
pub const WASM_PAGE: u64 = 64 * 1024;

/// `bytes` rounded up to whole wasm pages; past the largest multiple a
/// u64 holds, that multiple (a guest's or a flag's size never wraps).
pub fn whole_pages(bytes: u64) -> u64 {
    bytes
        .checked_next_multiple_of(WASM_PAGE)
        .unwrap_or(u64::MAX - u64::MAX % WASM_PAGE)
}

/// Everything a process was granted, shared with the children it forks.
/// (No `Default`: every grant is chosen, never a permissive default.)
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// Which OS programs it may start (`--allow-spawn`).
    pub spawn: SpawnPolicy,
    /// Which addresses it may use (`--allow-net`).
    pub net: Arc<NetPolicy>,
    /// The most bytes of linear memory it may have, over all its memories
    /// (`--max-memory`).
    pub max_memory: u64,
    /// Which modules it may fork (`--allow-fork`).
    pub fork: ForkPolicy,
    /// Its other limits (`--max-cpu-ms`, `--max-resources`, and what its OS
    /// children get).
    pub limits: Limits,
}

/// The most host resources (handles in its table) a process holds at
/// once, by default: about 10 MB of host memory at worst, where wasmtime's
/// own default (1,000,000) would let each guest take 100 MB.
pub const DEFAULT_MAX_RESOURCES: u32 = 100_000;

/// `--max-resources` when not given: [`DEFAULT_MAX_RESOURCES`], or enough
/// for a parent to hold a handle to each of `max_procs` processes.
pub fn default_max_resources(max_procs: u32) -> u32 {
    DEFAULT_MAX_RESOURCES.max(max_procs.saturating_add(10_000))
}

/// A process's limits besides linear memory (the WIT's `limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CPU time in milliseconds (`--max-cpu-ms`).
    pub max_cpu_ms: Option<u64>,
    /// Entries in its resource table (`--max-resources`).
    pub max_resources: u32,
    /// `RLIMIT_AS` of its OS children.
    pub max_address_space: Option<u64>,
    /// `RLIMIT_NOFILE` of its OS children.
    pub max_open_files: Option<u64>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_cpu_ms: None,
            max_resources: DEFAULT_MAX_RESOURCES,
            max_address_space: None,
            max_open_files: None,
        }
    }
}

/// The limits a fork or spawn asks for (`none`: the parent's own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requested {
    /// Bytes of linear memory.
    pub max_memory: Option<u64>,
    /// Milliseconds of CPU time.
    pub max_cpu_ms: Option<u64>,
    /// Entries in its resource table.
    pub max_resources: Option<u32>,
    /// `RLIMIT_AS` of an OS child.
    pub max_address_space: Option<u64>,
    /// `RLIMIT_NOFILE` of an OS child.
    pub max_open_files: Option<u64>,
}

impl Capabilities {
    /// A child's capabilities: ours, with the limits it asks for, none of
    /// them more than ours. `Err` says which option asked for too much and
    /// the most it may be.
    pub fn narrowed(&self, asked: &Requested) -> Result<Capabilities, String> {
        /// `asked` if it is within `ours` (`None`: unlimited).
        fn within<T: Copy + PartialOrd + std::fmt::Display>(
            option: &str,
            asked: Option<T>,
            ours: Option<T>,
        ) -> Result<Option<T>, String> {
            match (asked, ours) {
                (Some(a), Some(o)) if a > o => Err(format!(
                    "`limits.{option}` asks for {}, more than this process's own {}",
                    show(option, a),
                    show(option, o)
                )),
                (Some(a), _) => Ok(Some(a)),
                (None, o) => Ok(o),
            }
        }
        /// An OS limit: no limit of ours is the host's own, so a child may
        /// not raise an OS child's limit above what the host itself runs
        /// under (as root, setrlimit would let it). Asking for nothing
        /// stays nothing: the child's OS children keep posix_spawn.
        fn within_host(
            option: &str,
            asked: Option<u64>,
            ours: Option<u64>,
            resource: libc::__rlimit_resource_t,
        ) -> Result<Option<u64>, String> {
            let bound = ours.or_else(|| asked.and(super::unix::soft_rlimit(resource)));
            within(option, asked, bound)
        }
        /// Sizes as `--max-memory` takes them (`16M`).
        fn show<T: std::fmt::Display>(option: &str, value: T) -> String {
            let text = value.to_string();
            match (option, text.parse::<u64>()) {
                ("max-memory" | "max-address-space", Ok(bytes)) => format_size(bytes),
                _ => text,
            }
        }
        let mut caps = self.clone();
        let memory = asked.max_memory.map(whole_pages);
        caps.max_memory =
            within("max-memory", memory, Some(self.max_memory))?.expect("ours is set");
        let l = &self.limits;
        caps.limits = Limits {
            max_cpu_ms: within("max-cpu-ms", asked.max_cpu_ms, l.max_cpu_ms)?,
            max_resources: within("max-resources", asked.max_resources, Some(l.max_resources))?
                .expect("ours is set"),
            max_address_space: within_host(
                "max-address-space",
                asked.max_address_space,
                l.max_address_space,
                libc::RLIMIT_AS,
            )?,
            max_open_files: within_host(
                "max-open-files",
                asked.max_open_files,
                l.max_open_files,
                libc::RLIMIT_NOFILE,
            )?,
        };
        Ok(caps)
    }
}

/// The error a host check returns to end a process on `Limit` (a trap
/// that `wasm::run` turns into the limit's exit).
#[derive(Debug)]
pub struct LimitReached(pub Limit);

impl std::fmt::Display for LimitReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reached its {}", self.0.what())
    }
}

impl std::error::Error for LimitReached {}

/// A limit a process reached, which ended it (its parent's `error` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Limit {
    /// `max-memory`: a grow was refused, and the guest then aborted.
    Memory = 1,
    /// `max-cpu-ms`.
    Cpu = 2,
    /// `max-resources`.
    Resources = 3,
}

impl Limit {
    /// The limit stored as a byte (`Proc::limit_reached`), if any.
    pub fn from_u8(byte: u8) -> Option<Limit> {
        [Limit::Memory, Limit::Cpu, Limit::Resources]
            .into_iter()
            .find(|l| *l as u8 == byte)
    }

    /// The error code the parent sees (Node's Worker names a memory limit
    /// `ERR_WORKER_OUT_OF_MEMORY`).
    pub fn code(self) -> &'static str {
        match self {
            Limit::Memory => "ERR_WORKER_OUT_OF_MEMORY",
            Limit::Cpu => "ERR_CPU_LIMIT",
            Limit::Resources => "ERR_RESOURCE_LIMIT",
        }
    }

    /// The option and flag that raise it.
    pub fn option(self) -> &'static str {
        match self {
            Limit::Memory => "`limits.max-memory` (at the top `--max-memory`)",
            Limit::Cpu => "`limits.max-cpu-ms` (at the top `--max-cpu-ms`)",
            Limit::Resources => "`limits.max-resources` (at the top `--max-resources`)",
        }
    }

    /// What it limits, for messages.
    pub fn what(self) -> &'static str {
        match self {
            Limit::Memory => "memory limit",
            Limit::Cpu => "CPU time limit",
            Limit::Resources => "resource limit",
        }
    }
}

/// A directory made visible to a guest (`--dir HOST::GUEST`, or
/// `--ro-dir HOST::GUEST` for a read-only one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
    /// Whether the guest may only read (wasmtime-wasi's read-only
    /// permissions: no create, write, truncate, rename or remove).
    pub read_only: bool,
}

impl Preopen {
    /// The flag that grants it, for messages: `--dir HOST` or `--ro-dir HOST`.
    pub fn flag(&self) -> String {
        let flag = if self.read_only { "--ro-dir" } else { "--dir" };
        format!("{flag} {}", self.host.display())
    }
}

/// Which module files a guest may fork (`host run --allow-fork[=DIR,...]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForkPolicy {
    /// Any path the host can read.
    All,
    /// Only modules below these directories: the root module's own, and
    /// those `--allow-fork=DIR,...` names.
    Below(Vec<AllowedDir>),
}

/// A directory forks may come from, as given (made absolute, `..`
/// resolved) and with its symlinks resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedDir {
    /// As given, made absolute, `..` resolved by name.
    pub lexical: PathBuf,
    /// With every symlink resolved.
    pub canonical: PathBuf,
}

impl AllowedDir {
    /// Resolves `dir` both ways (it must exist).
    pub fn new(dir: &Path) -> std::io::Result<AllowedDir> {
        Ok(AllowedDir {
            lexical: lexical(dir),
            canonical: dir.canonicalize()?,
        })
    }
}

/// `path` made absolute against the host's working directory, with `.` and
/// `..` resolved by name alone — no file system access.
pub fn lexical(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

impl ForkPolicy {
    /// Whether `module` may be forked. Decided on its name first, with no
    /// file system access: a path outside every allowed directory is
    /// refused before anything could tell whether it exists. Then on what
    /// it resolves to, so a symlink cannot lead out; a module that does
    /// not exist inside an allowed directory is left to fail as ENOENT.
    pub fn allows(&self, module: &Path) -> bool {
        let ForkPolicy::Below(dirs) = self else {
            return true;
        };
        let named = lexical(module);
        let inside = |p: &Path| dirs.iter().any(|d| p.starts_with(&d.canonical));
        if !dirs
            .iter()
            .any(|d| named.starts_with(&d.lexical) || named.starts_with(&d.canonical))
        {
            return false;
        }
        match named.canonicalize() {
            Ok(real) => inside(&real),
            Err(_) => true,
        }
    }

    /// The directory to name in `--allow-fork` for `module`.
    pub fn hint(module: &Path) -> String {
        let dir = lexical(module);
        let dir = dir.parent().unwrap_or(Path::new("/"));
        format!(
            "`host run --allow-fork={}` (or `--allow-fork` for any module)",
            dir.display()
        )
    }
}

/// Parses a size: bytes, or a number with a `K`, `M`, `G` or `T` suffix
/// (powers of 1024; `KiB`, `MB` and friends mean the same).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is not a size: use bytes or a K/M/G suffix, e.g. `512M`");
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[digits.len()..];
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(bad()),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(1 << shift).ok_or_else(bad)
}

/// Formats a byte count as `parse_size` reads it (`512M`), or, when it is
/// not a whole number of any unit from a mebibyte up, to one decimal
/// (`600.1M`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u32, &str); 3] = [(40, "T"), (30, "G"), (20, "M")];
    if bytes < 1 << 20 {
        return match bytes % 1024 {
            0 if bytes > 0 => format!("{}K", bytes >> 10),
            _ => format!("{bytes}"),
        };
    }
    let exact = UNITS
        .iter()
        .find(|(shift, _)| bytes.is_multiple_of(1 << shift));
    if let Some((shift, unit)) = exact.filter(|(shift, _)| bytes >= 1 << shift) {
        return format!("{}{unit}", bytes >> shift);
    }
    let (shift, unit) = UNITS.iter().find(|(shift, _)| bytes >= 1 << shift).unwrap();
    format!("{:.1}{unit}", bytes as f64 / (1u64 << shift) as f64)
}

/// The linear memory of every guest together, bounded by
/// `--max-total-memory`.
#[derive(Debug)]
pub struct TotalMemory {
    limit: u64,
    used: std::sync::atomic::AtomicU64,
}

impl TotalMemory {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<TotalMemory> {
        Arc::new(TotalMemory {
            limit,
            used: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Three quarters of the machine's memory (`MemTotal`): what a host
    /// may give its guests by default, leaving room for itself and others.
    pub fn default_limit() -> u64 {
        let total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|info| {
                let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024)
            });
        total.map_or(u64::MAX, |bytes| bytes / 4 * 3)
    }

    /// The budget, in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes taken now.
    pub fn used(&self) -> u64 {
        self.used.load(std::sync::atomic::Ordering::Acquire)
    }

    fn take(&self, bytes: u64) -> bool {
        use std::sync::atomic::Ordering;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&after| after <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: u64) {
        self.used
            .fetch_sub(bytes, std::sync::atomic::Ordering::AcqRel);
    }

    /// Takes `bytes` now for a guest that will grow into them
    /// ([`MemoryLimiter::prepaid`]); `None` if they do not fit.
    pub fn reserve(self: &Arc<Self>, bytes: u64) -> Option<Reserved> {
        self.take(bytes).then(|| Reserved {
            total: self.clone(),
            bytes,
        })
    }
}

/// Bytes of [`TotalMemory`] taken for a guest before it starts, so that
/// forks in a row cannot all pass a check its instantiation then fails;
/// given back if it never starts.
#[derive(Debug)]
pub struct Reserved {
    total: Arc<TotalMemory>,
    bytes: u64,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.total.give_back(self.bytes);
    }
}

/// Enforces a process's memory limit over all its linear memories, and
/// says so once on stderr when it refuses a `memory.grow` — whatever the
/// guest then does with the failure (most allocators abort with a message
/// that does not name the limit).
pub struct MemoryLimiter {
    max: u64,
    used: u64,
    warned: bool,
    /// "guest `name` (pid N)", for the warning.
    who: String,
    /// The host's budget for all guests, which `used` is charged to too.
    total: Arc<TotalMemory>,
    /// Bytes taken from `total` at the fork, which growth uses first.
    prepaid: u64,
    /// The process it limits: `used` is published in its metrics, and a
    /// refusal marked as the limit it reached.
    proc: Option<Arc<super::proc::Proc>>,
}

impl MemoryLimiter {
    /// Publishes the bytes in use in `proc`'s metrics as they grow, and
    /// marks it when a grow is refused.
    pub fn for_process(mut self, proc: Arc<super::proc::Proc>) -> MemoryLimiter {
        self.proc = Some(proc);
        self
    }

    /// Grows into `reserved` before it takes from the host's budget.
    pub fn prepaid(mut self, reserved: Option<Reserved>) -> MemoryLimiter {
        if let Some(mut reserved) = reserved {
            // The bytes move here; this limiter's drop gives them back.
            self.prepaid += std::mem::take(&mut reserved.bytes);
        }
        self
    }

    /// A limiter of `max` bytes for the process `who`, charged to `total` too.
    pub fn new(max: u64, who: String, total: Arc<TotalMemory>) -> MemoryLimiter {
        MemoryLimiter {
            max,
            used: 0,
            warned: false,
            who,
            total,
            prepaid: 0,
            proc: None,
        }
    }

    fn refuse(&mut self, what: std::fmt::Arguments<'_>) -> wasmtime::Result<bool> {
        if let Some(proc) = &self.proc {
            proc.reached(Limit::Memory);
        }
        if !self.warned {
            self.warned = true;
            tracing::warn!("{} was refused memory: {what}", self.who);
        }
        Ok(false)
    }
}

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        self.total.give_back(self.used + self.prepaid);
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Past the memory's own declared maximum wasmtime refuses anyway;
        // that is the guest's own limit, not ours to report.
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let delta = desired.saturating_sub(current) as u64;
        let total = self.used.saturating_add(delta);
        if total > self.max {
            let (total, max) = (whole_pages(total), self.max);
            return self.refuse(format_args!(
                "growing to {} of linear memory would pass its limit of {}; \
                 raise it with {}",
                format_size(total),
                format_size(max),
                match self.proc.as_ref().is_some_and(|p| p.parent.is_some()) {
                    true => "its fork option `limits.max-memory` (at most its parent's)",
                    false => "`--max-memory SIZE`",
                },
            ));
        }
        let prepaid = delta.min(self.prepaid);
        if !self.total.take(delta - prepaid) {
            let limit = self.total.limit;
            return self.refuse(format_args!(
                "all guests together would pass the host's limit of {} of linear memory; \
                 raise it with `--max-total-memory SIZE`",
                format_size(limit),
            ));
        }
        // A grow we allowed that then fails (the OS is out of memory) stays
        // counted: conservative, and it only happens once memory is short.
        self.prepaid -= prepaid;
        self.used = total;
        if let Some(proc) = &self.proc {
            proc.memory
                .store(total, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The pool bounds its tables itself; on demand, nothing else would.
        Ok(desired <= crate::hive::MAX_TABLE_ELEMENTS)
    }
}

/// Which OS programs a guest may start (`host run --allow-spawn[=...]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SpawnPolicy {
    /// None (the default, as Deno).
    #[default]
    Deny,
    /// Any program.
    All,
    /// Only these programs, by their canonical path.
    Only(Vec<AllowedProgram>),
}

/// One `--allow-spawn` entry, resolved when the host starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedProgram {
    /// As the user wrote it (`ls`, `/bin/ls`).
    pub given: String,
    /// The file that will run: the entry's path, or the first `given` in
    /// the host's `PATH`, with every symlink resolved.
    pub canonical: PathBuf,
}

impl AllowedProgram {
    /// Resolves an entry: a path as is, a bare name over the host's `PATH`.
    pub fn new(given: &str) -> Result<AllowedProgram, String> {
        if given.is_empty() {
            return Err(
                "an empty list allows nothing: give `--allow-spawn` alone for any \
                        program, or name programs"
                    .into(),
            );
        }
        let found = resolve(given, None).ok_or_else(|| {
            format!("`{given}`: no such program (looked for it in the host's `PATH`)")
        })?;
        let canonical = found
            .canonicalize()
            .map_err(|e| format!("`{given}`: {e}"))?;
        Ok(AllowedProgram {
            given: given.to_owned(),
            canonical,
        })
    }
}

/// Why a program may not run.
#[derive(Debug)]
pub struct Denied;

impl SpawnPolicy {
    /// Decides whether `program` may run with `path_env` (the child's
    /// `PATH`), and returns the file to execute — the decision is made on
    /// exactly what will run.
    ///
    /// With a list, a bare name is looked up in the *host's* `PATH`, never
    /// in one the guest chose (its directories may be guest-writable: a
    /// symlink named `echo` there could be a shell), and the result must be
    /// one of the allowed files after every symlink is resolved; that
    /// resolved file is what runs. Without a list (`All`) the lookup is
    /// Node's: the child's `PATH`, else the host's.
    pub fn program(
        &self,
        program: &str,
        path_env: Option<&str>,
    ) -> Result<Option<PathBuf>, Denied> {
        match self {
            SpawnPolicy::Deny => Err(Denied),
            SpawnPolicy::All => Ok(resolve(program, path_env)),
            SpawnPolicy::Only(list) => {
                let canonical = resolve(program, None)
                    .and_then(|p| p.canonicalize().ok())
                    .ok_or(Denied)?;
                list.iter()
                    .any(|a| a.canonical == canonical)
                    .then_some(Some(canonical))
                    .ok_or(Denied)
            }
        }
    }

    /// The flag that would allow `program`, for error messages.
    pub fn hint(program: &str) -> String {
        format!("`host run --allow-spawn={program}` (or `--allow-spawn` for any program)")
    }
}

/// Finds `program` as `execvp` would: a name with a `/` is a path; else the
/// first executable file of that name in `path` (the child's `PATH`), or in
/// the host's `PATH` when the child's environment has none.
fn resolve(program: &str, path: Option<&str>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') {
        return Some(program.into());
    }
    let host_path = std::env::var_os("PATH");
    let path = match path {
        Some(p) => std::ffi::OsString::from(p),
        None => host_path.unwrap_or_else(|| "/usr/bin:/bin".into()),
    };
    let candidates: Vec<_> = std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .collect();
    // Prefer an executable; fall back to a non-executable file so that exec
    // reports EACCES, as execvp does.
    candidates
        .iter()
        .find(|c| {
            std::fs::metadata(c).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .or_else(|| candidates.iter().find(|c| c.is_file()))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes round up to pages and never wrap, however large.
    #[test]
    fn whole_pages_saturate() {
        assert_eq!(whole_pages(0), 0);
        assert_eq!(whole_pages(1), WASM_PAGE);
        assert_eq!(whole_pages(WASM_PAGE), WASM_PAGE);
        assert_eq!(whole_pages(u64::MAX), u64::MAX - u64::MAX % WASM_PAGE);
    }

    #[test]
    fn policy() {
        assert!(SpawnPolicy::Deny.program("ls", None).is_err());
        assert!(SpawnPolicy::All.program("anything", None).is_ok());
        let only = SpawnPolicy::Only(vec![
            AllowedProgram::new("echo").unwrap(),
            AllowedProgram::new("/bin/sh").unwrap(),
        ]);
        let echo = only.program("echo", None).unwrap().unwrap();
        assert_eq!(echo, AllowedProgram::new("echo").unwrap().canonical);
        // The guest's PATH does not decide which `echo` runs.
        assert_eq!(only.program("echo", Some("/nowhere")).unwrap(), Some(echo));
        assert!(only.program("/bin/sh", None).is_ok());
        assert!(only.program("ls", None).is_err());
        assert!(only.program("./echo", None).is_err());
        assert!(AllowedProgram::new("").is_err());
        assert!(AllowedProgram::new("no-such-program-anywhere").is_err());
    }

    use wasmtime::ResourceLimiter;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("4g"), Ok(4 << 30));
        for bad in ["", "M", "1.5G", "-1", "12Q", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(512 << 20), "512M");
        assert_eq!(format_size(3 << 30), "3G");
        assert_eq!(format_size(1000), "1000");
        assert_eq!(format_size(64 << 10), "64K");
        assert_eq!(format_size(1536 << 20), "1536M");
        assert_eq!(format_size((600 << 20) + (100 << 10)), "600.1M");
    }

    #[test]
    fn limit_is_over_all_memories() {
        let mut limiter =
            MemoryLimiter::new(10 * WASM_PAGE, "guest".into(), TotalMemory::new(u64::MAX));
        let page = WASM_PAGE as usize;
        assert!(limiter.memory_growing(0, 6 * page, None).unwrap());
        assert!(limiter.memory_growing(0, 4 * page, None).unwrap());
        assert!(!limiter.memory_growing(4 * page, 5 * page, None).unwrap());
        assert!(limiter.warned);
        // The guest's own declared maximum is not our limit.
        let mut own = MemoryLimiter::new(u64::MAX, "guest".into(), TotalMemory::new(u64::MAX));
        assert!(!own.memory_growing(page, 3 * page, Some(2 * page)).unwrap());
        assert!(!own.warned);
        // The host-wide budget holds over processes, and is given back.
        let host = TotalMemory::new(8 * WASM_PAGE);
        let mut a = MemoryLimiter::new(u64::MAX, "a".into(), host.clone());
        let mut b = MemoryLimiter::new(u64::MAX, "b".into(), host.clone());
        assert!(a.memory_growing(0, 6 * page, None).unwrap());
        assert!(!b.memory_growing(0, 4 * page, None).unwrap());
        drop(a);
        assert!(b.memory_growing(0, 4 * page, None).unwrap());
    }

    /// Memory reserved at the fork is what the guest grows into first;
    /// all of it is given back when it ends, used or not.
    #[test]
    fn a_guest_grows_into_what_its_fork_reserved() {
        let page = WASM_PAGE as usize;
        let host = TotalMemory::new(8 * WASM_PAGE);
        let reserved = host.reserve(4 * WASM_PAGE).unwrap();
        assert!(host.reserve(5 * WASM_PAGE).is_none());
        let mut a = MemoryLimiter::new(u64::MAX, "a".into(), host.clone()).prepaid(Some(reserved));
        assert_eq!(host.used(), 4 * WASM_PAGE);
        assert!(a.memory_growing(0, 3 * page, None).unwrap());
        assert_eq!(host.used(), 4 * WASM_PAGE);
        assert!(a.memory_growing(3 * page, 6 * page, None).unwrap());
        assert_eq!(host.used(), 6 * WASM_PAGE);
        drop(a);
        assert_eq!(host.used(), 0);
        drop(host.reserve(WASM_PAGE));
        assert_eq!(host.used(), 0);
    }
}
