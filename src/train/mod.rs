//! Training: the loop, gradient-flow diagnostics, checkpoints, the JSON report.

pub(crate) mod checkpoint;
pub mod compare;
pub(crate) mod config;
pub(crate) mod inference;
pub(crate) mod observer;
pub(crate) mod report;
pub(crate) mod seeds;
pub(crate) mod trainer;

pub use checkpoint::{write_atomic, Checkpoint, TrainingState};
pub use config::Kernels;
pub use inference::Metrics;
pub use observer::{Control, Observer};
pub use report::{
    thin_logged_steps, EpochLog, LayerDiagnostics, Outcome, RunReport, StepLog,
    DEFAULT_MAX_LOGGED_STEPS,
};
pub use seeds::Seeds;
pub use trainer::{data_fingerprint, shuffle_order, Divergence, TrainConfig, Trainer};
