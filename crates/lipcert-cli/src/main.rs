//! The `lipcert` command-line tool. Commands parse arguments, call the library, and render
//! the result as a table (people) or JSON (machines, with `--json`); nothing else prints.

use lipcert_cli::commands;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

// Bound propagation allocates and frees large coefficient blocks on every layer; glibc returns
// them to the kernel and every new one page-faults again. mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Certified bracket [lower, upper] on the spectral norm of a matrix or a convolution.
    Spectral(commands::spectral::Args),
    /// Lipschitz constant of a network: per-layer table, certified upper and lower bounds.
    Lipschitz(commands::lipschitz::Args),
    /// Certified and adversarial accuracy on a data set (Lipschitz, IBP, CROWN, alpha-CROWN, PGD).
    Certify(commands::certify::Args),
    /// Certified bounds on the outputs and on VNN-LIB output atoms (IBP, CROWN, alpha-CROWN).
    Bounds(commands::bounds::Args),
    /// Search a VNN-LIB property's input set for a counterexample (PGD, FGSM).
    Attack(commands::attack::Args),
    /// Decide a VNN-LIB property: sat (with a counterexample), unsat, unknown or timeout.
    Verify(commands::verify::Args),
    /// Distance to the decision boundary: a proven lower and a witnessed upper bound, closed by exact search (l_inf).
    Boundary(commands::boundary::Args),
    /// Neural controllers in closed loop: train (behaviour cloning of an LQR expert), simulate, compare with a pruned policy.
    Control(commands::control::Args),
    /// Prune dense and convolutional layers (magnitude, OBD, OBS, SparseGPT; unstructured, N:M, or under a certified deviation budget).
    Prune(commands::prune::Args),
    /// How far a pruned model's output can move over a box: closed-form bound, certified bound, observed maximum.
    Deviation(commands::deviation::Args),
    /// Randomized smoothing: certified l2 radii (Cohen, two-sided, CPM, Lipschitz-aware, LVM-RS) and smoothed predictions.
    Smooth(commands::smooth::Args),
    /// A smaller local substitute network around an anchor (paper 004): its exact distance to the boundary as a cheap estimate, and a certified lower bound for the original (Lemma 1).
    Substitute(commands::substitute::Args),
    /// How robust is this network? Runs the analyses that fit the model and inputs within a time budget and writes DIR/index.html and DIR/report.json.
    Report(commands::report::Args),
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => e.exit(),
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        Err(e) => {
            // Usage errors in one line, like every other error.
            let text = e.to_string();
            let message: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
                .collect();
            eprintln!("error: {} (see lipcert --help)", message.join(" ").trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Info(a) => commands::info::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::Export(a) => commands::export::run(a),
        Command::Spectral(a) => commands::spectral::run(a),
        Command::Lipschitz(a) => commands::lipschitz::run(a),
        Command::Certify(a) => commands::certify::run(a),
        Command::Bounds(a) => commands::bounds::run(a),
        Command::Attack(a) => commands::attack::run(a),
        Command::Verify(a) => commands::verify::run(a),
        Command::Boundary(a) => commands::boundary::run(a),
        Command::Control(a) => commands::control::run(a),
        Command::Prune(a) => commands::prune::run(a),
        Command::Deviation(a) => commands::deviation::run(a),
        Command::Smooth(a) => commands::smooth::run(a),
        Command::Substitute(a) => commands::substitute::run(a),
        Command::Report(a) => commands::report::run(a),
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
