//! lipcert-bounds: sound bounds on what a network can output over a set of inputs (IBP, CROWN,
//! alpha-CROWN), and attacks that search the same sets for counterexamples.

pub mod attack;
pub mod crown;
pub mod diff;
pub mod ibp;
pub mod input_set;
pub mod relax;

pub use attack::{attack, Atom, AttackOptions, AttackResult, Method as AttackMethod, StepSchedule, Unsafe};
pub use crown::{
    bound, bound_crown_fast, bound_with_splits, margins, split_value_bounds, value_bounds, Bounds, Method, Options,
    Parent, Split, SplitBounds, SplitOptions, Warm,
};
pub use diff::difference_bounds;
pub use ibp::{ibp, ibp_margins, ibp_spec, Interval};
pub use input_set::InputSet;
