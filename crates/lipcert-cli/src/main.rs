//! The `lipcert` command-line tool. Commands parse arguments, call the library, and render
//! the result as a table (people) or JSON (machines, with `--json`); nothing else prints.

mod commands;
mod render;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "lipcert",
    version,
    about = "Robustness of trained neural networks: Lipschitz bounds, certification, verification, pruning with guarantees"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Describe a model: inputs, outputs, nodes, parameters.
    Info(commands::info::Args),
    /// Batch forward pass: X.npy [N, ...] -> Y.npy [N, outputs], computed in f64.
    Eval(commands::eval::Args),
    /// Write the model as lipcert reads it (BatchNorm folded, identities removed) to ONNX.
    Export(commands::export::Args),
}

fn main() -> ExitCode {
    // A bug must still end in one line on stderr, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("error: internal error{at}: {msg} (please report this)");
    }));
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(a) => commands::info::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::Export(a) => commands::export::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of causes joined.
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
