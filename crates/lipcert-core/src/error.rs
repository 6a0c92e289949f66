use thiserror::Error;

#[derive(Debug, Error)]
pub enum GraphError {
    /// A node whose operator does not fit its inputs or has invalid parameters.
    #[error("node '{node}' ({op}): {message}")]
    Node { node: String, op: &'static str, message: String },
    /// Input data that does not fit the network.
    #[error("{0}")]
    Data(String),
    #[error("{0}")]
    Invalid(String),
}
