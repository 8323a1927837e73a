//! Normalisation layers and residual connections in very deep MLPs.
//!
//! The claim: a 50-layer sigmoid or tanh net that cannot train plain trains
//! with BatchNorm or LayerNorm, and a 100-layer ReLU net trains with residual
//! connections; the gradient norm per layer shows why.
//!
//! What is measured: on the embedded digits, the features z-scored with a
//! `Standardizer` fitted on the training split, three groups of nets of 64
//! units per hidden layer, each activation with its default initialiser
//! (Xavier normal with PyTorch's gains for sigmoid and tanh, He normal for
//! ReLU):
//!
//! * 50 hidden layers of sigmoid: plain, BatchNorm before the activation,
//!   LayerNorm before the activation;
//! * the same with tanh;
//! * 100 hidden layers of ReLU: plain, residual connections (`x + f(x)` in
//!   every hidden layer after the first), residual with the branches'
//!   initial parameters scaled by 1/√(blocks) (`scale_residual_init`), and
//!   residual + BatchNorm.
//!
//! Every run has the same split, seed, data order and training: Adam
//! (PyTorch's betas and eps) at lr 3e-3, batch 64, 4 epochs (88 steps;
//! the nine runs take about 3 to 5 minutes on 2 CPU cores with lavapipe).
//! That setting was picked among SGD with momentum 0.9 at lr 0.01 and 0.05
//! and Adam at 1e-3 and 3e-3, over 4 and 5 epochs, as the one under which
//! the normalised and residual nets reached the highest mean validation
//! accuracy; `--optimizer`, `--lr`, `--momentum` and `--epochs` rerun the
//! others.
//!
//! The trainer logs the per-layer diagnostics, computed on the GPU, at the
//! first step (the initialisation) and at the last. The table of each group
//! gives the weight-gradient L2 norm at step 0 at the first, middle and last
//! hidden layer, the ratio first/last (how much the gradient shrinks on its
//! way from the output back to the input), the final training loss and
//! validation accuracy, and whether the run trained: validation accuracy at
//! least 0.5 (five times the 0.1 of chance) after the last epoch, with no
//! NaN or infinity. The validation accuracy after every epoch is printed too
//! (a run under the bar may still be climbing), and one line per group
//! states what was measured against the claim.
//!
//! `cargo run --release --features cli --example normalisation_and_residuals -- --activations sigmoid,tanh --depth 50 --residual-depth 100`
//!
//! Writes `out/normalisation_and_residuals/`: `report.json` and the
//! comparison plots (`compare::write_outputs`: `curves.png`,
//! `dead_saturated.png`, `histograms_<run>.png`), and `gradient_norms.png`
//! in place of the comparison's figure of that name: the per-layer
//! weight-gradient norm on a log scale, one panel per group and one line per
//! run, at initialisation (top row) and at the last step (bottom row).

use clap::Parser;
use fusedmlp::analysis::fmt_sci;
use fusedmlp::compare;
use fusedmlp::nn::NormPlacement;
use fusedmlp::plot::{plot_panels, Panel, Series};
use fusedmlp::train::StepLog;
use fusedmlp::{
    data, Activation, Error, Gpu, Mlp, MlpConfig, Optimizer, RunReport, TrainConfig, Trainer,
};

#[derive(Parser)]
#[command(
    about = "Deep sigmoid and tanh nets plain, with BatchNorm and with LayerNorm; a deep ReLU net \
             plain and residual; gradient norm per layer for each"
)]
struct Args {
    /// Activations of the normalisation groups; each trains plain, with
    /// BatchNorm and with LayerNorm (both before the activation).
    #[arg(long, value_delimiter = ',', default_value = "sigmoid,tanh")]
    activations: Vec<Activation>,
    /// Hidden layers of the normalisation groups.
    #[arg(long, default_value_t = 50)]
    depth: usize,
    /// Hidden layers of the ReLU group (plain, residual, residual + BatchNorm).
    #[arg(long, default_value_t = 100)]
    residual_depth: usize,
    /// Leave out the ReLU group.
    #[arg(long)]
    no_residual_group: bool,
    /// Leave out the ReLU group's residual + BatchNorm run.
    #[arg(long)]
    no_residual_batch_norm: bool,
    /// Units per hidden layer.
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// Optimizer (sgd, adam, adamw, rmsprop), with PyTorch's defaults.
    #[arg(long, default_value = "adam")]
    optimizer: Optimizer,
    /// Momentum, with `--optimizer sgd` only [default there: 0.9].
    #[arg(long)]
    momentum: Option<f32>,
    /// Learning rate.
    #[arg(long, default_value_t = 3e-3)]
    lr: f32,
    /// Epochs.
    #[arg(long, default_value_t = 4)]
    epochs: usize,
    /// Batch size (BatchNorm needs 2 or more).
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Seed of the weights, the split and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "out/normalisation_and_residuals")]
    out: std::path::PathBuf,
}

/// Validation accuracy a run must reach to count as trained (chance is 0.1).
const TRAINED_ACC: f32 = 0.5;

/// Gradient norms at or below this are not drawn on the log axis (the
/// activations flush results below 1e-30 to zero).
const DRAW_FLOOR: f64 = 1e-30;

/// One run of a group: its variant name and its model.
struct Spec {
    variant: &'static str,
    config: MlpConfig,
}

/// Runs sharing an activation and a depth.
struct Group {
    activation: Activation,
    depth: usize,
    specs: Vec<Spec>,
    runs: Vec<RunReport>,
}

impl Group {
    fn title(&self) -> String {
        format!("{} hidden layers of {}", self.depth, self.activation)
    }
}

/// Weight-gradient norms of the hidden layers at one logged step (the output
/// layer, last in `layers`, is left out).
fn hidden_norms(step: &StepLog) -> Vec<f32> {
    step.hidden_layers()
        .iter()
        .map(|l| l.weight_grad_norm)
        .collect()
}

/// Whether the run trained: no NaN/inf, and final validation accuracy at
/// least [`TRAINED_ACC`].
fn trained(run: &RunReport) -> bool {
    run.divergence.is_none()
        && run
            .epochs
            .last()
            .is_some_and(|e| e.val_accuracy >= TRAINED_ACC)
}

/// A loss or accuracy: fixed point, or scientific when huge.
fn fixed(v: f32) -> String {
    if !v.is_finite() {
        "n/a".into()
    } else if v.abs() < 1e4 {
        format!("{v:.4}")
    } else {
        format!("{v:.2e}")
    }
}

/// Weight-gradient norm of hidden layer `l` (1-based) at step 0.
fn norm_at(run: &RunReport, l: usize) -> Option<f32> {
    run.steps
        .first()
        .and_then(|s| hidden_norms(s).get(l.wrapping_sub(1)).copied())
}

/// How the run ended, in words.
fn outcome(run: &RunReport) -> String {
    let (_, acc) = run.finals();
    match &run.divergence {
        Some(d) => format!("diverged (first NaN/inf at step {})", d.step),
        None if trained(run) => format!("trained (val acc {acc:.3})"),
        None => format!("did NOT train (val acc {acc:.3})"),
    }
}

fn check(ok: bool, message: &str) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(Error::Config(message.into()))
    }
}

fn main() -> Result<(), Error> {
    let args = Args::parse();
    check(
        !args.activations.is_empty() || !args.no_residual_group,
        "nothing to run: give --activations or drop --no-residual-group",
    )?;
    check(args.depth >= 1, "--depth must be at least 1")?;
    check(
        args.residual_depth >= 1,
        "--residual-depth must be at least 1",
    )?;
    check(args.width >= 1, "--width must be at least 1")?;
    check(
        args.batch_size >= 2,
        "--batch-size must be at least 2 (BatchNorm estimates a variance over the batch)",
    )?;
    let optimizer = match (args.optimizer, args.momentum) {
        (
            Optimizer::Sgd {
                nesterov,
                weight_decay,
                ..
            },
            momentum,
        ) => Optimizer::Sgd {
            momentum: momentum.unwrap_or(0.9),
            nesterov,
            weight_decay,
        },
        (other, None) => other,
        (other, Some(_)) => {
            return Err(Error::Config(format!(
                "--momentum applies to --optimizer sgd only, not {}",
                other.name()
            )))
        }
    };
    let (mut train, mut val) = data::digits()?.split(0.2, args.seed)?;
    let standardizer = data::Standardizer::fit(&train);
    standardizer.apply(&mut train)?;
    standardizer.apply(&mut val)?;
    let total_steps = (train.len() / args.batch_size.max(1) * args.epochs) as u64;
    let train_config = TrainConfig::default()
        .with_epochs(args.epochs)
        .with_batch_size(args.batch_size)
        .with_learning_rate(args.lr)
        .with_optimizer(optimizer)
        // Log the first step (the initialisation) and the last one.
        .with_log_every(total_steps.saturating_sub(1).max(1))
        .with_seed(args.seed);
    train_config.validate(train.len())?;

    let model = |activation, depth, residual, batch_norm, layer_norm| {
        let mut c = MlpConfig::deep(64, depth, args.width, 10, activation);
        c.seed = args.seed;
        c.residual = residual;
        c.batch_norm = batch_norm;
        c.layer_norm = layer_norm;
        c
    };
    let before = Some(NormPlacement::Before);
    let mut groups: Vec<Group> = args
        .activations
        .iter()
        .map(|&a| Group {
            activation: a,
            depth: args.depth,
            specs: vec![
                Spec {
                    variant: "plain",
                    config: model(a, args.depth, false, None, None),
                },
                Spec {
                    variant: "batch_norm",
                    config: model(a, args.depth, false, before, None),
                },
                Spec {
                    variant: "layer_norm",
                    config: model(a, args.depth, false, None, before),
                },
            ],
            runs: Vec::new(),
        })
        .collect();
    if !args.no_residual_group {
        let (a, d) = (Activation::Relu, args.residual_depth);
        let mut specs = vec![
            Spec {
                variant: "plain",
                config: model(a, d, false, None, None),
            },
            Spec {
                variant: "residual",
                config: model(a, d, true, None, None),
            },
            Spec {
                variant: "residual+scaled_init",
                config: model(a, d, true, None, None).with_scale_residual_init(true),
            },
        ];
        if !args.no_residual_batch_norm {
            specs.push(Spec {
                variant: "residual+batch_norm",
                config: model(a, d, true, before, None),
            });
        }
        groups.push(Group {
            activation: a,
            depth: d,
            specs,
            runs: Vec::new(),
        });
    }
    for g in &groups {
        for s in &g.specs {
            s.config.validate()?;
        }
    }

    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());
    println!(
        "data: digits, {} train / {} validation rows, 64 features z-scored with the training \
         split's mean and std (constant features become 0), 10 classes",
        train.len(),
        val.len()
    );
    println!(
        "training: {optimizer}, lr {}, batch {}, {} epochs ({} steps), seed {}; the same split, \
         weights seed and data order for every run; diagnostics logged at step 0 and step {}",
        args.lr,
        args.batch_size,
        args.epochs,
        total_steps,
        args.seed,
        total_steps.saturating_sub(1)
    );
    println!(
        "models: {} units per hidden layer, softmax head, each activation's default initialiser; \
         BatchNorm and LayerNorm sit before the activation (f(norm(x·Wᵀ + b))), with learnable \
         scale and shift, eps 1e-5; residual: every hidden layer after the first computes x + f(x); \
         scaled_init: the residual branches' initial weights and biases times 1/sqrt(blocks)",
        args.width
    );
    for g in &groups {
        println!(
            "group: {}, init {}: {}",
            g.title(),
            g.specs[0].config.init(),
            g.specs
                .iter()
                .map(|s| s.variant)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let n_runs: usize = groups.iter().map(|g| g.specs.len()).sum();
    // The depth goes into the labels only where two groups share an activation.
    let shared: Vec<bool> = groups
        .iter()
        .map(|g| {
            groups
                .iter()
                .filter(|h| h.activation == g.activation)
                .count()
                > 1
        })
        .collect();
    let mut k = 0;
    for (g, shared) in groups.iter_mut().zip(shared) {
        for s in &g.specs {
            k += 1;
            let label = if shared {
                format!("{} d{} {}", g.activation, g.depth, s.variant)
            } else {
                format!("{} {}", g.activation, s.variant)
            };
            let mut trainer = Trainer::new(
                Mlp::new(&gpu, s.config.clone())?,
                train_config.clone(),
                &train,
                &val,
            )?;
            trainer.set_standardizer(Some(standardizer.clone()))?;
            let run = trainer.train(&label, |_, _| {}, |_| {})?;
            println!(
                "run {k}/{n_runs}: {label} ({} layers): {} in {:.1} s",
                g.depth, run.outcome, run.wall_seconds
            );
            g.runs.push(run);
        }
    }

    println!();
    println!(
        "‖g‖ Lk: L2 norm of layer k's weight gradient at step 0 (initialisation), hidden layers \
         numbered from 1 at the input; L1/Ln: first over last hidden layer (1 = the gradient \
         reaches the input undiminished, 1e-10 = it arrives 10^10 times smaller); train loss: \
         mean over the last epoch's batches; val acc: after the last epoch; trained: val acc >= \
         {TRAINED_ACC} (chance is 0.1) with no NaN/inf"
    );
    for g in &groups {
        let (first, mid, last) = (1, g.depth.div_ceil(2), g.depth);
        let name_w = g
            .runs
            .iter()
            .map(|r| r.label.len())
            .max()
            .unwrap_or(3)
            .max(3);
        println!();
        println!("{}, init {}:", g.title(), g.specs[0].config.init());
        println!(
            "{:<name_w$} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}  trained",
            "run",
            format!("‖g‖ L{first}"),
            format!("‖g‖ L{mid}"),
            format!("‖g‖ L{last}"),
            format!("L{first}/L{last}"),
            "train loss",
            "val acc"
        );
        for run in &g.runs {
            let ratio = norm_at(run, first)
                .zip(norm_at(run, last))
                .map(|(a, b)| a / b);
            let (loss, acc) = match &run.divergence {
                // The last completed epoch, if any, before the NaN/inf.
                Some(_) => run
                    .epochs
                    .last()
                    .map_or((f32::NAN, f32::NAN), |e| (e.train_loss, e.val_accuracy)),
                None => run.finals(),
            };
            let verdict = match &run.divergence {
                Some(d) => format!("no: diverged, first NaN/inf at step {}", d.step),
                None if trained(run) => "yes".to_string(),
                None => "NO".to_string(),
            };
            println!(
                "{:<name_w$} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}  {verdict}",
                run.label,
                fmt_sci(norm_at(run, first)),
                fmt_sci(norm_at(run, mid)),
                fmt_sci(norm_at(run, last)),
                fmt_sci(ratio),
                fixed(loss),
                fixed(acc),
            );
        }
        for run in &g.runs {
            let accs: Vec<String> = run
                .epochs
                .iter()
                .map(|e| format!("{:.2}", e.val_accuracy))
                .collect();
            println!("  {}: val acc by epoch {}", run.label, accs.join(" "));
        }
        for run in &g.runs {
            let Some(step) = run.steps.first() else {
                continue;
            };
            let norms = hidden_norms(step);
            let bad = norms.iter().filter(|v| !v.is_finite()).count();
            let zero = norms.iter().filter(|&&v| v == 0.0).count();
            if bad > 0 {
                let largest = step.layers[..norms.len()]
                    .iter()
                    .map(|l| l.activation_mean.abs())
                    .filter(|v| v.is_finite())
                    .fold(0.0f32, f32::max);
                println!(
                    "  {}: at step 0 the weight-gradient norm overflows f32 in {bad} of {} hidden \
                     layers; the batch loss is {:.2e} and the activations' mean reaches {:.2e}",
                    run.label,
                    norms.len(),
                    step.loss,
                    largest
                );
            }
            if zero > 0 {
                println!(
                    "  {}: at step 0 the weight gradient is exactly 0 (below the 1e-30 flush) in \
                     {zero} of {} hidden layers",
                    run.label,
                    norms.len()
                );
            }
        }
    }

    println!();
    println!("measured:");
    for g in &groups {
        let (claimed, claim) = if g.specs.iter().any(|s| s.variant == "residual") {
            (
                vec!["residual", "residual+scaled_init"],
                "trains with residual connections",
            )
        } else {
            (
                vec!["batch_norm", "layer_norm"],
                "trains with BatchNorm or LayerNorm",
            )
        };
        let by_variant = |v: &str| {
            g.specs
                .iter()
                .zip(&g.runs)
                .find(|(s, _)| s.variant == v)
                .map(|(_, r)| r)
        };
        let runs: Vec<String> = g
            .specs
            .iter()
            .zip(&g.runs)
            .map(|(s, run)| {
                let at_init = match norm_at(run, 1).zip(norm_at(run, g.depth)) {
                    Some((a, b)) if a.is_finite() && b.is_finite() => {
                        format!("L1/L{} {} at init", g.depth, fmt_sci(Some(a / b)))
                    }
                    Some(_) => "gradient norms overflowing f32 at init".to_string(),
                    None => "no step-0 diagnostics".to_string(),
                };
                format!("{} {} with {at_init}", s.variant, outcome(run))
            })
            .collect();
        let plain_trained = by_variant("plain").is_some_and(trained);
        let (held, failed): (Vec<&str>, Vec<&str>) = claimed
            .iter()
            .filter(|v| by_variant(v).is_some())
            .partition(|v| by_variant(v).is_some_and(trained));
        let verdict = match (plain_trained, held.is_empty(), failed.is_empty()) {
            (true, _, _) => "NOT as claimed: the plain net trained".to_string(),
            (false, true, _) => {
                format!("NOT as claimed: {} did not train either", failed.join(", "))
            }
            (false, false, true) => format!("as claimed ({} trained)", held.join(", ")),
            (false, false, false) => format!(
                "holds for {} only; {} did not train",
                held.join(", "),
                failed.join(", ")
            ),
        };
        println!(
            "  {}: {}; claim \"a {}-layer {} net that cannot train plain {claim}\": {verdict}",
            g.title(),
            runs.join("; "),
            g.depth,
            g.activation
        );
    }

    let runs: Vec<RunReport> = groups.iter().flat_map(|g| g.runs.clone()).collect();
    let mut files = compare::write_outputs(&runs, &args.out)?;
    let path = args.out.join("gradient_norms.png");
    let mut panels = Vec::new();
    let mut notes = vec![format!(
        "weight-gradient L2 norm per hidden layer (1 = next to the input); top: step 0 \
         (initialisation); bottom: step {} (the last); {optimizer}, lr {}, batch {}, {} epochs, \
         width {}, seed {}; digits z-scored",
        total_steps.saturating_sub(1),
        args.lr,
        args.batch_size,
        args.epochs,
        args.width,
        args.seed
    )];
    for (row, at_init) in [("initialisation", true), ("last step", false)] {
        for g in &groups {
            let mut series = Vec::new();
            for (run, s) in g.runs.iter().zip(&g.specs) {
                let step = if at_init {
                    run.steps.first()
                } else {
                    run.end_step()
                };
                let Some(step) = step else { continue };
                let norms = hidden_norms(step);
                let below = norms.iter().filter(|&&v| (v as f64) <= DRAW_FLOOR).count();
                let bad = norms.iter().filter(|v| !v.is_finite()).count();
                if below > 0 {
                    notes.push(format!(
                        "{}, {row}: {below} of {} layers have a gradient norm <= 1e-30, not drawn",
                        run.label, g.depth
                    ));
                }
                if bad > 0 {
                    notes.push(format!(
                        "{}, {row}: the gradient norm overflows f32 (inf/NaN) in {bad} of {} \
                         layers, not drawn",
                        run.label, g.depth
                    ));
                }
                series.push(Series {
                    label: s.variant.to_string(),
                    points: norms
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| ((i + 1) as f64, v as f64))
                        .filter(|&(_, v)| v.is_finite() && v > DRAW_FLOOR)
                        .collect(),
                    dashed: false,
                    markers: false,
                });
            }
            panels.push(Panel {
                title: format!("{}, {row}", g.title()),
                x_label: "hidden layer".into(),
                y_label: "‖dL/dW‖₂".into(),
                log_y: true,
                y_range: None,
                series,
            });
        }
    }
    for run in &runs {
        if let Some(d) = &run.divergence {
            notes.push(format!(
                "{}: diverged (first NaN/inf at step {}), so it has no line at the last step",
                run.label, d.step
            ));
        }
    }
    plot_panels(
        "Gradient norm per layer: plain, normalised and residual deep nets",
        &panels,
        &notes,
        &path,
    )?;
    if !files.contains(&path) {
        files.push(path);
    }
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
