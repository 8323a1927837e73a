//! Self-normalising networks: SELU with LeCun normal initialisation.
//!
//! The claim (Klambauer et al., 2017): with SELU activations, LeCun normal
//! weights (std = 1/√fan_in) and standardised inputs, the activations of
//! every layer keep mean ≈ 0 and standard deviation ≈ 1 through many
//! layers, without batch or layer normalisation. Compared here with ReLU
//! under He initialisation, and with SELU under He initialisation (weights
//! √2 times too large for SELU's fixed point).
//!
//! What is measured: nets of 32 hidden layers × 64 units (`--depths 32,48`
//! adds deeper ones) on the embedded digits, the features z-scored with a
//! `Standardizer` fitted on the training split. Each net is trained briefly
//! with plain SGD (lr 0.01, batch 32, 5 epochs, the same seed and data
//! order). The trainer computes, on the GPU, the mean and standard deviation
//! of every layer's activations (over the batch and the units) at the first
//! step (the initialisation) and at the last step; the table shows them at
//! the first, middle and last hidden layer, the extremes over all hidden
//! layers, and the final validation accuracy.
//!
//! `cargo run --release --features cli --example self_normalising -- --depths 32,48`
//!
//! Writes `out/self_normalising/`: `report.json`, the comparison plots and
//! `mean_std.png` (per-layer mean and std, at initialisation solid and at
//! the end dashed, one colour per run).

use clap::Parser;
use fusedmlp::compare;
use fusedmlp::plot::{plot_panels, Panel, Series};
use fusedmlp::train::StepLog;
use fusedmlp::{
    data, Activation, Gpu, Init, Mlp, MlpConfig, Optimizer, RunReport, TrainConfig, Trainer,
};

#[derive(Parser)]
#[command(
    about = "Activation mean and std per layer: SELU + LeCun against ReLU + He and SELU + He"
)]
struct Args {
    /// Hidden-layer counts; every run is repeated at each.
    #[arg(long, value_delimiter = ',', default_value = "32,48")]
    depths: Vec<usize>,
    /// Units per hidden layer.
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// Epochs of the short training.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Learning rate (plain SGD).
    #[arg(long, default_value_t = 0.01)]
    lr: f32,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Seed of the weights, the split and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "out/self_normalising")]
    out: std::path::PathBuf,
}

/// The mean panel's fixed y range (SELU under He leaves it; its std panel is
/// on a log scale and shows every run).
const MEAN_RANGE: (f64, f64) = (-0.5, 1.5);

/// The hidden layers' (mean, std) at one logged step (the output layer,
/// last in `layers`, is left out).
fn hidden_stats(step: &StepLog) -> Vec<(f32, f32)> {
    step.hidden_layers()
        .iter()
        .map(|l| (l.activation_mean, l.activation_std))
        .collect()
}

/// "mean/std" of layer `l` (1-based), or "n/a".
fn at(stats: &[(f32, f32)], l: usize) -> String {
    match stats.get(l.wrapping_sub(1)) {
        Some((m, s)) => format!("{m:+.2}/{s:.2}"),
        None => "n/a".into(),
    }
}

/// Largest |mean|, smallest and largest std over the hidden layers.
fn extremes(stats: &[(f32, f32)]) -> (f32, f32, f32) {
    stats.iter().fold(
        (0.0f32, f32::INFINITY, 0.0f32),
        |(m, lo, hi), &(mean, std)| (m.max(mean.abs()), lo.min(std), hi.max(std)),
    )
}

fn main() -> Result<(), fusedmlp::Error> {
    let args = Args::parse();
    if args.depths.is_empty() || args.depths.contains(&0) {
        return Err(fusedmlp::Error::Config(
            "--depths needs at least one depth, each at least 1".into(),
        ));
    }
    let gpu = Gpu::new()?;
    let (mut train, mut val) = data::digits()?.split(0.2, args.seed)?;
    let standardizer = data::Standardizer::fit(&train);
    standardizer.apply(&mut train)?;
    standardizer.apply(&mut val)?;
    let steps_per_epoch = train.len() / args.batch_size.max(1);
    let total_steps = (steps_per_epoch * args.epochs) as u64;
    // Log the first step and the last one.
    let log_every = total_steps.saturating_sub(1).max(1);
    println!("adapter: {}", gpu.describe());
    println!(
        "data: digits, {} train / {} validation rows, 64 features z-scored with the training \
         split's mean and std (constant features become 0), 10 classes",
        train.len(),
        val.len()
    );
    println!(
        "models: {:?} hidden layers x {} units, softmax head, no normalisation layers; plain SGD, \
         lr {}, batch {}, {} epochs ({} steps), seed {}",
        args.depths, args.width, args.lr, args.batch_size, args.epochs, total_steps, args.seed
    );
    println!(
        "activation mean and std per layer: over the batch's {} examples and the layer's units, \
         at step 0 (initialisation) and step {} (the last)",
        args.batch_size,
        total_steps.saturating_sub(1)
    );
    let setups = [
        (Activation::Selu, Init::LecunNormal),
        (Activation::Relu, Init::HeNormal),
        (Activation::Selu, Init::HeNormal),
    ];
    let mut runs: Vec<(usize, RunReport)> = Vec::new();
    let multi = args.depths.len() > 1;
    for &depth in &args.depths {
        for &(activation, init) in &setups {
            let label = if multi {
                format!("{activation}+{init} d{depth}")
            } else {
                format!("{activation}+{init}")
            };
            println!("run {}: {label}", runs.len() + 1);
            let mut config = MlpConfig::deep(64, depth, args.width, 10, activation);
            config.init = Some(init);
            config.seed = args.seed;
            let train_config = TrainConfig::default()
                .with_epochs(args.epochs)
                .with_batch_size(args.batch_size)
                .with_learning_rate(args.lr)
                .with_optimizer(Optimizer::sgd())
                .with_log_every(log_every)
                .with_seed(args.seed);
            let mut trainer = Trainer::new(Mlp::new(&gpu, config)?, train_config, &train, &val)?;
            trainer.set_standardizer(Some(standardizer.clone()))?;
            runs.push((depth, trainer.train(&label, |_, _| {}, |_| {})?));
        }
    }

    println!();
    let name_w = runs
        .iter()
        .map(|(_, r)| r.label.len())
        .max()
        .unwrap_or(3)
        .max(3);
    for (when, pick) in [
        ("at initialisation (step 0)", true),
        ("at the end (last step)", false),
    ] {
        println!("activation mean/std {when}:");
        println!(
            "{:<name_w$} {:>12} {:>12} {:>12} {:>8} {:>14} {:>8}",
            "run", "layer 1", "layer mid", "layer last", "max|μ|", "σ range", "val acc"
        );
        for (depth, run) in &runs {
            let step = if pick {
                run.steps.first()
            } else {
                run.end_step()
            };
            let Some(step) = step else {
                let why = run
                    .divergence
                    .as_ref()
                    .map_or("no logged step".to_string(), |d| {
                        format!(
                            "first NaN/inf at step {}, in the {} of {}",
                            d.step,
                            d.tensor,
                            d.layer.map_or("the loss".to_string(), |l| format!(
                                "layer {} (the trainer's index {l})",
                                l + 1
                            ))
                        )
                    });
                println!("{:<name_w$} diverged: {why}", run.label);
                continue;
            };
            let stats = hidden_stats(step);
            let (max_mean, lo, hi) = extremes(&stats);
            println!(
                "{:<name_w$} {:>12} {:>12} {:>12} {:>8.3} {:>14} {:>8}",
                run.label,
                at(&stats, 1),
                at(&stats, depth / 2),
                at(&stats, *depth),
                max_mean,
                format!("{lo:.2}..{hi:.2}"),
                match run.finals().1 {
                    a if a.is_finite() => format!("{a:.4}"),
                    _ => "n/a".to_string(),
                }
            );
        }
        println!();
    }
    let mids: Vec<String> = args
        .depths
        .iter()
        .map(|d| format!("layer mid = {}, layer last = {d} for depth {d}", d / 2))
        .collect();
    println!(
        "entries are mean/std of the layer's activations; {}; max|μ| and σ range over all hidden \
         layers; val acc: validation accuracy after the last epoch (n/a: the run diverged)",
        mids.join("; ")
    );

    println!();
    println!("measured:");
    for (depth, run) in &runs {
        let describe =
            |step: Option<&StepLog>| {
                let stats = step.map(hidden_stats).unwrap_or_default();
                let (max_mean, lo, hi) = extremes(&stats);
                format!(
                "layer {depth} mean {}, std {}; over all {depth} layers |mean| <= {max_mean:.2}, \
                 std {lo:.2}..{hi:.2}",
                stats.last().map_or("n/a".into(), |s| format!("{:+.2}", s.0)),
                stats.last().map_or("n/a".into(), |s| format!("{:.2}", s.1)),
            )
            };
        println!("  {}: at init {}", run.label, describe(run.steps.first()));
        match run.end_step() {
            Some(end) => println!(
                "  {}: at the end {} (step {}); val acc {:.3}",
                run.label,
                describe(Some(end)),
                end.step,
                run.finals().1
            ),
            None => println!("  {}: {}", run.label, run.outcome),
        }
    }
    let near = |s: &(f32, f32)| s.0.abs() <= 0.1 && (0.8..=1.2).contains(&s.1);
    let in_band =
        |step: Option<&StepLog>| step.map(|st| hidden_stats(st).iter().filter(|s| near(s)).count());
    for (depth, run) in &runs {
        println!(
            "  {}: hidden layers with |mean| <= 0.1 and std in [0.8, 1.2]: {}/{depth} at init, {} at \
             the end",
            run.label,
            in_band(run.steps.first()).unwrap_or(0),
            in_band(run.end_step()).map_or("n/a (diverged)".to_string(), |n| format!("{n}/{depth}"))
        );
    }
    for (depth, run) in runs
        .iter()
        .filter(|(_, r)| r.label.starts_with("selu+lecun_normal"))
    {
        let init = in_band(run.steps.first()).unwrap_or(0);
        let end = in_band(run.end_step());
        let (m0, lo0, hi0) = extremes(&run.steps.first().map(hidden_stats).unwrap_or_default());
        let at_init = if init == *depth {
            format!(
                "holds at initialisation (every layer: |mean| <= {m0:.2}, std {lo0:.2}..{hi0:.2})"
            )
        } else {
            format!("does NOT hold at initialisation ({init}/{depth} layers in the band)")
        };
        let at_end = match (end, run.end_step()) {
            (Some(n), Some(st)) => {
                let (m, lo, hi) = extremes(&hidden_stats(st));
                let last = hidden_stats(st).last().map_or(f32::NAN, |s| s.1);
                format!(
                    "after {} epochs of SGD {n}/{depth} layers stay in the band (|mean| <= {m:.2}, \
                     std {lo:.2}..{hi:.2}; layer {depth} std {last:.2})",
                    args.epochs
                )
            }
            _ => "the run diverged".to_string(),
        };
        println!(
            "  claim \"SELU + LeCun keeps mean ~0 and std ~1 through {depth} layers\": {at_init}; \
             {at_end}"
        );
    }

    let reports: Vec<RunReport> = runs.iter().map(|(_, r)| r.clone()).collect();
    let mut files = compare::write_outputs(&reports, &args.out)?;
    // One figure per depth (the deeper nets share the shallower ones' first
    // layers at initialisation: same seed, same per-layer generators).
    for (k, &depth) in args.depths.iter().enumerate() {
        let of_depth: Vec<&RunReport> = runs
            .iter()
            .filter(|(d, _)| *d == depth)
            .map(|(_, r)| r)
            .collect();
        let suffix = format!(" d{depth}");
        let series = |pick: fn(&(f32, f32)) -> f32| -> Vec<Series> {
            let mut v = Vec::new();
            for run in &of_depth {
                for (step, dashed) in [(run.steps.first(), false), (run.end_step(), true)] {
                    let Some(step) = step else { continue };
                    v.push(Series {
                        label: run.label.trim_end_matches(&suffix).to_string(),
                        points: hidden_stats(step)
                            .iter()
                            .enumerate()
                            .map(|(i, s)| ((i + 1) as f64, pick(s) as f64))
                            .collect(),
                        dashed,
                        markers: false,
                    });
                }
            }
            v
        };
        let panels = [
            Panel {
                title: format!("activation mean per layer (axis cut at {MEAN_RANGE:?})"),
                x_label: "hidden layer".into(),
                y_label: "mean".into(),
                log_y: false,
                y_range: Some(MEAN_RANGE),
                series: series(|s| s.0),
            },
            Panel {
                title: "activation std per layer (log scale)".into(),
                x_label: "hidden layer".into(),
                y_label: "standard deviation".into(),
                log_y: true,
                y_range: None,
                series: series(|s| s.1),
            },
        ];
        let mut notes = vec![
            format!(
                "solid: at initialisation (step 0); dashed: after {} epochs of plain SGD, lr {} \
                 (step {}); digits z-scored; width {}, seed {}",
                args.epochs,
                args.lr,
                total_steps.saturating_sub(1),
                args.width,
                args.seed
            ),
            format!(
                "mean and std over one batch of {} examples and all the layer's units, computed \
                 on the GPU",
                args.batch_size
            ),
        ];
        for run in &of_depth {
            let label = run.label.trim_end_matches(&suffix);
            if let Some(first) = run.steps.first() {
                let stats = hidden_stats(first);
                let out: Vec<usize> = stats
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| !(MEAN_RANGE.0..=MEAN_RANGE.1).contains(&(s.0 as f64)))
                    .map(|(i, _)| i + 1)
                    .collect();
                if let Some(&l) = out.first() {
                    let (max_mean, _, _) = extremes(&stats);
                    notes.push(format!(
                        "{label}: at initialisation the mean leaves the axis from layer {l} \
                         (|mean| up to {max_mean:.1})"
                    ));
                }
            }
            if let Some(d) = &run.divergence {
                notes.push(format!(
                    "{label}: diverged (first NaN/inf at step {}), so it has no dashed line",
                    d.step
                ));
            }
        }
        let path = if k == 0 {
            args.out.join("mean_std.png")
        } else {
            args.out.join(format!("mean_std_d{depth}.png"))
        };
        plot_panels(
            &format!(
                "Self-normalising? Activation mean and std through {depth} layers of {} units",
                args.width
            ),
            &panels,
            &notes,
            &path,
        )?;
        files.push(path);
    }
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
