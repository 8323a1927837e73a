//! What a training run reports: per-epoch curves, per-layer gradient-flow
//! diagnostics at logged steps, and the run's cost. Serialised as the JSON
//! report and drawn by `plot`.

use std::path::PathBuf;

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
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
pub struct EpochLog {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (a running average: the
    /// early batches saw other weights than the last).
    pub train_loss: f32,
    /// Training accuracy over the epoch's batches (a running average).
    pub train_accuracy: f32,
    /// Loss of the whole training split evaluated after the epoch
    /// (evaluation mode, as the validation split): a collapse at the
    /// epoch's end shows here, where the running average hides it. NaN in
    /// reports written before this field existed.
    #[serde(default = "not_measured")]
    pub train_eval_loss: f32,
    /// Accuracy of the whole training split evaluated after the epoch.
    #[serde(default = "not_measured")]
    pub train_eval_accuracy: f32,
    /// Validation loss (evaluation mode) at the end of the epoch; NaN (null
    /// in JSON) when the run has no validation set (see
    /// [`EpochLog::validation`]).
    pub val_loss: f32,
    /// Validation accuracy at the end of the epoch; NaN when the run has
    /// no validation set.
    pub val_accuracy: f32,
    /// Rows in the validation set (0: none). Reports written before this
    /// field existed read as `usize::MAX` (not recorded).
    #[serde(default = "rows_not_recorded")]
    pub val_rows: usize,
    /// Seconds since training started.
    pub elapsed_seconds: f64,
}

impl EpochLog {
    /// The validation (loss, accuracy), or `None` when the run has no
    /// validation set.
    pub fn validation(&self) -> Option<(f32, f32)> {
        (self.val_rows > 0).then_some((self.val_loss, self.val_accuracy))
    }
}

fn rows_not_recorded() -> usize {
    usize::MAX
}

/// Everything one training run reports (what `--json` writes).
///
/// ```no_run
/// # fn f(report: fusedmlp::RunReport) -> Result<(), Box<dyn std::error::Error>> {
/// // Per-layer gradient norms at the first logged step (initialisation).
/// let first = &report.steps[0];
/// for l in &first.layers {
///     println!("layer {}: |dL/dW| {:.2e}, dead {:.0}%", l.layer, l.weight_grad_norm, 100.0 * l.dead_fraction);
/// }
/// if let Some(d) = &report.divergence {
///     println!("diverged at step {} in the {}", d.step, d.location());
/// }
/// std::fs::write("report.json", serde_json::to_string_pretty(&report)?)?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
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
    /// How the run ended (`completed`, or why it stopped), in words.
    pub outcome: String,
    /// How the run ended, typed: what [`RunReport::outcome`] says.
    #[serde(default)]
    pub status: Outcome,
    /// Where the first NaN or infinity appeared, if the run diverged.
    #[serde(default)]
    pub divergence: Option<Divergence>,
}

/// How a training run ended ([`RunReport::status`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Every configured epoch ran.
    #[default]
    Completed,
    /// [`crate::Trainer::stop_after`] ended it after this step.
    Stopped {
        /// Steps taken.
        step: u64,
    },
    /// An [`crate::train::Observer`] ended it after this step.
    StoppedByObserver {
        /// Steps taken.
        step: u64,
    },
    /// A NaN or infinity appeared (see [`RunReport::divergence`] for the
    /// whole account).
    Diverged {
        /// The step it appeared at.
        step: u64,
        /// Where: the tensor and layer, or the loss.
        location: String,
    },
}

impl Outcome {
    /// Whether every configured epoch ran.
    pub fn is_completed(&self) -> bool {
        *self == Outcome::Completed
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Completed => f.write_str("completed"),
            Outcome::Stopped { step } => write!(f, "stopped after step {step}"),
            Outcome::StoppedByObserver { step } => {
                write!(f, "stopped by the observer after step {step}")
            }
            Outcome::Diverged { step, location } => {
                write!(
                    f,
                    "diverged: NaN or infinity at step {step} in the {location}"
                )
            }
        }
    }
}

impl StepLog {
    /// The hidden layers' diagnostics (the output layer, last in `layers`,
    /// left out).
    pub fn hidden_layers(&self) -> &[LayerDiagnostics] {
        &self.layers[..self.layers.len().saturating_sub(1)]
    }
}

impl RunReport {
    /// The step of the first non-finite value, if the run diverged.
    pub fn diverged_at(&self) -> Option<u64> {
        self.divergence.as_ref().map(|d| d.step)
    }

    /// The last logged step, unless the run diverged (then there is no
    /// end state to measure).
    pub fn end_step(&self) -> Option<&StepLog> {
        match self.divergence {
            Some(_) => None,
            None => self.steps.last(),
        }
    }

    /// The logged steps before the first non-finite value.
    pub fn steps_before_divergence(&self) -> Vec<&StepLog> {
        let limit = self.diverged_at().unwrap_or(u64::MAX);
        self.steps.iter().filter(|s| s.step < limit).collect()
    }

    /// The final (training loss, validation accuracy); NaN where no epoch
    /// completed or the run diverged.
    pub fn finals(&self) -> (f32, f32) {
        match (&self.divergence, self.epochs.last()) {
            (None, Some(e)) => (e.train_loss, e.val_accuracy),
            _ => (f32::NAN, f32::NAN),
        }
    }

    /// The largest finite global gradient norm among the logged steps
    /// (NaN when none), and whether any logged norm was NaN or infinite.
    pub fn max_grad_norm(&self) -> (f32, bool) {
        let finite = self
            .steps
            .iter()
            .map(|s| s.grad_global_norm)
            .filter(|v| v.is_finite())
            .fold(f32::NAN, f32::max);
        let bad = self.steps.iter().any(|s| !s.grad_global_norm.is_finite());
        (finite, bad)
    }

    /// How the run ended, short enough for a table: the outcome, or where
    /// the first NaN or infinity appeared.
    pub fn short_outcome(&self) -> String {
        match &self.divergence {
            Some(d) => format!("diverged: NaN/inf at step {} ({})", d.step, d.location()),
            None => self.outcome.clone(),
        }
    }

    /// Joins the reports of one run trained in parts (as
    /// [`crate::Trainer::train_in_parts`] makes them): epochs and logged
    /// steps in order, wall time summed, the last part's totals and
    /// outcome. An empty list gives an empty report.
    pub fn join(parts: Vec<RunReport>, batch_size: usize) -> RunReport {
        let mut parts = parts.into_iter();
        let mut out = parts.next().unwrap_or_default();
        for p in parts {
            let offset = out.wall_seconds;
            out.epochs.extend(p.epochs.into_iter().map(|mut e| {
                e.elapsed_seconds += offset;
                e
            }));
            out.steps.extend(p.steps);
            out.wall_seconds += p.wall_seconds;
            out.total_steps = p.total_steps;
            out.readbacks = p.readbacks;
            out.outcome = p.outcome;
            out.status = p.status;
            out.divergence = p.divergence;
        }
        out.samples_per_second =
            out.total_steps as f64 * batch_size as f64 / out.wall_seconds.max(1e-9);
        out
    }
}

/// The value of a figure an older report did not record.
fn not_measured() -> f32 {
    f32::NAN
}

/// Where a non-finite value first appeared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Divergence {
    /// The optimizer step (0-based).
    pub step: u64,
    /// The layer (0 = first hidden layer), or `None` for the loss.
    pub layer: Option<usize>,
    /// `activation`, `gradient`, `weight` or `loss`.
    pub tensor: String,
    /// The last checkpoint written before it, if any.
    pub last_good_checkpoint: Option<PathBuf>,
}

impl Divergence {
    /// Where the first non-finite value appeared, in words: `gradient of
    /// layer 3`, or `loss`.
    pub fn location(&self) -> String {
        match self.layer {
            Some(l) => format!("{} of layer {l}", self.tensor),
            None => "loss".to_string(),
        }
    }
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "training diverged: the first NaN or infinity appeared at step {} in the {}. \
             Lower the learning rate, clip gradients (TrainConfig::clip_norm), or use a \
             better-scaled initialisation",
            self.step,
            self.location()
        )?;
        match &self.last_good_checkpoint {
            Some(p) => write!(f, "; the last good checkpoint is {}", p.display()),
            None => write!(
                f,
                "; no checkpoint was written (Trainer::set_checkpointing saves them as it trains)"
            ),
        }
    }
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

    fn report(steps: u64, wall: f64) -> RunReport {
        RunReport {
            epochs: vec![EpochLog {
                elapsed_seconds: wall,
                ..Default::default()
            }],
            steps: (0..steps)
                .map(|step| StepLog {
                    step,
                    grad_global_norm: step as f32,
                    ..Default::default()
                })
                .collect(),
            wall_seconds: wall,
            total_steps: steps,
            outcome: "completed".into(),
            ..Default::default()
        }
    }

    #[test]
    fn joined_parts_read_as_one_run() {
        let mut second = report(3, 2.0);
        second.steps.iter_mut().for_each(|s| s.step += 3);
        second.total_steps = 6;
        second.outcome = "done".into();
        let joined = RunReport::join(vec![report(3, 1.0), second], 10);
        assert_eq!(joined.steps.len(), 6);
        assert_eq!(joined.epochs[1].elapsed_seconds, 3.0);
        assert_eq!((joined.total_steps, joined.wall_seconds), (6, 3.0));
        assert_eq!(joined.outcome, "done");
        assert_eq!(joined.samples_per_second, 20.0);
        assert_eq!(RunReport::join(vec![], 1).steps.len(), 0);
    }

    #[test]
    fn end_state_and_norms() {
        let mut r = report(4, 1.0);
        assert_eq!(r.end_step().map(|s| s.step), Some(3));
        assert_eq!(r.max_grad_norm(), (3.0, false));
        r.steps[1].grad_global_norm = f32::NAN;
        assert_eq!(r.max_grad_norm(), (3.0, true));
        r.divergence = Some(Divergence {
            step: 2,
            layer: Some(1),
            tensor: "gradient".into(),
            last_good_checkpoint: None,
        });
        assert!(r.end_step().is_none());
        assert_eq!(r.steps_before_divergence().len(), 2);
        assert!(r.finals().1.is_nan());
        assert_eq!(
            r.short_outcome(),
            "diverged: NaN/inf at step 2 (gradient of layer 1)"
        );
        let step = StepLog {
            layers: vec![Default::default(); 3],
            ..Default::default()
        };
        assert_eq!(step.hidden_layers().len(), 2);
    }
}
