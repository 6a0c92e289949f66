//! The `lipcert` command-line tool as a library. Each command is a module of `commands` with
//! its clap `Args`, a `compute` step that takes loaded inputs (network, arrays, options) and
//! returns the command's result, the result's JSON (what `--json` prints), and its text
//! rendering. `main.rs` is the clap entry; the Python bindings (crates/lipcert-py) call the
//! same `compute` and JSON functions, so both front ends report the same fields.

pub mod commands;
pub mod progress;
pub mod render;
