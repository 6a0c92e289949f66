//! lipcert-spectral: certified spectral norms of dense and convolutional layers, Lipschitz
//! bounds of whole networks, and certified radii from them.
//! Every result is a bracket [lower, upper] that holds in real arithmetic; see
//! docs/GUARANTEES.md for exactly what each method certifies.

pub mod conv;
pub mod dense;
pub mod lipschitz;

pub use conv::{conv_norm, ConvOperator, Padding};
pub use dense::{spectral_norm, Bracket, Method, Options};
