//! The smallest guest: `host run target/guests/hello.wasm`.
fn main() {
    println!("Hello, world!");
}
