//! `extauth`: see the library for everything; this only parses flags.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    extauth::cli::run(extauth::cli::Cli::parse())
}
