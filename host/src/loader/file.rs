//! Reading a `.wasm` file safely: never blocking, never unbounded.

use crate::error::{LoadError, MAX_MODULE_BYTES};
use std::path::Path;

/// Opens a module file without ever blocking and only if it is a regular
/// file of at most [`MAX_MODULE_BYTES`]: a FIFO, `/dev/tty` or
/// `/dev/stdin` would block a reader forever (and steal the host's input),
/// `/dev/zero` would never end. The type is checked before opening (a stat
/// does not block), the open does not wait (`O_NONBLOCK`), and the opened
/// file is checked again, in case the path was swapped in between.
pub fn open_module(path: &Path) -> Result<std::fs::File, LoadError> {
    use std::os::unix::fs::OpenOptionsExt;
    let read_err = |source| LoadError::Read {
        path: path.to_owned(),
        source,
    };
    let check = |meta: std::fs::Metadata| {
        if !meta.is_file() {
            return Err(LoadError::NotAFile {
                path: path.to_owned(),
                what: if meta.is_dir() {
                    "a directory"
                } else {
                    "not a regular file"
                },
            });
        }
        if meta.len() > MAX_MODULE_BYTES {
            return Err(LoadError::TooLarge {
                path: path.to_owned(),
                bytes: meta.len(),
            });
        }
        Ok(())
    };
    check(std::fs::metadata(path).map_err(read_err)?)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(read_err)?;
    check(file.metadata().map_err(read_err)?)?;
    Ok(file)
}

/// Reads a whole module through [`open_module`].
pub fn read_module(path: &Path) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    let mut file = open_module(path)?;
    let mut bytes = Vec::new();
    // Bounded even if the file grows after the check.
    (&mut file)
        .take(MAX_MODULE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_MODULE_BYTES {
        return Err(LoadError::TooLarge {
            path: path.to_owned(),
            bytes: bytes.len() as u64,
        });
    }
    Ok(bytes)
}
