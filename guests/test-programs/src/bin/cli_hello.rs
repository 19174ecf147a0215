//! Prints a greeting on stdout and a note on stderr.
fn main() {
    println!("hello from a guest");
    eprintln!("a line on stderr");
}
