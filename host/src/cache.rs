//! The on-disk cache of compiled components.
//!
//! Compiling a guest with Cranelift costs 25–100 ms for a small Rust guest and
//! seconds for Python or JS guests; loading a precompiled artifact costs well
//! under a millisecond. An entry is keyed by the SHA-256 of the component's
//! bytes and of the engine's compatibility hash (wasmtime version, target,
//! every setting that changes code), so a new host or a new config never
//! loads a stale entry. Each file ends with a trailer holding the SHA-256 of
//! its body; an entry whose trailer does not match (truncated, corrupted) is
//! ignored and rebuilt, never trusted.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

const TRAILER_MAGIC: &[u8; 8] = b"HIVECWM1";
const TRAILER_LEN: usize = 32 + TRAILER_MAGIC.len();

/// A directory of compiled components.
#[derive(Debug, Clone)]
pub struct DiskCache {
    dir: PathBuf,
}

/// What a cache lookup found.
pub enum Lookup {
    Hit(Component),
    Miss,
    /// The entry existed but failed verification; it has been removed.
    Corrupt(String),
}

impl DiskCache {
    pub fn new(dir: PathBuf) -> DiskCache {
        DiskCache { dir }
    }

    /// The default directory: `$XDG_CACHE_HOME/hive`, else `~/.cache/hive`.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
            .map(|d| d.join("hive"))
    }

    /// The cache key of `wasm` compiled by `engine`.
    pub fn key(engine: &Engine, wasm: &[u8]) -> String {
        struct ShaHasher(Sha256);
        impl Hasher for ShaHasher {
            fn finish(&self) -> u64 {
                unreachable!("only written to")
            }
            fn write(&mut self, bytes: &[u8]) {
                self.0.update(bytes);
            }
        }
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        hasher.0.update(env!("CARGO_PKG_VERSION"));
        hasher.0.update(wasm);
        hex(&hasher.0.finalize())
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.cwasm"))
    }

    /// Loads and verifies the entry for `key`.
    pub fn load(&self, engine: &Engine, key: &str) -> Lookup {
        let path = self.path(key);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(_) => return Lookup::Miss,
        };
        let corrupt = |why: String| {
            let _ = std::fs::remove_file(&path);
            Lookup::Corrupt(why)
        };
        let Some(body_len) = bytes.len().checked_sub(TRAILER_LEN) else {
            return corrupt("shorter than its trailer".into());
        };
        let (body, trailer) = bytes.split_at(body_len);
        if &trailer[32..] != TRAILER_MAGIC {
            return corrupt("no trailer".into());
        }
        if Sha256::digest(body).as_slice() != &trailer[..32] {
            return corrupt("checksum mismatch".into());
        }
        match deserialize(engine, body) {
            Ok(component) => Lookup::Hit(component),
            Err(e) => corrupt(format!("{e}")),
        }
    }

    /// Stores `component` under `key`, atomically (write, then rename), so a
    /// concurrent reader never sees half a file.
    pub fn store(&self, key: &str, component: &Component) -> anyhow::Result<()> {
        let mut bytes = component.serialize()?;
        let digest = Sha256::digest(&bytes);
        bytes.extend_from_slice(&digest);
        bytes.extend_from_slice(TRAILER_MAGIC);
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!("{key}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, self.path(key))?;
        Ok(())
    }
}

#[expect(unsafe_code, reason = "loading precompiled code is unsafe by nature")]
fn deserialize(engine: &Engine, body: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `body` was written by `DiskCache::store` from
    // `Component::serialize` (its SHA-256 trailer matched), and the key
    // includes the engine's compatibility hash; wasmtime additionally checks
    // the artifact's header against this engine.
    unsafe { Component::deserialize(engine, body) }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
