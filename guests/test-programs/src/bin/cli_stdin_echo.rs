//! Copies stdin to stdout, upper-cased.
use std::io::Read;
fn main() {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).unwrap();
    print!("{}", text.to_uppercase());
}
