//! lipcert-core: the network IR shared by every lipcert analysis, its batched forward
//! pass in f64, vector-Jacobian products, Jacobians and dense parameter gradients.

pub mod activation;
pub mod demo;
pub mod error;
pub mod forward;
pub mod forward_f32;
pub mod graph;
pub mod kernels;
pub mod limits;
pub mod random;
pub mod rng;
pub mod rounding;
pub mod simd;
pub mod simplify;

pub use error::GraphError;
pub use forward::{DenseGrad, Gradients, Trace};
pub use forward_f32::PlanF32;
pub use graph::{Activation, Conv2d, Dense, Network, NetworkBuilder, Node, Op, Pool2d, ValueId};
pub use rng::Rng;
pub use simplify::simplify;
