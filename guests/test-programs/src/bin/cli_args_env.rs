//! Prints its argv (one `argv[i]=...` per line), then its environment sorted.
fn main() {
    for (i, arg) in std::env::args().enumerate() {
        println!("argv[{i}]={arg}");
    }
    let mut vars: Vec<_> = std::env::vars().collect();
    vars.sort();
    for (k, v) in vars {
        println!("env {k}={v}");
    }
}
