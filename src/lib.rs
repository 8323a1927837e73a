//! # fusedmlp
//!
//! Deep multilayer perceptrons trained on the GPU with fused WGSL
//! linear+activation kernels (wgpu: Vulkan, Metal, DX12, or Mesa's lavapipe
//! where there is no GPU), with a CPU reference for every op.
//!
//! Train on the embedded digits, save, load and predict:
//!
//! ```
//! use fusedmlp::data::{self, Standardizer};
//! use fusedmlp::{Activation, Gpu, Mlp, MlpConfig, Optimizer, TrainConfig, Trainer};
//!
//! let gpu = Gpu::new()?;
//! let (raw_train, raw_val) = data::digits()?.split(0.2, 0)?;
//! let scaler = Standardizer::fit(&raw_train);
//! let (mut train, mut val) = (raw_train.clone(), raw_val.clone());
//! scaler.apply(&mut train)?;
//! scaler.apply(&mut val)?;
//! let model = Mlp::new(&gpu, MlpConfig::deep(64, 4, 64, 10, Activation::Relu))?;
//! let config = TrainConfig::default().with_epochs(3).with_optimizer(Optimizer::adam());
//! let mut trainer = Trainer::new(model, config, &train, &val)?;
//! trainer.train("digits", |_, _| {}, |_| {})?;
//! let mut model = trainer.into_model();
//! model.set_standardizer(Some(scaler))?; // saved with the weights
//! let path = std::env::temp_dir().join("fusedmlp-doc-digits.safetensors");
//! model.save(&path)?;
//!
//! let model = Mlp::load(&gpu, &path)?; // rows are standardised as in training
//! let first_row = model.predict_classes(raw_val.row(0), 1)?;
//! let metrics = model.evaluate(&raw_val)?;
//! assert!(metrics.accuracy > 0.8, "{metrics}");
//! # let _ = (first_row, std::fs::remove_file(&path));
//! # Ok::<(), fusedmlp::Error>(())
//! ```
//!
//! Every kernel has a CPU twin to hold it to:
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
//!
//! ## Modules
//!
//! | module | what it holds |
//! |---|---|
//! | [`activation`] | the [`Activation`] enum: PyTorch's names, parameters and parsing |
//! | [`gpu`] | the host layer: the device ([`Gpu`]), tensors, the fused linear+activation kernels, the fully fused narrow stack, peak measurement, async readbacks |
//! | [`reference`](mod@reference) | the CPU twin of every GPU op, f64 accumulation |
//! | [`nn`] | the MLP, initialisers, heads and losses, optimizers and schedules |
//! | [`train`] | the trainer, its configuration, observers, checkpoints and reports |
//! | [`compare`] | side-by-side runs of activations (and over seeds) with the tables that compare them |
//! | [`data`] | the embedded digits, synthetic sets, CSV and IDX loaders, standardisation |
//! | `plot` | PNG figures of runs and experiments (feature `plots`) |
//! | [`selftest`] | every activation on the GPU against the CPU reference, for a new driver |
//! | [`error`] | the crate's one error type |
//!
//! With the `cli` feature, the command line's own modules join them:
//! `bench` (the kernel and training-step benchmarks behind `fusedmlp
//! bench`), `soak` (long-run resource checks) and `analysis` (the
//! examples' measurements and table formats).
//!
//! ## Features
//!
//! * `gzip` (default): reading `.gz` data files.
//! * `plots`: the `plot` module, with plotters and an embedded font.
//! * `cli`: the `fusedmlp` binary (clap, indicatif, env_logger) and the
//!   examples; implies `plots` and `gzip`. `cargo install fusedmlp
//!   --features cli` installs the command.
//!
//! With `default-features = false` the crate is the core alone: the GPU
//! layer, the reference path, models, training, data, checkpoints and
//! reports.
//!
//! Every method that waits for the GPU has an `_async` twin
//! ([`Gpu::new_async`], [`GpuTensor::read_async`], [`Trainer::train_async`],
//! ...); the blocking ones wrap them with `pollster`.
#![warn(missing_docs)]

pub mod activation;
#[cfg(feature = "cli")]
pub mod analysis;
#[cfg(feature = "cli")]
pub mod bench;
pub mod compare;
pub mod data;
pub mod error;
pub mod gpu;
pub mod nn;
#[cfg(feature = "plots")]
pub mod plot;
pub mod reference;
pub mod selftest;
#[cfg(feature = "cli")]
pub mod soak;
pub mod train;

pub use activation::{Activation, Saved};
pub use data::{Dataset, Standardizer};
pub use error::{Error, Result};
pub use gpu::{Gpu, GpuTensor, LinearGrads, LinearShape};
pub use nn::{Head, Init, Mlp, MlpConfig, Optimizer, Schedule};
pub use train::{Checkpoint, Metrics, RunReport, TrainConfig, Trainer};

/// The README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
