//! The `fencegate` binary: parse the command line and hand it to the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    fencegate::run(fencegate::cli::Cli::parse())
}
