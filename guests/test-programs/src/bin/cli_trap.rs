//! Traps in the way argv[1] names: `panic`, `unreachable` or `oob`.
fn main() {
    let how = std::env::args().nth(1).unwrap_or_else(|| "panic".into());
    println!("about to trap: {how}");
    match how.as_str() {
        "panic" => panic!("the guest panicked on purpose"),
        "unreachable" => std::process::abort(),
        "oob" => {
            let p = std::hint::black_box(0xffff_fff0usize) as *const u64;
            #[expect(unsafe_code, reason = "an out-of-bounds load is the point")]
            // SAFETY: deliberately invalid; wasm turns it into a trap.
            let v = unsafe { std::ptr::read_volatile(p) };
            println!("{v}");
        }
        other => panic!("unknown trap kind {other}"),
    }
}
