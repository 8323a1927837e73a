//! Training: the loop, gradient-flow diagnostics, the JSON report and plots.

pub mod checkpoint;
pub mod compare;
pub mod plot;
pub mod report;
pub mod trainer;

pub use report::{
    thin_logged_steps, EpochLog, LayerDiagnostics, RunReport, StepLog, DEFAULT_MAX_LOGGED_STEPS,
};
pub use trainer::{shuffle_order, TrainConfig, Trainer};
