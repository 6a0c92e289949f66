//! Size limits of analyses. A model may declare any shape (ONNX allows [1, 100000, 100000,
//! 100000]); importing and describing it allocates nothing per element, but every analysis
//! allocates each value at least once. Those check the sizes first, so that an absurd model
//! gets a one-line error instead of an allocation failure that aborts the process.

use crate::{GraphError, Network};

/// The most elements of one value (per sample) an analysis allocates for: 2^28 f64 values
/// are 2 GiB, and bound propagation keeps several such arrays per value.
pub const MAX_VALUE_ELEMENTS: usize = 1 << 28;

/// The first value of the network with more than [`MAX_VALUE_ELEMENTS`] elements, as
/// (name, shape, element count; None when the count overflows usize).
pub fn oversized_value(net: &Network) -> Option<(String, Vec<usize>, Option<usize>)> {
    net.shapes.iter().enumerate().find_map(|(v, shape)| {
        let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        (!matches!(count, Some(c) if c <= MAX_VALUE_ELEMENTS))
            .then(|| (net.value_names[v].clone(), shape.clone(), count))
    })
}

/// Err when a value is too large to analyse (names the value and its shape).
pub fn check_sizes(net: &Network) -> Result<(), GraphError> {
    match oversized_value(net) {
        None => Ok(()),
        Some((name, shape, count)) => Err(GraphError::Data(format!(
            "value '{name}' has shape {shape:?} ({} elements per sample), above lipcert's limit of {MAX_VALUE_ELEMENTS} (2 GiB in f64)",
            count.map_or("more than 2^64".to_string(), |c| c.to_string())
        ))),
    }
}
