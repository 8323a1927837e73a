//! Side-by-side runs: the same data, architecture, optimizer and seed for
//! each activation, and the table that compares them.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::report::RunReport;
use super::trainer::{TrainConfig, Trainer};
use crate::activation::Activation;
use crate::data::Dataset;
use crate::error::Error;
use crate::gpu::Gpu;
use crate::nn::{Init, Mlp, MlpConfig};

/// One run of a comparison: an activation and its initialiser (`None`: the
/// activation's default).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contender {
    /// The hidden activation.
    pub activation: Activation,
    /// The initialiser.
    pub init: Option<Init>,
}

/// Trains one model per contender on the same data with the same seeds,
/// calling `on_run_start(index, label)` before each and `on_step` during it.
#[allow(clippy::too_many_arguments)]
pub fn compare(
    gpu: &Gpu,
    base: &MlpConfig,
    train_config: &TrainConfig,
    train: &Dataset,
    validation: &Dataset,
    contenders: &[Contender],
    mut on_run_start: impl FnMut(usize, &str, &MlpConfig),
    mut on_step: impl FnMut(u64, u64),
) -> Result<Vec<RunReport>, Error> {
    let mut reports = Vec::new();
    for (i, c) in contenders.iter().enumerate() {
        let mut config = base.clone();
        config.activation = c.activation;
        config.init = c.init;
        let label = match c.init {
            Some(init) => format!("{} ({init})", c.activation),
            None => c.activation.to_string(),
        };
        on_run_start(i, &label, &config);
        let model = Mlp::new(gpu, config)?;
        let mut trainer = Trainer::new(model, train_config.clone(), train, validation)?;
        reports.push(trainer.train(&label, &mut on_step, |_| {})?);
    }
    Ok(reports)
}

/// The per-run figures the comparison table shows.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The run's label.
    pub label: String,
    /// The initialiser used.
    pub init: String,
    /// Final training accuracy.
    pub train_accuracy: f32,
    /// Final validation accuracy.
    pub val_accuracy: f32,
    /// The best validation accuracy of any epoch, and that epoch (0-based):
    /// a run whose last epoch caught a loss spike still shows what it
    /// reached.
    pub best_val_accuracy: f32,
    /// The epoch of `best_val_accuracy` (0 when there are no epochs).
    pub best_val_epoch: usize,
    /// Final training loss.
    pub train_loss: f32,
    /// Final validation loss.
    pub val_loss: f32,
    /// First-layer over last-hidden-layer weight-gradient norm at the first step.
    pub grad_ratio_init: f32,
    /// The same ratio at the last logged step.
    pub grad_ratio_end: f32,
    /// Mean dead fraction over hidden layers at the last logged step.
    pub dead_fraction: f32,
    /// Mean saturated fraction over hidden layers at the last logged step.
    pub saturated_fraction: f32,
    /// Training throughput.
    pub samples_per_second: f64,
    /// How the run ended.
    pub outcome: String,
}

fn ratio(step: Option<&super::report::StepLog>) -> f32 {
    let Some(s) = step else { return f32::NAN };
    // The last layer is the output layer; compare the first and last hidden layers.
    let hidden = s.layers.len().saturating_sub(1).max(1);
    let first = s
        .layers
        .first()
        .map(|l| l.weight_grad_norm)
        .unwrap_or(f32::NAN);
    let last = s
        .layers
        .get(hidden - 1)
        .map(|l| l.weight_grad_norm)
        .unwrap_or(f32::NAN);
    first / last
}

fn mean_hidden(
    step: Option<&super::report::StepLog>,
    f: impl Fn(&super::report::LayerDiagnostics) -> f32,
) -> f32 {
    let Some(s) = step else { return f32::NAN };
    let hidden = &s.layers[..s.layers.len().saturating_sub(1)];
    if hidden.is_empty() {
        return 0.0;
    }
    hidden.iter().map(f).sum::<f32>() / hidden.len() as f32
}

/// Summarises a run.
pub fn summarize(run: &RunReport) -> Summary {
    let last_epoch = run.epochs.last();
    let first = run.steps.first();
    let last = run.steps.last();
    let best = run
        .epochs
        .iter()
        .filter(|e| e.val_accuracy.is_finite())
        .max_by(|a, b| a.val_accuracy.total_cmp(&b.val_accuracy));
    Summary {
        label: run.label.clone(),
        init: run.config["init"].as_str().unwrap_or("?").to_string(),
        train_accuracy: last_epoch.map_or(f32::NAN, |e| e.train_accuracy),
        val_accuracy: last_epoch.map_or(f32::NAN, |e| e.val_accuracy),
        best_val_accuracy: best.map_or(f32::NAN, |e| e.val_accuracy),
        best_val_epoch: best.map_or(0, |e| e.epoch),
        train_loss: last_epoch.map_or(f32::NAN, |e| e.train_loss),
        val_loss: last_epoch.map_or(f32::NAN, |e| e.val_loss),
        grad_ratio_init: ratio(first),
        grad_ratio_end: ratio(last),
        dead_fraction: mean_hidden(last, |l| l.dead_fraction),
        saturated_fraction: mean_hidden(last, |l| l.saturated_fraction),
        samples_per_second: run.samples_per_second,
        outcome: run.outcome.clone(),
    }
}

/// The side-by-side table, one row per run.
pub fn table(runs: &[RunReport]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<22} {:<14} {:>9} {:>9} {:>12} {:>9} {:>9} {:>13} {:>13} {:>7} {:>7} {:>10}",
        "run",
        "init",
        "train acc",
        "val acc",
        "best val@ep",
        "train loss",
        "val loss",
        "‖g1‖/‖gL‖ init",
        "‖g1‖/‖gL‖ end",
        "dead",
        "satur.",
        "samples/s"
    );
    for run in runs {
        let m = summarize(run);
        if let Some(d) = &run.divergence {
            let _ = writeln!(
                s,
                "{:<22} {:<14} diverged at step {} (first non-finite value: {}); ‖g1‖/‖gL‖ at init {:.3e}",
                m.label,
                m.init,
                d.step,
                d.location(),
                m.grad_ratio_init
            );
            continue;
        }
        let _ = writeln!(
            s,
            "{:<22} {:<14} {:>9.4} {:>9.4} {:>12} {:>10.4} {:>9.4} {:>14.3e} {:>13.3e} {:>7.3} {:>7.3} {:>10.0}",
            m.label,
            m.init,
            m.train_accuracy,
            m.val_accuracy,
            format!("{:.4}@{}", m.best_val_accuracy, m.best_val_epoch),
            m.train_loss,
            m.val_loss,
            m.grad_ratio_init,
            m.grad_ratio_end,
            m.dead_fraction,
            m.saturated_fraction,
            m.samples_per_second
        );
    }
    let _ = writeln!(
        s,
        "best val@ep: the best validation accuracy of any epoch, and that epoch (0-based); \
         ‖g1‖/‖gL‖: weight-gradient norm of the first hidden layer over the last hidden layer's \
         (1 = the gradient reaches the first layer undiminished); dead/satur.: mean fraction of \
         hidden units at the last logged step"
    );
    s
}

/// Writes `report.json` (every run in full, with the summaries) and, with
/// the `plots` feature, the plots of [`crate::plot::write_plots`] into
/// `dir`; returns the files written.
pub fn write_outputs(runs: &[RunReport], dir: &Path) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Io {
        context: format!("creating {}", dir.display()),
        source: e,
    })?;
    let json = dir.join("report.json");
    let summaries: Vec<Summary> = runs.iter().map(summarize).collect();
    let text = serde_json::to_string_pretty(&serde_json::json!({
        "summary": summaries,
        "runs": runs,
    }))
    .map_err(|e| Error::Config(format!("serialising the report: {e}")))?;
    std::fs::write(&json, text).map_err(|e| Error::Io {
        context: format!("writing {}", json.display()),
        source: e,
    })?;
    #[allow(unused_mut)]
    let mut files = vec![json];
    #[cfg(feature = "plots")]
    files.extend(crate::plot::write_plots(runs, dir)?);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::report::EpochLog;

    #[test]
    fn the_table_shows_the_best_epoch_beside_the_last() {
        let epoch = |epoch, val_accuracy| EpochLog {
            epoch,
            val_accuracy,
            ..Default::default()
        };
        let run = RunReport {
            label: "relu".into(),
            config: serde_json::json!({ "init": "he_normal" }),
            epochs: vec![epoch(0, 0.5), epoch(1, 0.9), epoch(2, 0.25)],
            ..Default::default()
        };
        let m = summarize(&run);
        assert_eq!((m.best_val_accuracy, m.best_val_epoch), (0.9, 1));
        assert_eq!(m.val_accuracy, 0.25);
        let t = table(&[run]);
        assert!(t.contains("best val@ep") && t.contains("0.9000@1"), "{t}");
        let empty = summarize(&RunReport::default());
        assert!(empty.best_val_accuracy.is_nan());
    }
}
