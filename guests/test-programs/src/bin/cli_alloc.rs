//! Allocates argv[1] MiB. `cli_alloc N` aborts like any Rust program when
//! the allocation fails; `cli_alloc N try` handles the failure and exits 0.
fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: cli_alloc MIB [try]");
    let bytes = mib << 20;
    if args.next().as_deref() == Some("try") {
        let mut v: Vec<u8> = Vec::new();
        // black_box: the optimizer may drop an allocation nobody reads.
        match std::hint::black_box(&mut v).try_reserve_exact(bytes) {
            Ok(()) => println!(
                "allocated {} MiB",
                std::hint::black_box(&v).capacity() >> 20
            ),
            Err(_) => println!("could not allocate {mib} MiB; carrying on"),
        }
        return;
    }
    let v = std::hint::black_box(vec![1u8; bytes]);
    println!("allocated {} MiB", v.len() >> 20);
}
