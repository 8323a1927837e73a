//! Training: the loop, gradient-flow diagnostics, checkpoints, the JSON report.

pub(crate) mod checkpoint;
pub(crate) mod config;
pub(crate) mod inference;
pub(crate) mod observer;
pub(crate) mod report;
pub(crate) mod seeds;
pub(crate) mod trainer;

pub use checkpoint::{write_atomic, Checkpoint, TrainingState};
pub use config::{Kernels, DEFAULT_MAX_LOGGED_STEPS};
pub use inference::Metrics;
pub use observer::{Control, Observer};
pub use report::{
    thin_logged_steps, Divergence, EpochLog, LayerDiagnostics, Outcome, RunReport, StepLog,
};
pub use seeds::Seeds;
pub use trainer::{data_fingerprint, shuffle_order, TrainConfig, Trainer};
