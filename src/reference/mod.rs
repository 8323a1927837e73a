//! The CPU reference path: every GPU op in plain Rust with f64 accumulation,
//! rounded once to f32. Tests hold each GPU kernel to its twin here.

pub mod activation;
pub mod fused_mlp;
pub mod linear;

pub use activation::{activation_backward, activation_forward};
pub use linear::{linear_backward, linear_forward};
pub mod mlp;
