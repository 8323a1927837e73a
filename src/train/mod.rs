//! Training: the loop, gradient-flow diagnostics, the JSON report and plots.

pub mod checkpoint;
pub mod compare;
pub mod plot;
pub mod report;
pub mod trainer;

pub use report::{EpochLog, LayerDiagnostics, RunReport, StepLog};
pub use trainer::{shuffle_order, TrainConfig, Trainer};
