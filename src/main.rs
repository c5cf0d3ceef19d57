//! The `gantry` binary: parse the command line, start telemetry, hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = gantry::cli::Cli::parse();
    gantry::telemetry::init(cli.log_format());
    gantry::cli::run(cli)
}
