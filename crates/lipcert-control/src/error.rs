use std::fmt;

/// Errors of this crate: a policy that does not fit the system, a network that cannot be
/// evaluated, an LQR design that fails.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlError(pub String);

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ControlError {}

impl From<lipcert_core::GraphError> for ControlError {
    fn from(e: lipcert_core::GraphError) -> Self {
        ControlError(e.to_string())
    }
}
