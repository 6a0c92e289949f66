pub mod attack;
pub mod bounds;
pub mod certify;
pub mod eval;
pub mod export;
pub mod info;
pub mod lipschitz;
pub mod spectral;
pub mod verify;

use anyhow::Context;
use lipcert_io::{import_file, Imported};
use std::path::Path;

/// Loads a model; the error names the file.
pub fn load_model(path: &Path) -> anyhow::Result<Imported> {
    if !path.exists() {
        anyhow::bail!("{}: no such file", path.display());
    }
    import_file(path).map_err(anyhow::Error::msg).context("cannot load the model")
}
