//! What a training run reports: per-epoch curves, per-layer gradient-flow
//! diagnostics at logged steps, and the run's cost. Serialised as the JSON
//! report and drawn by `train::plot`.

use serde::{Deserialize, Serialize};

/// Pre-activation histogram range: `HIST_BINS` equal bins over
/// [`HIST_MIN`, `HIST_MAX`], plus one underflow and one overflow bin.
pub const HIST_MIN: f32 = -8.0;
/// Upper end of the histogram range.
pub const HIST_MAX: f32 = 8.0;
/// Number of equal-width bins inside the range.
pub const HIST_BINS: usize = 32;

/// Gradient-flow diagnostics of one layer at one logged step, all computed
/// on the GPU from the step's batch.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LayerDiagnostics {
    /// Layer index (0 = first hidden layer; the last is the output layer).
    pub layer: usize,
    /// L2 norm of dL/dW.
    pub weight_grad_norm: f32,
    /// L2 norm of dL/db.
    pub bias_grad_norm: f32,
    /// L2 norm of W (before the update).
    pub weight_norm: f32,
    /// ‖ΔW‖ / ‖W‖ of this step's update.
    pub update_ratio: f32,
    /// Mean of the layer's activations over the batch and units.
    pub activation_mean: f32,
    /// Standard deviation of the layer's activations.
    pub activation_std: f32,
    /// Fraction of units whose activation is exactly 0 for every example of
    /// the batch (meaningful for the ReLU family; 0 otherwise).
    pub dead_fraction: f32,
    /// Fraction of units with |f'(z)| below 1% of its maximum for most of
    /// the batch (meaningful for saturating activations; 0 otherwise).
    pub saturated_fraction: f32,
    /// Pre-activation histogram: `[underflow, HIST_BINS bins..., overflow]`.
    pub histogram: Vec<u32>,
}

/// One logged step.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StepLog {
    /// Optimizer steps taken before this one (0 = the first step, at initialisation).
    pub step: u64,
    /// Epoch (0-based).
    pub epoch: usize,
    /// Mean loss of the batch.
    pub loss: f32,
    /// Accuracy on the batch.
    pub accuracy: f32,
    /// Learning rate used.
    pub learning_rate: f32,
    /// Global L2 norm of all gradients (before clipping).
    pub grad_global_norm: f32,
    /// Per-layer diagnostics, first hidden layer first.
    pub layers: Vec<LayerDiagnostics>,
}

/// One epoch's summary.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EpochLog {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f32,
    /// Training accuracy over the epoch's batches.
    pub train_accuracy: f32,
    /// Validation loss (evaluation mode) at the end of the epoch.
    pub val_loss: f32,
    /// Validation accuracy at the end of the epoch.
    pub val_accuracy: f32,
    /// Seconds since training started.
    pub elapsed_seconds: f64,
}

/// Everything one training run reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunReport {
    /// A short label for plots and tables (for example `relu`).
    pub label: String,
    /// The model and training configuration, as JSON.
    pub config: serde_json::Value,
    /// The adapter, in words.
    pub adapter: String,
    /// The seed.
    pub seed: u64,
    /// Per-epoch curves.
    pub epochs: Vec<EpochLog>,
    /// Logged steps with diagnostics; the first is at initialisation.
    pub steps: Vec<StepLog>,
    /// Total training wall time, seconds.
    pub wall_seconds: f64,
    /// Training samples per second.
    pub samples_per_second: f64,
    /// Optimizer steps taken.
    pub total_steps: u64,
    /// GPU-to-host readbacks made during training.
    pub readbacks: u64,
    /// How the run ended (`completed`, or why it stopped).
    pub outcome: String,
    /// Where the first NaN or infinity appeared, if the run diverged.
    #[serde(default)]
    pub divergence: Option<super::trainer::Divergence>,
}
