pub mod attack;
pub mod boundary;
pub mod bounds;
pub mod certify;
pub mod control;
pub mod deviation;
pub mod eval;
pub mod export;
pub mod info;
pub mod lipschitz;
pub mod prune;
pub mod report;
pub mod smooth;
pub mod spectral;
pub mod substitute;
pub mod verify;

use anyhow::Context;
use lipcert_io::{import_file, Imported};
use std::path::Path;

/// Loads a model for an analysis: the error names the file, and a model with a value too
/// large to analyse is refused here (see `lipcert_core::limits`).
pub fn load_model(path: &Path) -> anyhow::Result<Imported> {
    let m = import_model(path)?;
    check_analysable(path, &m.network)?;
    Ok(m)
}

/// Refuses a model with a value too large to analyse (the error names the file).
pub fn check_analysable(path: &Path, net: &lipcert_core::Network) -> anyhow::Result<()> {
    lipcert_core::limits::check_sizes(net).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Loads a model without the size check (`info` and `export` allocate nothing per element).
pub fn import_model(path: &Path) -> anyhow::Result<Imported> {
    if !path.exists() {
        anyhow::bail!("{}: no such file", path.display());
    }
    import_file(path).map_err(anyhow::Error::msg).context("cannot load the model")
}

/// Reads a VNN-LIB property and checks it against the model's input and output sizes.
pub fn load_property(path: &Path, net: &lipcert_core::Network) -> anyhow::Result<lipcert_io::vnnlib::Property> {
    let p = lipcert_io::vnnlib::Property::read(path).map_err(anyhow::Error::msg)?;
    if p.num_inputs != net.input_len() || p.num_outputs != net.output_len() {
        anyhow::bail!(
            "{}: the property has {} inputs and {} outputs, the model {} and {}",
            path.display(),
            p.num_inputs,
            p.num_outputs,
            net.input_len(),
            net.output_len()
        );
    }
    Ok(p)
}
