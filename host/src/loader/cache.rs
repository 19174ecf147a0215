//! The on-disk cache of compiled components.
//!
//! Compiling a guest with Cranelift costs 25–100 ms for a small Rust guest and
//! seconds for Python or JS guests; loading a precompiled artifact costs well
//! under a millisecond. The layout of the cache directory:
//!
//! - `secret.key`: 32 random bytes, mode 0600, made on first use. It keys
//!   every MAC below, so only this user's hosts can write an entry another
//!   run will accept.
//! - `<key>.cwasm`: a compiled component. `key` is the BLAKE3 of the
//!   engine's compatibility hash (wasmtime version, target, every setting
//!   that changes code), Hive's version and the BLAKE3 of the component's
//!   bytes, so a new host or a new config never loads a stale entry. The
//!   file is wasmtime's serialized artifact followed by a trailer: a keyed
//!   BLAKE3 MAC over the key and the body, then a magic. An entry whose MAC
//!   does not match (truncated, corrupted, copied from another key's file,
//!   crafted without the secret) is removed and rebuilt, never loaded. A hit
//!   is mapped (`Component::deserialize_file`), not read into memory.
//! - `ids/<name>`: what the content of a module file was the last time its
//!   identity (device, inode, size, mtime, ctime, all in ns) was seen, so a
//!   start need not hash the whole module again; and likewise which MAC an
//!   entry file had when it was last verified, so a start need not hash a
//!   40 MB entry again either. `name` and each record's MAC are keyed by
//!   the secret. A file's ctime changes whenever it is written or replaced
//!   and cannot be set back without privileges. Only identities older than
//!   a few seconds are recorded: file times are coarse (a jiffy), so a file
//!   rewritten within one tick of being seen could otherwise keep its
//!   identity.

use crate::runtime::caps::Preopen;
use std::fs::{File, Metadata};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};
use wasmtime::Engine;
use wasmtime::component::Component;

const TRAILER_MAGIC: &[u8; 8] = b"HIVECWM2";
const TRAILER_LEN: usize = 32 + TRAILER_MAGIC.len();
const SECRET_FILE: &str = "secret.key";
const IDS_DIR: &str = "ids";
/// An identity is recorded only once the file is this old (see above).
const ID_SETTLE: Duration = Duration::from_secs(2);
/// Modules and entries at least this big are hashed on all cores.
const PARALLEL_HASH_BYTES: usize = 1 << 20;

/// The BLAKE3 hash of a module's bytes.
pub type ContentHash = [u8; 32];

#[derive(Clone, Copy)]
enum Ns {
    Module = 1,
    Entry = 2,
}

/// A directory of compiled components.
#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    /// `None` once loading or creating the secret failed: the cache is off.
    secret: OnceLock<Option<[u8; 32]>>,
}

/// What a cache lookup found.
pub enum Lookup<A> {
    Hit(A),
    Miss,
    /// The entry existed but failed verification; it has been removed.
    Corrupt(String),
}

/// A module's content hash, and its bytes if they had to be read for it.
pub struct ModuleContent {
    pub hash: ContentHash,
    pub bytes: Option<Vec<u8>>,
}

/// The preopen through which a guest could reach the cache directory (and
/// so its secret), if one does: a guest that can read the secret can forge
/// entries, and one that can write the directory can plant them.
pub fn exposed_by<'a>(cache_dir: &Path, dirs: &'a [Preopen]) -> Option<&'a Preopen> {
    // The directory may not exist yet: compare its nearest existing
    // ancestor's canonical path, plus the rest.
    let canonical = |path: &Path| -> Option<PathBuf> {
        let mut base = path.to_path_buf();
        let mut rest = Vec::new();
        loop {
            if let Ok(real) = base.canonicalize() {
                return Some(rest.iter().rev().fold(real, |p: PathBuf, c| p.join(c)));
            }
            rest.push(base.file_name()?.to_owned());
            base = base.parent()?.to_path_buf();
        }
    };
    let cache = canonical(cache_dir)?;
    dirs.iter().find(|d| {
        d.host
            .canonicalize()
            .is_ok_and(|host| cache.starts_with(&host) || host.starts_with(&cache))
    })
}

/// Deletes the cache's secret: every entry it signed becomes a miss. For a
/// cache a guest could reach (see [`exposed_by`]), once that guest is gone.
pub fn forget_secret(cache_dir: &Path) {
    match std::fs::remove_file(cache_dir.join(SECRET_FILE)) {
        Ok(()) => tracing::debug!("removed the cache secret a guest could reach"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("could not remove the cache secret: {e}"),
    }
}

impl DiskCache {
    pub fn new(dir: PathBuf) -> DiskCache {
        DiskCache {
            dir,
            secret: OnceLock::new(),
        }
    }

    /// The default directory: `$XDG_CACHE_HOME/hive`, else `~/.cache/hive`.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
            .map(|d| d.join("hive"))
    }

    /// The BLAKE3 of `wasm`.
    pub fn content_hash(wasm: &[u8]) -> ContentHash {
        let mut hasher = blake3::Hasher::new();
        if wasm.len() >= PARALLEL_HASH_BYTES {
            hasher.update_rayon(wasm);
        } else {
            hasher.update(wasm);
        }
        *hasher.finalize().as_bytes()
    }

    /// The cache key of a module with content `hash` compiled by `engine`.
    pub fn key(engine: &Engine, hash: &ContentHash) -> String {
        struct Blake3Hasher(blake3::Hasher);
        impl Hasher for Blake3Hasher {
            fn finish(&self) -> u64 {
                unreachable!("only written to")
            }
            fn write(&mut self, bytes: &[u8]) {
                self.0.update(bytes);
            }
        }
        let mut hasher = Blake3Hasher(blake3::Hasher::new_derive_key(
            "hive compiled component key v2",
        ));
        engine.precompile_compatibility_hash().hash(&mut hasher);
        hasher.0.update(env!("CARGO_PKG_VERSION").as_bytes());
        hasher.0.update(hash);
        hasher.0.finalize().to_hex().to_string()
    }

    /// The content hash of the module at `path` (whose metadata is `meta`):
    /// from the identity index if this file was seen unchanged before, else
    /// by reading and hashing it (and then recording it).
    pub fn module_content(
        &self,
        path: &Path,
        meta: &Metadata,
    ) -> Result<ModuleContent, crate::error::LoadError> {
        let id = identity(meta);
        let secret = self.secret();
        if let Some(secret) = secret
            && let Some(hash) = self.lookup_id(secret, Ns::Module, &id)
        {
            return Ok(ModuleContent { hash, bytes: None });
        }
        let bytes = super::file::read_module(path)?;
        let hash = Self::content_hash(&bytes);
        // Record the identity only if the file is settled and was not
        // changed while we read it.
        if let Some(secret) = secret
            && settled(meta)
            && std::fs::metadata(path).is_ok_and(|now| identity(&now) == id)
        {
            self.record_id(secret, Ns::Module, &id, &hash);
        }
        Ok(ModuleContent {
            hash,
            bytes: Some(bytes),
        })
    }

    /// The record of `identity` in namespace `ns`: a module's content
    /// hash (`Ns::Module`), or the MAC an entry was verified to have
    /// (`Ns::Entry`).
    fn id_path(&self, secret: &[u8; 32], ns: Ns, identity: &[u8]) -> PathBuf {
        let name = blake3::Hasher::new_keyed(secret)
            .update(b"hive identity name v2")
            .update(&[ns as u8])
            .update(identity)
            .finalize();
        self.dir.join(IDS_DIR).join(&name.to_hex()[..32])
    }

    fn id_mac(secret: &[u8; 32], ns: Ns, identity: &[u8], value: &[u8; 32]) -> blake3::Hash {
        blake3::Hasher::new_keyed(secret)
            .update(b"hive identity record v2")
            .update(&[ns as u8])
            .update(identity)
            .update(value)
            .finalize()
    }

    fn lookup_id(&self, secret: &[u8; 32], ns: Ns, identity: &[u8]) -> Option<[u8; 32]> {
        let record = std::fs::read(self.id_path(secret, ns, identity)).ok()?;
        let (value, mac) = record.split_at_checked(32)?;
        let value: [u8; 32] = value.try_into().ok()?;
        let mac: [u8; 32] = mac.try_into().ok()?;
        // `blake3::Hash`'s equality is constant-time.
        (Self::id_mac(secret, ns, identity, &value) == mac).then_some(value)
    }

    fn record_id(&self, secret: &[u8; 32], ns: Ns, identity: &[u8], value: &[u8; 32]) {
        let mut record = value.to_vec();
        record.extend_from_slice(Self::id_mac(secret, ns, identity, value).as_bytes());
        let path = self.id_path(secret, ns, identity);
        if let Err(e) = self
            .create_dir(&self.dir.join(IDS_DIR))
            .and_then(|()| write_atomically(&path, &record))
        {
            tracing::debug!("failed to record a module identity: {e}");
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.cwasm"))
    }

    fn create_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }

    /// This user's cache secret: read, or made on first use. `None` (the
    /// cache is off, with a warning) if neither works.
    fn secret(&self) -> Option<&[u8; 32]> {
        self.secret
            .get_or_init(|| match self.load_or_create_secret() {
                Ok(secret) => Some(secret),
                Err(e) => {
                    tracing::warn!(
                        "the compiled-component cache is off: no secret in {}: {e:#}",
                        self.dir.display()
                    );
                    None
                }
            })
            .as_ref()
    }

    fn load_or_create_secret(&self) -> anyhow::Result<[u8; 32]> {
        let path = self.dir.join(SECRET_FILE);
        for _ in 0..2 {
            match File::open(&path) {
                Ok(mut file) => {
                    let meta = file.metadata()?;
                    let mut secret = [0u8; 32];
                    if meta.permissions().mode() & 0o077 == 0 && meta.len() == 32 {
                        file.read_exact(&mut secret)?;
                        return Ok(secret);
                    }
                    // Readable by others, or not ours: entries keyed by it
                    // prove nothing. Replace it; old entries get rebuilt.
                    tracing::warn!("replacing {}: wrong mode or size", path.display());
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            self.create_dir(&self.dir)?;
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("getrandom: {e}"))?;
            // Write a private temporary file, then link it into place: two
            // hosts starting at once agree on one secret (the loser reads
            // the winner's).
            let tmp = self
                .dir
                .join(format!("{SECRET_FILE}.{}.tmp", std::process::id()));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(&secret)?;
            file.sync_all()?;
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => return Ok(secret),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
        }
        anyhow::bail!("`{}` keeps changing", path.display())
    }

    fn entry_mac(secret: &[u8; 32], key: &str, body: &[u8]) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new_keyed(secret);
        hasher.update(b"hive compiled component entry v2");
        hasher.update(key.as_bytes());
        hasher.update(&(body.len() as u64).to_le_bytes());
        if body.len() >= PARALLEL_HASH_BYTES {
            hasher.update_rayon(body);
        } else {
            hasher.update(body);
        }
        hasher.finalize()
    }

    /// Maps and verifies the entry for `key`.
    pub fn load<A: Artifact>(&self, engine: &Engine, key: &str) -> Lookup<A> {
        let Some(secret) = self.secret() else {
            return Lookup::Miss;
        };
        let path = self.path(key);
        let Ok(file) = File::open(&path) else {
            return Lookup::Miss;
        };
        let corrupt = |why: String| {
            let _ = std::fs::remove_file(&path);
            Lookup::Corrupt(why)
        };
        let Ok(meta) = file.metadata() else {
            return Lookup::Miss;
        };
        let Some(body_len) = (meta.len() as usize).checked_sub(TRAILER_LEN) else {
            return corrupt("shorter than its trailer".into());
        };
        let mut trailer = [0u8; TRAILER_LEN];
        if let Err(e) =
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut trailer, body_len as u64)
        {
            return corrupt(format!("unreadable trailer: {e}"));
        }
        if &trailer[32..] != TRAILER_MAGIC {
            return corrupt("no trailer".into());
        }
        let mac: [u8; 32] = trailer[..32].try_into().unwrap();
        // An entry verified before under this key, whose identity has not
        // changed since (it was not replaced, linked nor written to), need
        // not be hashed again.
        let mut entry_id = identity(&meta);
        entry_id.extend_from_slice(key.as_bytes());
        let start = std::time::Instant::now();
        let known = self
            .lookup_id(secret, Ns::Entry, &entry_id)
            .is_some_and(|known| blake3::Hash::from(known) == mac);
        let verified = known || {
            let map = match map::Map::new(&file) {
                Ok(map) => map,
                Err(e) => return corrupt(format!("cannot be mapped: {e}")),
            };
            let body = &map.bytes()[..body_len];
            Self::entry_mac(secret, key, body) == mac // constant-time
        };
        tracing::debug!(key, bytes = body_len, known, elapsed = ?start.elapsed(), "verified the entry");
        if !verified {
            return corrupt(
                "MAC mismatch: corrupt, or not written by this user's host for this key".into(),
            );
        }
        if !known && settled(&meta) {
            self.record_id(secret, Ns::Entry, &entry_id, &mac);
        }
        // Load through the descriptor just verified, so that a rename over
        // `path` in between cannot substitute another file (without /proc,
        // by path).
        let fd_path = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&file)
        ));
        let load_path = if fd_path.exists() { &fd_path } else { &path };
        let start = std::time::Instant::now();
        match A::deserialize_file(engine, load_path) {
            Ok(component) => {
                tracing::debug!(key, elapsed = ?start.elapsed(), "mapped the entry");
                Lookup::Hit(component)
            }
            Err(e) => corrupt(format!("{e:#}")),
        }
    }

    /// Stores `component` under `key`, atomically (write, then rename), so a
    /// concurrent reader never sees half a file.
    pub fn store<A: Artifact>(&self, key: &str, component: &A) -> anyhow::Result<()> {
        let Some(secret) = self.secret() else {
            anyhow::bail!("the cache has no secret");
        };
        let mut bytes = component.serialize()?;
        let mac = Self::entry_mac(secret, key, &bytes);
        bytes.extend_from_slice(mac.as_bytes());
        bytes.extend_from_slice(TRAILER_MAGIC);
        self.create_dir(&self.dir)?;
        write_atomically(&self.path(key), &bytes)?;
        Ok(())
    }
}

/// Writes `path` as a new private file, then renames it into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A file's identity: what changes whenever its content may have.
fn identity(meta: &Metadata) -> Vec<u8> {
    [
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime() as u64,
        meta.mtime_nsec() as u64,
        meta.ctime() as u64,
        meta.ctime_nsec() as u64,
    ]
    .iter()
    .flat_map(|v| v.to_le_bytes())
    .collect()
}

/// Whether both of the file's times are at least `ID_SETTLE` in the past.
fn settled(meta: &Metadata) -> bool {
    let Ok(now) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) else {
        return false;
    };
    let newest = meta.mtime().max(meta.ctime());
    newest >= 0 && now.as_secs() > newest as u64 + ID_SETTLE.as_secs()
}

/// What the cache holds: compiled components and compiled core modules
/// (wasip1). Their content hashes differ, so their keys never collide.
pub trait Artifact: Sized {
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;
    /// Maps a file written by [`DiskCache::store`] for this engine.
    fn deserialize_file(engine: &Engine, path: &Path) -> wasmtime::Result<Self>;
}

// SAFETY (both impls): the file was written by `DiskCache::store` from
// `serialize` (its keyed MAC, which only this user's hosts can make,
// matched), and the key includes the engine's compatibility hash; wasmtime
// additionally checks the artifact's header against this engine. Entries
// are private files written once and renamed into place, never modified
// in place.
impl Artifact for Component {
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Component::serialize(self)
    }

    #[expect(unsafe_code, reason = "loading precompiled code is unsafe by nature")]
    fn deserialize_file(engine: &Engine, path: &Path) -> wasmtime::Result<Self> {
        // SAFETY: see above.
        unsafe { Component::deserialize_file(engine, path) }
    }
}

impl Artifact for wasmtime::Module {
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        wasmtime::Module::serialize(self)
    }

    #[expect(unsafe_code, reason = "loading precompiled code is unsafe by nature")]
    fn deserialize_file(engine: &Engine, path: &Path) -> wasmtime::Result<Self> {
        // SAFETY: see above.
        unsafe { wasmtime::Module::deserialize_file(engine, path) }
    }
}

/// A read-only private mapping of a whole file.
#[expect(unsafe_code, reason = "mapping a file")]
mod map {
    use std::fs::File;
    use std::os::fd::AsRawFd;

    pub struct Map {
        ptr: *mut libc::c_void,
        len: usize,
    }

    impl Map {
        pub fn new(file: &File) -> std::io::Result<Map> {
            let len = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
            if len == 0 {
                return Ok(Map {
                    ptr: std::ptr::null_mut(),
                    len,
                });
            }
            // SAFETY: a fresh read-only mapping of an open file.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_POPULATE,
                    file.as_raw_fd(),
                    0,
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(std::io::Error::last_os_error());
            }
            Ok(Map { ptr, len })
        }

        pub fn bytes(&self) -> &[u8] {
            if self.len == 0 {
                return &[];
            }
            // SAFETY: `len` readable bytes live as long as `self`. Cache
            // entries are never written in place (see `write_atomically`).
            unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
        }
    }

    impl Drop for Map {
        fn drop(&mut self) {
            if self.len != 0 {
                // SAFETY: our own mapping.
                unsafe { libc::munmap(self.ptr, self.len) };
            }
        }
    }
}
