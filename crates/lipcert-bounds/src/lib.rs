//! lipcert-bounds: sound bounds on what a network can output over a set of inputs (IBP, CROWN,
//! alpha-CROWN), and attacks that search the same sets for counterexamples.

pub mod attack;
pub mod ibp;
pub mod input_set;

pub use ibp::{ibp, ibp_margins, Interval};
pub use input_set::InputSet;
