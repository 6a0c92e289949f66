//! lipcert-bounds: sound bounds on what a network can output over a set of inputs.
//! This first part is interval bound propagation (IBP); CROWN and alpha-CROWN build on it.

pub mod ibp;

pub use ibp::{ibp, ibp_margins, Interval};
