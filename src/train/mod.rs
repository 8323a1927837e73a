//! Training: the loop, gradient-flow diagnostics, the JSON report and plots.

pub mod plot;
pub mod report;

pub use report::{EpochLog, LayerDiagnostics, RunReport, StepLog};
