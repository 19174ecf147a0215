//! The `host` binary: parse the command line, set up logging, run, exit.

use clap::Parser;
use std::process::ExitCode;

// Messages are allocated by the sender's thread and freed by the receiver's;
// glibc's allocator made that cross-thread free a third of the cost of a
// small message (perf). mimalloc frees to the owning thread cheaply.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = host::commands::Cli::parse();
    host::commands::init_tracing();
    match cli.execute() {
        Ok(status) => ExitCode::from(status.code()),
        Err(err) => {
            // The message and its causes, never a Rust backtrace: these are
            // the user's mistakes (a bad path, a bad module), not ours.
            eprint!("error: {err}");
            let mut causes = err.chain().skip(1).peekable();
            if causes.peek().is_some() {
                eprint!("\n\nCaused by:");
                for cause in causes {
                    eprint!("\n    {cause}");
                }
            }
            eprintln!();
            ExitCode::FAILURE
        }
    }
}
