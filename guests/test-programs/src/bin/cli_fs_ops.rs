//! Tries every kind of write inside directory argv[1] (which holds `in.txt`)
//! and prints each outcome: `create`, `write`, `truncate`, `rename`,
//! `mkdir`, `symlink-out` (a link to `../../..`, out of the preopen),
//! `symlink-in` (a link to `in.txt`), `remove`, then reads `in.txt` back. `cli_fs_ops fork DIR` runs
//! the same in a forked child (inherited preopens).
use std::fs::OpenOptions;
use std::io::Write;

fn outcome(what: &str, result: std::io::Result<()>) {
    match result {
        Ok(()) => println!("{what}: ok"),
        Err(e) => println!("{what}: {:?}", e.kind()),
    }
}

/// wasi-libc's `symlink(3)` (std's `symlink_path` is unstable on wasi).
#[expect(
    unsafe_code,
    reason = "one libc call with NUL-terminated strings we own"
)]
fn symlink(target: &str, link: &str) -> std::io::Result<()> {
    use std::ffi::{CString, c_char, c_int};
    unsafe extern "C" {
        fn symlink(target: *const c_char, link: *const c_char) -> c_int;
    }
    let (target, link) = (CString::new(target)?, CString::new(link)?);
    // SAFETY: both pointers are valid NUL-terminated strings for the call.
    match unsafe { symlink(target.as_ptr(), link.as_ptr()) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("fork") {
        let child = hive::fork(&args[0], &[&args[2]], hive::ForkOptions::default()).expect("fork");
        child.wait();
        return;
    }
    let dir = &args[1];
    let file = format!("{dir}/in.txt");
    outcome("create", std::fs::write(format!("{dir}/new.txt"), "x"));
    outcome(
        "write",
        OpenOptions::new()
            .append(true)
            .open(&file)
            .and_then(|mut f| f.write_all(b"more")),
    );
    outcome(
        "truncate",
        OpenOptions::new()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_len(0)),
    );
    outcome("rename", std::fs::rename(&file, format!("{dir}/moved.txt")));
    outcome("mkdir", std::fs::create_dir(format!("{dir}/sub")));
    outcome("symlink-out", symlink("../../..", &format!("{dir}/out")));
    outcome("symlink-in", symlink("in.txt", &format!("{dir}/link")));
    outcome("remove", std::fs::remove_file(&file));
    match std::fs::read_to_string(&file) {
        Ok(text) => println!("read: {text:?}"),
        Err(e) => println!("read: {:?}", e.kind()),
    }
}
