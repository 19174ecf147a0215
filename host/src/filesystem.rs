//! Where Hive's `wasi:filesystem` differs from wasmtime-wasi's: a guest may
//! not create a symlink that could point out of its preopens.
//!
//! wasmtime-wasi never *follows* a symlink out of a preopen, but it lets a
//! guest *create* one (`link -> ../../bin/sh`). Whoever follows it next is
//! not sandboxed: an OS child the guest starts, the host's own tools, the
//! user. So `symlink-at` refuses an absolute target or one with a `..`
//! component (`not-permitted`), before touching the disk. A target that
//! stays below the link's directory is created as usual.

use std::path::{Component, Path};
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{ErrorCode, HostDescriptor};

/// The `wasi:filesystem/types` instance wasmtime-wasi 48 defines (guests
/// importing any 0.2.x version link to it).
const TYPES: &str = "wasi:filesystem/types@0.2.12";

/// Whether a symlink with this target could resolve outside the directory
/// it is created in.
pub fn target_escapes(target: &str) -> bool {
    Path::new(target)
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Replaces `descriptor.symlink-at` in `linker` with the checked one.
pub fn add_to_linker<T: WasiView + Send + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.instance(TYPES)?.func_wrap_async(
        "[method]descriptor.symlink-at",
        |mut store, (dir, target, link): (Resource<Descriptor>, String, String)| {
            Box::new(async move {
                if target_escapes(&target) {
                    tracing::debug!(target, link, "refused a symlink out of a preopen");
                    return Ok((Err(ErrorCode::NotPermitted),));
                }
                let mut fs = store.data_mut().filesystem();
                match HostDescriptor::symlink_at(&mut fs, dir, target, link).await {
                    Ok(()) => Ok((Ok(()),)),
                    // An error code is the guest's; anything else traps.
                    Err(e) => Ok((Err(e.downcast()?),)),
                }
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// A wasip1 module's `path_symlink` has no checked twin to call (the p1
/// adapter keeps its descriptors private), so wasip1 modules may not
/// create symlinks at all (`EPERM`).
pub fn add_to_core_linker<T: 'static>(linker: &mut wasmtime::Linker<T>) -> wasmtime::Result<()> {
    const EPERM: i32 = 63; // wasip1's errno `perm`
    linker.allow_shadowing(true);
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "path_symlink",
        |_: wasmtime::Caller<'_, T>, _: i32, _: i32, _: i32, _: i32, _: i32| EPERM,
    )?;
    Ok(())
}
