//! # fusedmlp
//!
//! Deep multilayer perceptrons trained on the GPU with fused WGSL
//! linear+activation kernels (wgpu: Vulkan, Metal, DX12, or Mesa's lavapipe
//! where there is no GPU), with a CPU reference for every op.
//!
//! ```no_run
//! use fusedmlp::{reference, Activation, Gpu};
//!
//! let gpu = Gpu::new()?;
//! let z = [-2.0f32, -0.5, 0.0, 0.5, 2.0];
//! let act: Activation = "leaky_relu:0.1".parse()?;
//! let y = gpu.activation_forward(act, &z)?;
//! assert_eq!(y, reference::activation_forward(act, &z));
//! # Ok::<(), fusedmlp::Error>(())
//! ```
#![warn(missing_docs)]

pub mod activation;
pub mod analysis;
pub mod bench;
pub mod data;
pub mod error;
pub mod gpu;
pub mod nn;
#[cfg(feature = "plots")]
pub mod plot;
pub mod reference;
pub mod selftest;
pub mod soak;
pub mod train;

pub use activation::{Activation, Saved};
pub use error::{Error, Result};
pub use gpu::{Gpu, GpuTensor, LinearGrads, LinearShape};
pub use nn::{Head, Init, Mlp, MlpConfig, Optimizer, Schedule};
pub use train::{RunReport, TrainConfig, Trainer};

/// The README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
