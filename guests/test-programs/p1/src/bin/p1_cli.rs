//! A plain wasip1 program (a core module importing only
//! `wasi_snapshot_preview1`): prints its args and environment, a line on
//! stderr, then acts on argv[1]:
//!
//! - `read PATH`: prints the file, then writes `PATH.out`;
//! - `stdin`: echoes stdin upper-cased;
//! - `exit N`: exits with code N (`proc_exit(N)`, any 0..=255).
use std::io::Read;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    for (i, arg) in args.iter().enumerate() {
        println!("argv[{i}]={arg}");
    }
    let mut env: Vec<_> = std::env::vars().collect();
    env.sort();
    for (k, v) in env {
        println!("env {k}={v}");
    }
    eprintln!("a line on stderr");
    match args.get(1).map(String::as_str) {
        Some("read") => {
            let path = &args[2];
            match std::fs::read_to_string(path) {
                Ok(text) => print!("{text}"),
                Err(e) => {
                    eprintln!("cannot read {path}: {e}");
                    std::process::exit(1);
                }
            }
            std::fs::write(format!("{path}.out"), "written by a wasip1 guest\n").unwrap();
        }
        Some("stdin") => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).unwrap();
            print!("{}", text.to_uppercase());
        }
        Some("exit") => std::process::exit(args[2].parse().unwrap()),
        _ => {}
    }
}
