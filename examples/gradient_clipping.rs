//! Gradient clipping by global norm against divergence at a high learning
//! rate.
//!
//! The claim: a deep net that diverges at a high learning rate (its loss
//! explodes and becomes NaN) trains once its gradients are clipped to a
//! fixed global L2 norm, everything else equal.
//!
//! What is measured: an 8 × 64 ReLU MLP (He init) on the embedded digits,
//! SGD with momentum 0.9 at lr 0.5, batch 32, trained once without clipping
//! and once per clipping norm (default 1.0 and 0.25), with the same seed,
//! weights and data order. Every `--log-every` steps the trainer reads back
//! the batch loss and the global gradient norm (computed on the GPU before
//! clipping); the trainer stops a run at the first NaN or infinity and says
//! where it appeared. The table gives, per run, the last completed epoch's
//! validation accuracy and loss, the last logged batch loss, the largest
//! finite global gradient norm seen and how the run ended; the verdict lines
//! under it state what happened, not what was expected.
//!
//! `cargo run --release --features cli --example gradient_clipping -- --clip-norms 1.0,0.25 --lr 0.5`
//!
//! Writes `out/gradient_clipping/`: `report.json` and the comparison plots
//! (`compare::write_outputs`), and `global_norm.png` (global gradient norm
//! and batch loss over the steps, log scale, every run).

use clap::Parser;
use fusedmlp::analysis::fmt_opt;
use fusedmlp::compare;
use fusedmlp::plot::{plot_panels, Panel, Series};
use fusedmlp::{data, Activation, Gpu, Mlp, MlpConfig, Optimizer, RunReport, TrainConfig, Trainer};

#[derive(Parser)]
#[command(about = "Train a deep MLP at a high learning rate with and without gradient clipping")]
struct Args {
    /// Hidden activation.
    #[arg(long, default_value = "relu")]
    activation: Activation,
    /// Hidden layers.
    #[arg(long, default_value_t = 8)]
    depth: usize,
    /// Units per hidden layer.
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// Learning rate (SGD with momentum).
    #[arg(long, default_value_t = 0.5)]
    lr: f32,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// Global-norm clipping thresholds, one clipped run each (the unclipped
    /// run always comes first).
    #[arg(long, value_delimiter = ',', default_value = "1.0,0.25")]
    clip_norms: Vec<f32>,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Read the loss and global gradient norm back every this many steps
    /// (non-finite values are caught on the GPU at every step regardless).
    #[arg(long, default_value_t = 4)]
    log_every: u64,
    /// Seed of the weights, the split and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "out/gradient_clipping")]
    out: std::path::PathBuf,
}

fn main() -> Result<(), fusedmlp::Error> {
    let args = Args::parse();
    let gpu = Gpu::new()?;
    let (train, val) = data::digits()?.split(0.2, args.seed)?;
    let mut model_config = MlpConfig::deep(64, args.depth, args.width, 10, args.activation);
    model_config.seed = args.seed;
    let optimizer = Optimizer::Sgd {
        momentum: args.momentum,
        nesterov: false,
        weight_decay: 0.0,
    };
    println!("adapter: {}", gpu.describe());
    println!(
        "data: digits, {} train / {} validation rows, 64 features (scaled to [0, 1]), 10 classes",
        train.len(),
        val.len()
    );
    println!(
        "model: {} hidden layers x {} units, {} with {} init, softmax head; seed {}",
        args.depth,
        args.width,
        args.activation,
        model_config.init(),
        args.seed
    );
    println!(
        "optimizer: {optimizer}, lr {}, batch {}, {} epochs; loss and global gradient norm read back every {} steps",
        args.lr, args.batch_size, args.epochs, args.log_every
    );
    let clips: Vec<Option<f32>> = std::iter::once(None)
        .chain(args.clip_norms.iter().map(|&c| Some(c)))
        .collect();
    let mut runs = Vec::new();
    for (i, &clip) in clips.iter().enumerate() {
        let label = match clip {
            None => "no clip".to_string(),
            Some(c) => format!("clip {c:?}"),
        };
        println!("run {}/{}: {label}", i + 1, clips.len());
        let train_config = TrainConfig::default()
            .with_epochs(args.epochs)
            .with_batch_size(args.batch_size)
            .with_learning_rate(args.lr)
            .with_optimizer(optimizer)
            .with_clip_norm(clip)
            .with_log_every(args.log_every)
            .with_seed(args.seed);
        let model = Mlp::new(&gpu, model_config.clone())?;
        let mut trainer = Trainer::new(model, train_config, &train, &val)?;
        runs.push(trainer.train(&label, |_, _| {}, |_| {})?);
    }

    println!();
    println!(
        "{:<10} {:>6} {:>7} {:>8} {:>9} {:>10} {:>6} {:>12} {:>6}  outcome",
        "run", "clip", "epochs", "val acc", "val loss", "last loss", "steps", "max ‖g‖", "dead"
    );
    for (run, clip) in runs.iter().zip(&clips) {
        let last_epoch = run.epochs.last();
        let last_loss = run
            .steps
            .iter()
            .rev()
            .map(|s| s.loss)
            .find(|l| l.is_finite());
        let (max, bad) = run.max_grad_norm();
        println!(
            "{:<10} {:>6} {:>7} {} {} {} {:>6} {:>11.3e}{} {:>6.3}  {}",
            run.label,
            clip.map_or("none".to_string(), |c| format!("{c:?}")),
            format!("{}/{}", run.epochs.len(), args.epochs),
            fmt_opt(last_epoch.map(|e| e.val_accuracy), 8, 4),
            fmt_opt(last_epoch.map(|e| e.val_loss), 9, 4),
            last_loss.map_or(format!("{:>10}", "n/a"), |l| format!("{l:>10.3e}")),
            run.total_steps,
            max,
            if bad { "+" } else { " " },
            compare::summarize(run).dead_fraction,
            run.short_outcome()
        );
    }
    println!(
        "epochs: epochs completed; val acc / val loss: at the end of the last completed epoch \
         (n/a: none completed); last loss: last finite logged batch loss; max ‖g‖: largest finite \
         global gradient norm (before clipping) over the logged steps, + = a later logged norm \
         was NaN/inf; dead: mean fraction of hidden units that output 0 for the whole batch at \
         the last logged step; layers are numbered from 0 (first hidden layer)"
    );
    println!();
    println!("measured:");
    for (run, clip) in runs.iter().zip(&clips) {
        let verdict = match (&run.divergence, run.epochs.last()) {
            (Some(d), _) => format!("diverged (first NaN/inf at step {})", d.step),
            (None, Some(e)) if e.val_accuracy >= 0.5 => format!(
                "trained: validation accuracy {:.3} after {} epochs",
                e.val_accuracy,
                run.epochs.len()
            ),
            (None, Some(e)) => format!(
                "did not diverge but did not learn either: validation accuracy {:.3} \
                 (chance is about 0.1), loss {:.3}, {:.0}% of hidden units dead at the end",
                e.val_accuracy,
                e.val_loss,
                100.0 * compare::summarize(run).dead_fraction
            ),
            (None, None) => "no epoch completed".to_string(),
        };
        let step_bound = clip.map_or(String::new(), |c| {
            format!(
                " (clipping bounds a step's gradient part to lr x clip = {:.3})",
                args.lr * c
            )
        });
        println!("  {}: {verdict}{step_bound}", run.label);
    }
    for run in &runs {
        if let Some(d) = &run.divergence {
            println!("  {}: {d}", run.label);
        }
    }
    let trained = |run: &RunReport| {
        run.divergence.is_none() && run.epochs.last().is_some_and(|e| e.val_accuracy >= 0.5)
    };
    let (held, failed): (Vec<&RunReport>, Vec<&RunReport>) =
        runs.iter().skip(1).partition(|r| trained(r));
    let names = |rs: &[&RunReport]| {
        rs.iter()
            .map(|r| r.label.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let baseline = if runs[0].divergence.is_some() {
        "the unclipped run diverged"
    } else {
        "the unclipped run did NOT diverge at this setting"
    };
    println!(
        "  claim \"clipping lets the diverging run train\": {baseline}; clipped runs that trained \
         (val acc >= 0.5): [{}]; that did not: [{}]",
        names(&held),
        names(&failed)
    );
    for run in &runs {
        println!(
            "  {}: {} steps in {:.1} s, {} readbacks",
            run.label, run.total_steps, run.wall_seconds, run.readbacks
        );
    }

    let mut files = compare::write_outputs(&runs, &args.out)?;
    let finite_points = |run: &RunReport, f: fn(&fusedmlp::train::StepLog) -> f32| {
        run.steps
            .iter()
            .map(|s| (s.step as f64, f(s) as f64))
            .filter(|(_, v)| v.is_finite() && *v > 0.0)
            .collect::<Vec<_>>()
    };
    let mut norm_series: Vec<Series> = runs
        .iter()
        .map(|run| Series {
            label: run.label.clone(),
            points: finite_points(run, |s| s.grad_global_norm),
            dashed: false,
            markers: false,
        })
        .collect();
    let last_step = runs
        .iter()
        .filter_map(|r| r.steps.last())
        .map(|s| s.step as f64)
        .fold(0.0, f64::max);
    // Each clipped run's threshold, dashed in the run's colour.
    for (run, clip) in runs.iter().zip(&clips) {
        let Some(c) = clip else { continue };
        norm_series.push(Series {
            label: run.label.clone(),
            points: vec![(0.0, *c as f64), (last_step, *c as f64)],
            dashed: true,
            markers: false,
        });
    }
    let loss_series: Vec<Series> = runs
        .iter()
        .map(|run| Series {
            label: run.label.clone(),
            points: finite_points(run, |s| s.loss),
            dashed: false,
            markers: false,
        })
        .collect();
    let panels = [
        Panel {
            title: "global gradient norm (before clipping)".into(),
            x_label: "step".into(),
            y_label: "‖g‖₂".into(),
            log_y: true,
            y_range: None,
            series: norm_series,
        },
        Panel {
            title: "batch loss".into(),
            x_label: "step".into(),
            y_label: "cross-entropy".into(),
            log_y: true,
            y_range: None,
            series: loss_series,
        },
    ];
    let mut notes = vec![format!(
        "{} x {} {} ({}), SGD momentum {} lr {}, batch {}, seed {}; logged every {} steps; \
         dashed: each clipped run's threshold",
        args.depth,
        args.width,
        args.activation,
        model_config.init(),
        args.momentum,
        args.lr,
        args.batch_size,
        args.seed,
        args.log_every
    )];
    for run in &runs {
        if let Some(d) = &run.divergence {
            notes.push(format!(
                "{}: first NaN/inf at step {}; the line ends at its last finite logged value",
                run.label, d.step
            ));
        }
    }
    let path = args.out.join("global_norm.png");
    plot_panels(
        "Gradient clipping at a high learning rate",
        &panels,
        &notes,
        &path,
    )?;
    files.push(path);
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
