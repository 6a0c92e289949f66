//! lipcert-io: ONNX import and export, and NumPy .npy files.

pub mod npy;
pub mod onnx;
#[doc(hidden)]
pub mod testing;
pub mod vnnlib;

pub use npy::{DType, NpyArray, NpyError};
pub use onnx::{export_bytes, export_file, import_bytes, import_file, ExportPrecision, ImportError, Imported};
pub use vnnlib::{Case, OutputAtom, Property, VnnlibError};
