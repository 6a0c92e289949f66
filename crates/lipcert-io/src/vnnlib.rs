//! VNN-LIB properties.
