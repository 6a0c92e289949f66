//! ONNX models: import into the IR and export back.

mod export;
mod import;
pub mod proto;

pub use export::{export_bytes, export_model, ExportPrecision};
pub use import::{import_bytes, import_model, ImportError, Imported, NEWEST_OPSET};

use std::path::Path;

/// Reads and imports an ONNX file; errors name the file.
pub fn import_file(path: &Path) -> Result<Imported, ImportError> {
    let bytes = std::fs::read(path).map_err(|e| ImportError(format!("{}: {e}", path.display())))?;
    import_bytes(&bytes).map_err(|e| ImportError(format!("{}: {e}", path.display())))
}

/// Exports a network to an ONNX file.
pub fn export_file(net: &lipcert_core::Network, path: &Path, precision: ExportPrecision) -> std::io::Result<()> {
    std::fs::write(path, export_bytes(net, precision))
}
