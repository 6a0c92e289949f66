//! lipcert-spectral: certified spectral norms of dense (and, next, convolutional) layers.
//! Every result is a bracket [lower, upper] that holds in real arithmetic; see
//! docs/GUARANTEES.md for exactly what each method certifies.

pub mod conv;
pub mod dense;
pub mod rounding;

pub use conv::{conv_norm, ConvOperator, Padding};
pub use dense::{spectral_norm, Bracket, Method, Options};
