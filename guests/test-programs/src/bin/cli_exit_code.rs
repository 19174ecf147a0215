//! Exits with the code in argv[1]: through `hive::process::exit` by default,
//! or through std's `process::exit` with `std` as argv[2].
fn main() {
    let mut args = std::env::args().skip(1);
    let code: u8 = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: cli_exit_code N [std]");
    println!("exiting with {code}");
    if args.next().as_deref() == Some("std") {
        std::process::exit(code.into());
    }
    hive::process::exit(code);
}
