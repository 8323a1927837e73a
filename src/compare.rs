//! Side-by-side runs: the same data, architecture, optimizer and seed for
//! each activation, and the table that compares them.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::activation::Activation;
use crate::data::Dataset;
use crate::error::Error;
use crate::gpu::Gpu;
use crate::nn::{Init, Mlp, MlpConfig};
use crate::train::seeds::median_range;
use crate::train::{LayerDiagnostics, RunReport, Seeds, StepLog, TrainConfig, Trainer};

/// One run of a comparison: an activation and its initialiser (`None`: the
/// activation's default), optionally with a label and a training
/// configuration of its own (a baseline at another schedule, say).
#[derive(Debug, Clone, PartialEq)]
pub struct Contender {
    /// The hidden activation.
    pub activation: Activation,
    /// The initialiser.
    pub init: Option<Init>,
    /// The run's label (`None`: the activation's name, with the
    /// initialiser's when one is given).
    pub label: Option<String>,
    /// This run's own training configuration instead of the comparison's
    /// (`None`: the comparison's). Its seed is replaced by the comparison's,
    /// so every contender sees the same data order.
    pub train: Option<TrainConfig>,
}

impl Contender {
    /// The activation with its default initialiser and the comparison's
    /// training configuration.
    pub fn new(activation: Activation) -> Contender {
        Contender {
            activation,
            init: None,
            label: None,
            train: None,
        }
    }

    /// The run's label in tables, plots and reports.
    pub fn label(&self) -> String {
        match (&self.label, self.init) {
            (Some(label), _) => label.clone(),
            (None, Some(init)) => format!("{} ({init})", self.activation),
            (None, None) => self.activation.to_string(),
        }
    }
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
        let label = c.label();
        let mut tc = c.train.clone().unwrap_or_else(|| train_config.clone());
        tc.seed = train_config.seed;
        on_run_start(i, &label, &config);
        let model = Mlp::new(gpu, config)?;
        let mut trainer = Trainer::new(model, tc, train, validation)?;
        reports.push(trainer.train(&label, &mut on_step, |_| {})?);
    }
    Ok(reports)
}

/// A comparison repeated over several seeds: `runs[s][c]` is contender `c`
/// trained with seed `seeds[s]` (the weights, the split and the data order
/// all follow the seed).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SeedRuns {
    /// The seeds, in the order run.
    pub seeds: Vec<u64>,
    /// One comparison per seed, contenders in the same order each time.
    pub runs: Vec<Vec<RunReport>>,
}

impl SeedRuns {
    /// How many contenders each seed ran.
    pub fn contenders(&self) -> usize {
        self.runs.first().map_or(0, Vec::len)
    }

    /// Contender `c`'s run on every seed.
    pub fn of_contender(&self, c: usize) -> Vec<&RunReport> {
        self.runs.iter().filter_map(|r| r.get(c)).collect()
    }

    /// Every run, seed by seed.
    pub fn all(&self) -> Vec<RunReport> {
        self.runs.iter().flatten().cloned().collect()
    }
}

/// [`compare`] once per seed: for each seed, `split(seed)` gives the
/// (training, validation) data, and the model's and the training's seeds
/// are set to it. `on_run_start(seed, index, label, config)` is called
/// before each run.
#[allow(clippy::too_many_arguments)]
pub fn compare_seeds(
    gpu: &Gpu,
    base: &MlpConfig,
    train_config: &TrainConfig,
    seeds: &Seeds,
    mut split: impl FnMut(u64) -> Result<(Dataset, Dataset), Error>,
    contenders: &[Contender],
    mut on_run_start: impl FnMut(u64, usize, &str, &MlpConfig),
    mut on_step: impl FnMut(u64, u64),
) -> Result<SeedRuns, Error> {
    let mut out = SeedRuns::default();
    for &seed in seeds.as_slice() {
        let (train, validation) = split(seed)?;
        let mut base = base.clone();
        base.seed = seed;
        let mut tc = train_config.clone();
        tc.seed = seed;
        let runs = compare(
            gpu,
            &base,
            &tc,
            &train,
            &validation,
            contenders,
            |i, label, config| on_run_start(seed, i, label, config),
            &mut on_step,
        )?;
        out.seeds.push(seed);
        out.runs.push(runs);
    }
    Ok(out)
}

/// The per-run figures the comparison table shows.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The run's label.
    pub label: String,
    /// The initialiser used.
    pub init: String,
    /// Training accuracy over the last epoch's batches (a running average).
    pub train_accuracy: f32,
    /// Accuracy of the whole training split evaluated after the last epoch.
    pub train_eval_accuracy: f32,
    /// Final validation accuracy.
    pub val_accuracy: f32,
    /// The lowest validation accuracy of the last 5 epochs (or of every
    /// epoch, when there are fewer): a loss spike near the end shows here.
    pub val_accuracy_min_last5: f32,
    /// The best validation accuracy of any epoch, and that epoch (0-based):
    /// a run whose last epoch caught a loss spike still shows what it
    /// reached.
    pub best_val_accuracy: f32,
    /// The epoch of `best_val_accuracy` (0 when there are no epochs).
    pub best_val_epoch: usize,
    /// Mean training loss over the last epoch's batches (a running average).
    pub train_loss: f32,
    /// Loss of the whole training split evaluated after the last epoch.
    pub train_eval_loss: f32,
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

fn ratio(step: Option<&StepLog>) -> f32 {
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

fn mean_hidden(step: Option<&StepLog>, f: impl Fn(&LayerDiagnostics) -> f32) -> f32 {
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
        train_eval_accuracy: last_epoch.map_or(f32::NAN, |e| e.train_eval_accuracy),
        val_accuracy: last_epoch.map_or(f32::NAN, |e| e.val_accuracy),
        val_accuracy_min_last5: run
            .epochs
            .iter()
            .rev()
            .take(5)
            .map(|e| e.val_accuracy)
            .reduce(f32::min)
            .unwrap_or(f32::NAN),
        best_val_accuracy: best.map_or(f32::NAN, |e| e.val_accuracy),
        best_val_epoch: best.map_or(0, |e| e.epoch),
        train_loss: last_epoch.map_or(f32::NAN, |e| e.train_loss),
        train_eval_loss: last_epoch.map_or(f32::NAN, |e| e.train_eval_loss),
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
        "{:<26} {:<14} {:>9} {:>9} {:>8} {:>8} {:>11} {:>10} {:>8} {:>14} {:>13} {:>6} {:>6} {:>9}",
        "run",
        "init",
        "train avg",
        "train end",
        "val acc",
        "val min5",
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
                "{:<26} {:<14} diverged at step {} (first non-finite value: {}); ‖g1‖/‖gL‖ at init {:.3e}",
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
            "{:<26} {:<14} {:>9.4} {:>9.4} {:>8.4} {:>8.4} {:>11} {:>10.4} {:>8.4} {:>14.3e} {:>13.3e} {:>6.3} {:>6.3} {:>9.0}",
            m.label,
            m.init,
            m.train_accuracy,
            m.train_eval_accuracy,
            m.val_accuracy,
            m.val_accuracy_min_last5,
            format!("{:.4}@{}", m.best_val_accuracy, m.best_val_epoch),
            m.train_eval_loss,
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
        "accuracies and losses at the last epoch. train avg: running average over the epoch's \
         batches; train end, train loss: the whole training split evaluated after the epoch; \
         val min5: the lowest validation accuracy of the last 5 epochs; best val@ep: the best \
         validation accuracy of any epoch, and that epoch (0-based); ‖g1‖/‖gL‖: weight-gradient \
         norm of the first hidden layer over the last hidden layer's (1 = the gradient reaches \
         the first layer undiminished); dead/satur.: mean fraction of hidden units at the last \
         logged step"
    );
    s
}

/// One figure of a contender over seeds: its median and range.
#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    /// What was measured.
    pub metric: String,
    /// The median over the seeds whose value is finite (NaN: none).
    pub median: f64,
    /// The lowest value.
    pub min: f64,
    /// The highest value.
    pub max: f64,
    /// The value on each seed, in the seeds' order.
    pub values: Vec<f64>,
}

/// A contender's figures over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct SeedSummary {
    /// The contender's label.
    pub label: String,
    /// Seeds whose run diverged.
    pub diverged: usize,
    /// One entry per metric (see [`seed_table`]).
    pub metrics: Vec<Spread>,
}

/// The metrics [`seed_table`] summarises, with how to read each from a run.
/// Reads one figure from a run's summary.
type Metric = fn(&Summary) -> f32;

const SEED_METRICS: [(&str, Metric); 12] = [
    ("val acc (last epoch)", |m| m.val_accuracy),
    ("val acc, lowest of last 5", |m| m.val_accuracy_min_last5),
    ("best val acc", |m| m.best_val_accuracy),
    ("train acc (end of last epoch)", |m| m.train_eval_accuracy),
    ("train acc (last epoch's batches)", |m| m.train_accuracy),
    ("train loss (end of last epoch)", |m| m.train_eval_loss),
    ("val loss (last epoch)", |m| m.val_loss),
    ("‖g1‖/‖gL‖ at init", |m| m.grad_ratio_init),
    ("‖g1‖/‖gL‖ at the end", |m| m.grad_ratio_end),
    ("dead fraction", |m| m.dead_fraction),
    ("saturated fraction", |m| m.saturated_fraction),
    ("samples/s", |m| m.samples_per_second as f32),
];

/// Each contender's figures over the seeds: median and range per metric.
pub fn seed_summaries(runs: &SeedRuns) -> Vec<SeedSummary> {
    (0..runs.contenders())
        .map(|c| {
            let all = runs.of_contender(c);
            let summaries: Vec<Summary> = all.iter().map(|r| summarize(r)).collect();
            let metrics = SEED_METRICS
                .iter()
                .map(|(name, get)| {
                    let values: Vec<f64> = summaries.iter().map(|m| f64::from(get(m))).collect();
                    let (median, min, max) =
                        median_range(&values).unwrap_or((f64::NAN, f64::NAN, f64::NAN));
                    Spread {
                        metric: name.to_string(),
                        median,
                        min,
                        max,
                        values,
                    }
                })
                .collect();
            SeedSummary {
                label: all.first().map_or_else(String::new, |r| r.label.clone()),
                diverged: all.iter().filter(|r| r.divergence.is_some()).count(),
                metrics,
            }
        })
        .collect()
}

fn spread_cell(metric: &str, s: &Spread) -> String {
    if s.median.is_nan() {
        return "n/a".into();
    }
    let ratio = metric.starts_with('‖');
    let f = |v: f64| {
        if ratio {
            format!("{v:.1e}")
        } else if metric == "samples/s" {
            format!("{v:.0}")
        } else {
            format!("{v:.3}")
        }
    };
    format!("{} [{}, {}]", f(s.median), f(s.min), f(s.max))
}

/// The comparison over seeds: one row per metric, one column per
/// contender, each cell the median over the seeds and the range
/// `[lowest, highest]`; then how many runs diverged, where any did.
pub fn seed_table(runs: &SeedRuns) -> String {
    let summaries = seed_summaries(runs);
    let seeds = runs
        .seeds
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut s = String::new();
    let _ = writeln!(
        s,
        "median [lowest, highest] over {} seeds ({seeds})",
        runs.seeds.len()
    );
    let width = summaries
        .iter()
        .flat_map(|m| {
            std::iter::once(m.label.chars().count()).chain(
                m.metrics
                    .iter()
                    .map(|x| spread_cell(&x.metric, x).chars().count()),
            )
        })
        .max()
        .unwrap_or(10)
        + 2;
    let _ = write!(s, "{:<34}", "metric");
    for m in &summaries {
        let _ = write!(s, "{:>width$}", m.label);
    }
    let _ = writeln!(s);
    for (i, (name, _)) in SEED_METRICS.iter().enumerate() {
        let _ = write!(s, "{name:<34}");
        for m in &summaries {
            let _ = write!(s, "{:>width$}", spread_cell(name, &m.metrics[i]));
        }
        let _ = writeln!(s);
    }
    if summaries.iter().any(|m| m.diverged > 0) {
        let _ = write!(s, "{:<34}", "diverged runs");
        for m in &summaries {
            let _ = write!(s, "{:>width$}", m.diverged);
        }
        let _ = writeln!(s);
    }
    s
}

/// The main job's training recipe (the `relu_vs_sigmoid` example, its
/// tests and `scripts/run.sh`): plain SGD, batch 32, a peak learning rate
/// of 0.03 reached by a linear warm-up over the first 2 epochs and decayed
/// to 0 by a cosine over the run. With `train_rows` training rows, `epochs`
/// epochs and the `seed`. Chosen by measurement over 5 seeds on both kernel
/// paths (see the README): at a constant 0.05 the 20-layer ReLU net is on
/// the edge of stability and its last epoch can land in a loss spike; with
/// the decay from 0.05 every seed ends trained, but the two kernel paths'
/// rounding still sends a seed to outcomes 0.031 apart; from 0.03 they end
/// within 0.014 of each other. The 20-layer sigmoid net's vanishing
/// gradient is untouched (a schedule scales every layer's update alike).
pub fn main_job_recipe(train_rows: usize, epochs: usize, seed: u64) -> TrainConfig {
    let batch_size = 32;
    let steps_per_epoch = (train_rows / batch_size) as u64;
    TrainConfig {
        epochs,
        batch_size,
        learning_rate: Some(0.03),
        optimizer: crate::nn::Optimizer::sgd(),
        schedule: crate::nn::Schedule::Cosine { min_lr: 0.0 },
        warmup_steps: 2 * steps_per_epoch,
        log_every: 25,
        seed,
        ..Default::default()
    }
}

/// Writes `report.json` (every run in full, with the summaries) and, with
/// the `plots` feature, the plots of `plot::write_plots` into
/// `dir`; returns the files written.
pub fn write_outputs(runs: &[RunReport], dir: &Path) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Io {
        context: format!("creating {}", dir.display()),
        source: e,
    })?;
    let json = dir.join("report.json");
    let summaries: Vec<Summary> = runs.iter().map(summarize).collect();
    write_json(
        &json,
        &serde_json::json!({
            "summary": summaries,
            "runs": runs,
        }),
    )?;
    #[allow(unused_mut)]
    let mut files = vec![json];
    #[cfg(feature = "plots")]
    files.extend(crate::plot::write_plots(runs, dir)?);
    Ok(files)
}

/// Writes the comparison over seeds into `dir`: `report.json` (the seeds,
/// each contender's [`SeedSummary`] and every run in full) and, with the
/// `plots` feature, `curves.png` with every seed's curves (thin) and their
/// median (thick), and the other figures of `plot::write_plots`
/// for the first seed's runs. Returns the files written.
pub fn write_seed_outputs(runs: &SeedRuns, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let Some(first) = runs.runs.first() else {
        return Err(Error::Config("no runs to write".into()));
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::Io {
        context: format!("creating {}", dir.display()),
        source: e,
    })?;
    let json = dir.join("report.json");
    write_json(
        &json,
        &serde_json::json!({
            "seeds": runs.seeds,
            "summary": seed_summaries(runs),
            "runs": runs.runs,
        }),
    )?;
    #[allow(unused_mut)]
    let mut files = vec![json];
    #[cfg(feature = "plots")]
    {
        files.extend(crate::plot::write_plots(first, dir)?);
        crate::plot::plot_curves(&runs.all(), &dir.join("curves.png"))?;
    }
    #[cfg(not(feature = "plots"))]
    let _ = first;
    Ok(files)
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Config(format!("serialising the report: {e}")))?;
    std::fs::write(path, text).map_err(|e| Error::Io {
        context: format!("writing {}", path.display()),
        source: e,
    })
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

    fn run(label: &str, vals: &[f32], train_end: f32) -> RunReport {
        RunReport {
            label: label.into(),
            epochs: vals
                .iter()
                .enumerate()
                .map(|(epoch, &val_accuracy)| EpochLog {
                    epoch,
                    val_accuracy,
                    train_eval_accuracy: train_end,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_lowest_of_the_last_five_epochs_shows_a_late_spike() {
        let m = summarize(&run(
            "relu",
            &[0.1, 0.2, 0.9, 0.95, 0.3, 0.96, 0.97, 0.97],
            0.99,
        ));
        assert_eq!(m.val_accuracy_min_last5, 0.3);
        assert_eq!(m.train_eval_accuracy, 0.99);
        let short = summarize(&run("relu", &[0.4, 0.6], 0.5));
        assert_eq!(short.val_accuracy_min_last5, 0.4);
    }

    #[test]
    fn the_seed_table_gives_each_contenders_median_and_range() {
        let runs = SeedRuns {
            seeds: vec![0, 1, 2],
            runs: vec![
                vec![
                    run("relu", &[0.5, 0.93], 0.9),
                    run("sigmoid", &[0.1, 0.11], 0.1),
                ],
                vec![
                    run("relu", &[0.5, 0.97], 0.9),
                    run("sigmoid", &[0.1, 0.09], 0.1),
                ],
                vec![
                    run("relu", &[0.5, 0.95], 0.9),
                    run("sigmoid", &[0.1, 0.10], 0.1),
                ],
            ],
        };
        let summaries = seed_summaries(&runs);
        assert_eq!(summaries.len(), 2);
        let val = &summaries[0].metrics[0];
        assert_eq!(val.metric, "val acc (last epoch)");
        assert!((val.median - 0.95).abs() < 1e-6 && (val.min - 0.93).abs() < 1e-6);
        assert!((val.max - 0.97).abs() < 1e-6 && val.values.len() == 3);
        let t = seed_table(&runs);
        assert!(t.contains("over 3 seeds (0, 1, 2)"), "{t}");
        assert!(t.contains("0.950 [0.930, 0.970]"), "{t}");
        assert!(t.contains("0.100 [0.090, 0.110]"), "{t}");
        assert!(!t.contains("diverged"), "{t}");
    }
}
