//! Prints the contents of the file named by argv[1], then writes argv[1] + ".out".
fn main() {
    let path = std::env::args().nth(1).expect("usage: cli_read_file PATH");
    match std::fs::read_to_string(&path) {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            std::process::exit(1);
        }
    }
    std::fs::write(format!("{path}.out"), "written by the guest\n").expect("write next to it");
}
