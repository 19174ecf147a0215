//! The `host` binary: parse the command line, set up logging, run, exit.

use clap::Parser;
use std::process::ExitCode;

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
