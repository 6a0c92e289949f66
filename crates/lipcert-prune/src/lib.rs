//! Pruning with guarantees (paper 000 and beyond).
//!
//! - [`pruners`]: one weight matrix at a time — magnitude, OBD, OBS, SparseGPT — unstructured or
//!   N:M, against the layer-wise Hessian H = 2 X X^T of calibration inputs.
//! - [`network`]: prunes every dense and convolutional layer of a network in order, with the
//!   calibration inputs propagated through the layers already pruned.
//! - [`deviation`]: how far the pruned network's output can move over a state box: the paper's
//!   closed form (in its sound, telescoped form), a certified bound from bound propagation on the
//!   difference network, and the largest deviation actually found (sampling + gradient ascent).

pub mod pruners;

pub use pruners::{Method, Pattern, PruneError, PruneOptions};
pub mod deviation;
pub mod network;
pub mod schedule;

pub use deviation::{certified, closed_form, difference_network, observed_max, CertifyOptions, DeviationError};
pub use network::{prunable_layers, prune_network, LayerReport, PruneReport};
