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

/// The default cap on the logged steps a run keeps in memory and in its
/// report ([`TrainConfig::max_logged_steps`](super::TrainConfig)). At 20
/// layers an entry is about 4 KB, so the cap bounds a report near 4 MB
/// however long the run.
pub const DEFAULT_MAX_LOGGED_STEPS: usize = 1000;

/// Whether a logged step must survive thinning: a non-finite loss or
/// gradient norm marks where a run went wrong.
fn notable(s: &StepLog) -> bool {
    !s.loss.is_finite() || !s.grad_global_norm.is_finite()
}

/// Keeps `logs` (sorted by step) within `cap` entries: once it holds more,
/// every second entry is dropped, so the spacing of the older entries
/// doubles each time the cap is reached while the newest stay dense. The
/// first and the last step, the step with the largest global gradient
/// norm, and every step with a non-finite loss or gradient norm are always
/// kept. Returns how many entries were dropped. A cap below 2 is taken as 2.
pub fn thin_logged_steps(logs: &mut Vec<StepLog>, cap: usize) -> usize {
    let cap = cap.max(2);
    if logs.len() <= cap {
        return 0;
    }
    let largest = logs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.grad_global_norm.is_finite())
        .max_by(|a, b| a.1.grad_global_norm.total_cmp(&b.1.grad_global_norm))
        .map(|(i, _)| i);
    let last = logs.len() - 1;
    let before = logs.len();
    let mut position = 0usize;
    let mut index = 0usize;
    logs.retain(|s| {
        let i = index;
        index += 1;
        let protected = i == 0 || i == last || Some(i) == largest || notable(s);
        if protected {
            return true;
        }
        position += 1;
        // Drop the first, third, ... unprotected entry.
        position.is_multiple_of(2)
    });
    before - logs.len()
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
    /// Bounded: see `logged_steps_rule`.
    pub steps: Vec<StepLog>,
    /// Which logged steps `steps` keeps, in words (the logging interval,
    /// the cap and what thinning does past it).
    #[serde(default)]
    pub logged_steps_rule: String,
    /// Logged steps dropped by thinning to keep the report within its cap.
    #[serde(default)]
    pub logged_steps_dropped: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(n: u64) -> Vec<StepLog> {
        (0..n)
            .map(|step| StepLog {
                step,
                loss: 1.0,
                grad_global_norm: 1.0 + (step % 7) as f32,
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn under_the_cap_nothing_is_dropped() {
        let mut logs = steps(10);
        assert_eq!(thin_logged_steps(&mut logs, 10), 0);
        assert_eq!(logs.len(), 10);
    }

    #[test]
    fn thinning_keeps_the_bound_the_ends_and_what_is_notable() {
        let mut logs = Vec::new();
        let mut dropped = 0;
        for s in steps(10_000) {
            let mut s = s;
            if s.step == 4321 {
                s.loss = f32::NAN;
            }
            if s.step == 777 {
                s.grad_global_norm = 1e9;
            }
            logs.push(s);
            dropped += thin_logged_steps(&mut logs, 100);
            assert!(logs.len() <= 100);
        }
        assert_eq!(dropped + logs.len(), 10_000);
        assert_eq!(logs.first().unwrap().step, 0);
        assert_eq!(logs.last().unwrap().step, 9_999);
        assert!(
            logs.iter().any(|s| s.step == 777),
            "largest gradient norm dropped"
        );
        assert!(
            logs.iter().any(|s| s.loss.is_nan()),
            "non-finite loss dropped"
        );
        assert!(logs.windows(2).all(|w| w[0].step < w[1].step));
        // Older entries are sparser than the newest.
        let gap = |w: &[StepLog]| w[1].step - w[0].step;
        assert!(gap(&logs[1..3]) > gap(&logs[logs.len() - 3..logs.len() - 1]));
    }
}
