//! Training: the loop, gradient-flow diagnostics, checkpoints, the JSON report.

pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod inference;
pub mod observer;
pub mod report;
pub mod seeds;
pub mod trainer;

pub use config::Kernels;
pub use inference::Metrics;
pub use observer::{Control, Observer};
pub use report::{
    thin_logged_steps, EpochLog, LayerDiagnostics, Outcome, RunReport, StepLog,
    DEFAULT_MAX_LOGGED_STEPS,
};
pub use seeds::Seeds;
pub use trainer::{shuffle_order, TrainConfig, Trainer};
