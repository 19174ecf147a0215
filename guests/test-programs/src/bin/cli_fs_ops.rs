//! Tries every kind of write inside directory argv[1] (which holds `in.txt`)
//! and prints each outcome: `create`, `write`, `truncate`, `rename`,
//! `mkdir`, `remove`, then reads `in.txt` back. `cli_fs_ops fork DIR` runs
//! the same in a forked child (inherited preopens).
use std::fs::OpenOptions;
use std::io::Write;

fn outcome(what: &str, result: std::io::Result<()>) {
    match result {
        Ok(()) => println!("{what}: ok"),
        Err(e) => println!("{what}: {:?}", e.kind()),
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
    outcome("remove", std::fs::remove_file(&file));
    match std::fs::read_to_string(&file) {
        Ok(text) => println!("read: {text:?}"),
        Err(e) => println!("read: {:?}", e.kind()),
    }
}
