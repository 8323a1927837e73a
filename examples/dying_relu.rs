//! Dying ReLU: at a high learning rate a plain ReLU net loses a large
//! fraction of its units for good; leaky_relu, a lower learning rate, and He
//! instead of a badly scaled initialisation are said to keep them alive.
//!
//! This program measures that claim on the embedded digits (split 0.2, one
//! seed, plain SGD, 10 hidden layers × 64, batch 32, 15 epochs). Every run
//! differs from one failing baseline in exactly one factor:
//!
//! * baseline: relu, He initialisation, high learning rate (`--high-lr`);
//! * activation remedy: leaky_relu at the same high learning rate;
//! * learning-rate remedy: relu, He, low learning rate (`--low-lr`);
//! * initialisation: relu with a badly scaled N(0, σ²) initialisation
//!   (`--bad-inits`) at the high and at the low learning rate, to compare
//!   with the He runs at the same rates.
//!
//! Two measures of dead units are taken:
//!
//! * the GPU diagnostic of every logged step (`--log-every`): the fraction of
//!   a layer's units whose output is exactly 0 for all 32 rows of that
//!   step's batch (0 by definition for leaky_relu, whose output is never 0);
//! * "never active" on the whole training set, computed on the CPU from the
//!   weights read back every `--probe-every` steps: the fraction of a
//!   layer's units whose pre-activation is ≤ 0 for every one of the 1,438
//!   training rows. Such a ReLU unit gets no gradient at all from the data;
//!   a leaky_relu unit still gets 0.01× of it. It applies to both
//!   activations alike.
//!
//! Training is paused at each probe ([`Trainer::stop_after`]) and resumed;
//! the steps taken are the same as in one uninterrupted run. An optional
//! sweep (`--sweep-lrs`) shows how the high learning rate compares with
//! others. Prints a table and a verdict per remedy, and writes
//! `dead_units.png`, `lr_sweep.png`, `measurements.json` and the standard
//! `report.json` and figures to `out/dying_relu/`.
//!
//! `cargo run --release --features cli --example dying_relu`

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use fusedmlp::analysis::{
    fmt_frac, max, mean, never_active_units, still_flagged, unit_fractions as fractions,
    UnitMasks as Masks, Verdict,
};
use fusedmlp::compare;
use fusedmlp::data::Dataset;
use fusedmlp::plot::{plot_bars, plot_panels, Panel, Series};
use fusedmlp::train::StepLog;
use fusedmlp::{
    data, Activation, Error, Gpu, Init, Mlp, MlpConfig, Optimizer, RunReport, TrainConfig, Trainer,
};

#[derive(Parser)]
#[command(about = "Measure dying ReLU units at a high learning rate and what each remedy changes")]
struct Args {
    /// The high learning rate of the failing baseline (plain SGD).
    #[arg(long, default_value_t = 0.4)]
    high_lr: f32,
    /// The low learning rate of the learning-rate remedy.
    #[arg(long, default_value_t = 0.05)]
    low_lr: f32,
    /// Negative slope of the leaky_relu remedy.
    #[arg(long, default_value_t = 0.01)]
    leaky_slope: f32,
    /// Badly scaled initialisations to compare with He (each at both learning rates).
    #[arg(long, value_delimiter = ',', default_value = "normal:0.05,normal:0.5")]
    bad_inits: Vec<Init>,
    /// Extra learning rates for relu + He, trained for the same epochs (none: `--no-sweep`).
    #[arg(long, value_delimiter = ',', default_value = "0.2,0.5")]
    sweep_lrs: Vec<f32>,
    /// Skip the learning-rate sweep.
    #[arg(long)]
    no_sweep: bool,
    /// Hidden layers.
    #[arg(long, default_value_t = 10)]
    depth: usize,
    /// Units per hidden layer.
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// Epochs.
    #[arg(long, default_value_t = 15)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Log the GPU diagnostics every this many steps.
    #[arg(long, default_value_t = 22)]
    log_every: u64,
    /// Count never-active units on the whole training set every this many steps.
    #[arg(long, default_value_t = 44)]
    probe_every: u64,
    /// Seed of the weights, the split and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "out/dying_relu")]
    out: PathBuf,
}

/// One run of the comparison.
#[derive(Clone)]
struct Spec {
    label: String,
    role: String,
    activation: Activation,
    init: Init,
    lr: f32,
}

/// A run and its whole-training-set probes.
struct Measured {
    spec: Spec,
    report: RunReport,
    /// (steps taken, masks); `None` where the weights were no longer finite.
    probes: Vec<(u64, Option<Masks>)>,
}

impl Measured {
    fn diverged_at(&self) -> Option<u64> {
        self.report.diverged_at()
    }

    fn start_masks(&self) -> Option<&Masks> {
        self.probes.first().and_then(|p| p.1.as_ref())
    }

    /// The masks after the last step, if the run did not diverge.
    fn end_masks(&self) -> Option<&Masks> {
        if self.diverged_at().is_some() {
            return None;
        }
        self.probes.last().and_then(|p| p.1.as_ref())
    }

    fn val_accuracy(&self) -> f64 {
        self.report
            .epochs
            .last()
            .map_or(f64::NAN, |e| e.val_accuracy as f64)
    }
}

/// Mean and max dead fraction of the hidden layers (the last layer is the output).
fn batch_dead(step: &StepLog) -> (f64, f64) {
    let hidden: Vec<f64> = step
        .hidden_layers()
        .iter()
        .map(|l| l.dead_fraction as f64)
        .collect();
    (mean(&hidden), max(&hidden))
}

/// Trains one run, pausing every `probe_every` steps (0: only at the end)
/// to count never-active units on the training set.
fn run(
    gpu: &Gpu,
    base: &MlpConfig,
    train_config: &TrainConfig,
    spec: &Spec,
    train: &Dataset,
    val: &Dataset,
    probe_every: u64,
) -> Result<Measured, Error> {
    let mut config = base.clone();
    config.activation = spec.activation;
    config.init = Some(spec.init);
    let mut tc = train_config.clone();
    tc.learning_rate = Some(spec.lr);
    let mut probes = vec![(
        0,
        never_active_units(&config, &config.initial_parameters(), train),
    )];
    let model = Mlp::new(gpu, config.clone())?;
    let mut trainer = Trainer::new(model, tc, train, val)?;
    let report = trainer.train_in_parts(&spec.label, probe_every, |t| {
        let params = t.model().parameters()?;
        probes.push((t.steps_taken(), never_active_units(&config, &params, train)));
        Ok(())
    })?;
    Ok(Measured {
        spec: spec.clone(),
        report,
        probes,
    })
}

/// Of the units never active at the probe nearest the middle of the run,
/// the fraction still never active at the end.
fn stayed_dead(m: &Measured) -> Option<f64> {
    let end = m.end_masks()?;
    let last_step = m.probes.last()?.0;
    let mid = m
        .probes
        .iter()
        .min_by_key(|p| p.0.abs_diff(last_step / 2))?
        .1
        .as_ref()?;
    still_flagged(mid, end)
}

fn table(runs: &[Measured]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<30} {:>5} {:>8} | {:^24} | {:^32} | {:<}",
        "", "", "", "logged batch (32 rows)", "whole training set (1,438 rows)", ""
    );
    let _ = writeln!(
        s,
        "{:<30} {:>5} {:>8} | {:>7} {:>7} {:>8} | {:>7} {:>7} {:>8} {:>7} | {:<}",
        "run",
        "lr",
        "val acc",
        "dead@0",
        "dead@end",
        "max lyr",
        "never@0",
        "never@end",
        "max lyr",
        "stayed",
        "diverged"
    );
    for m in runs {
        let steps = m.report.steps_before_divergence();
        let start = steps.first().map(|s| batch_dead(s));
        let end = if m.diverged_at().is_some() {
            None
        } else {
            steps.last().map(|s| batch_dead(s))
        };
        let never0 = m.start_masks().map(|k| mean(&fractions(k)));
        let never_end = m.end_masks().map(fractions);
        let diverged = match &m.report.divergence {
            Some(d) => format!(
                "yes: step {}, {} of layer {}",
                d.step,
                d.tensor,
                d.layer.map_or("loss".to_string(), |l| (l + 1).to_string())
            ),
            None => "no".to_string(),
        };
        let _ = writeln!(
            s,
            "{:<30} {:>5} {:>8} | {:>7} {:>8} {:>8} | {:>7} {:>9} {:>8} {:>7} | {}",
            m.spec.label,
            m.spec.lr,
            fmt_frac(Some(m.val_accuracy())),
            fmt_frac(start.map(|x| x.0)),
            fmt_frac(end.map(|x| x.0)),
            fmt_frac(end.map(|x| x.1)),
            fmt_frac(never0),
            fmt_frac(never_end.as_ref().map(|v| mean(v))),
            fmt_frac(never_end.as_ref().map(|v| max(v))),
            fmt_frac(stayed_dead(m)),
            diverged
        );
    }
    let _ = writeln!(
        s,
        "dead: mean over hidden layers of the fraction of units whose output is exactly 0 for all \
         32 rows of the logged batch (GPU diagnostic; 0 by definition for leaky_relu), at step 0 \
         and at the last logged step; max lyr: the highest layer's fraction at the end."
    );
    let _ = writeln!(
        s,
        "never: the same over the whole training set, from the weights: pre-activation ≤ 0 for all \
         1,438 rows (a relu unit gets no gradient; a leaky_relu unit still gets 0.01×). stayed: of \
         the units never active at mid-run, the fraction still never active at the end. n/a: \
         diverged (weights not finite) or no data."
    );
    s
}

/// Mean never-active fraction at the end, if the run completed.
fn end_never(m: &Measured) -> Option<f64> {
    m.end_masks().map(|k| mean(&fractions(k)))
}

/// The highest never-active fraction of any hidden layer at the end.
fn end_worst(m: &Measured) -> f64 {
    m.end_masks().map_or(f64::NAN, |k| max(&fractions(k)))
}

/// A plain-words comparison of a remedy with the run it should improve on.
fn verdict(claim: &str, remedy: &Measured, failing: &Measured) -> String {
    let (r, f) = (end_never(remedy), end_never(failing));
    let acc_of = |m: &Measured| match m.diverged_at() {
        Some(_) => "n/a (diverged)".to_string(),
        None => format!("{:.3}", m.val_accuracy()),
    };
    let acc = format!("val acc {} vs {}", acc_of(remedy), acc_of(failing));
    let what = match (r, f, remedy.diverged_at(), failing.diverged_at()) {
        (_, _, Some(s), _) => format!(
            "DOES NOT HOLD here: '{}' itself diverged (NaN/inf at step {s})",
            remedy.spec.label
        ),
        (Some(r), None, None, Some(s)) => format!(
            "'{}' diverged (NaN/inf at step {s}) instead of losing units; '{}' completed with \
             {r:.3} of units never active. It avoids the divergence; the dying-unit part of the \
             claim is not tested by this pair",
            failing.spec.label, remedy.spec.label
        ),
        (Some(r), Some(f), _, _) => {
            let tag = Verdict::lower_by(r, f, 0.10);
            let why = match tag {
                Verdict::Holds => "fewer never-active units by at least 0.10",
                Verdict::Contradicted => "more never-active units by at least 0.10",
                Verdict::NotShown => "within 0.10 of each other",
            };
            let (rmax, fmax) = (end_worst(remedy), end_worst(failing));
            let worst = if (r < f) != (rmax < fmax) && rmax != fmax {
                format!(
                    "; but the worst layer says the opposite: {rmax:.3} vs {fmax:.3} of its units \
                     never active"
                )
            } else {
                format!("; worst layer {rmax:.3} vs {fmax:.3}")
            };
            format!(
                "{tag}: never active at the end {r:.3} ('{}') vs {f:.3} ('{}') as a mean over \
                 hidden layers, {why}{worst}",
                remedy.spec.label, failing.spec.label
            )
        }
        _ => "no data to compare".to_string(),
    };
    format!("{claim}: {what}; {acc}.")
}

fn main() -> Result<(), Error> {
    let args = Args::parse();
    let started = Instant::now();
    let gpu = Gpu::new()?;
    let digits = data::digits()?;
    let (train, val) = digits.split(0.2, args.seed)?;
    let mut base = MlpConfig::deep(64, args.depth, args.width, 10, Activation::Relu);
    base.seed = args.seed;
    let train_config = TrainConfig::default()
        .with_epochs(args.epochs)
        .with_batch_size(args.batch_size)
        .with_learning_rate(args.high_lr)
        .with_optimizer(Optimizer::sgd())
        .with_log_every(args.log_every)
        .with_seed(args.seed);
    println!("adapter: {}", gpu.describe());
    println!(
        "data: digits, {} train / {} validation rows, 64 features, 10 classes",
        train.len(),
        val.len()
    );
    println!(
        "model: {} hidden layers x {} units, softmax head; plain SGD, batch {}, {} epochs, seed {}; \
         GPU diagnostics every {} steps, whole-training-set probe every {} steps",
        args.depth,
        args.width,
        args.batch_size,
        args.epochs,
        args.seed,
        args.log_every,
        args.probe_every
    );

    let relu = Activation::Relu;
    let leaky = Activation::LeakyRelu {
        negative_slope: args.leaky_slope,
    };
    let spec = |activation: Activation, init: Init, lr: f32, role: &str| Spec {
        label: format!("{activation}, {init}, lr {lr}"),
        role: role.to_string(),
        activation,
        init,
        lr,
    };
    let mut specs = vec![
        spec(relu, Init::HeNormal, args.high_lr, "baseline"),
        spec(leaky, Init::HeNormal, args.high_lr, "leaky_relu remedy"),
        spec(relu, Init::HeNormal, args.low_lr, "low-lr remedy"),
    ];
    for &bad in &args.bad_inits {
        specs.push(spec(relu, bad, args.high_lr, "bad init, high lr"));
        specs.push(spec(relu, bad, args.low_lr, "bad init, low lr"));
    }
    let mut runs = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let t = Instant::now();
        let m = run(
            &gpu,
            &base,
            &train_config,
            s,
            &train,
            &val,
            args.probe_every,
        )?;
        println!(
            "run {}/{} ({}): {} — {} steps in {:.1} s, {}",
            i + 1,
            specs.len(),
            s.role,
            s.label,
            m.report.total_steps,
            t.elapsed().as_secs_f64(),
            if m.report.divergence.is_some() {
                "diverged"
            } else {
                "completed"
            }
        );
        runs.push(m);
    }

    // The learning-rate sweep: relu + He at the other rates.
    let mut sweep: Vec<(f32, f64, Option<f64>, Option<u64>)> = runs
        .iter()
        .filter(|m| m.spec.activation == relu && m.spec.init == Init::HeNormal)
        .map(|m| (m.spec.lr, m.val_accuracy(), end_never(m), m.diverged_at()))
        .collect();
    if !args.no_sweep {
        for &lr in &args.sweep_lrs {
            if sweep.iter().any(|s| s.0 == lr) {
                continue;
            }
            let s = spec(relu, Init::HeNormal, lr, "sweep");
            let t = Instant::now();
            let m = run(&gpu, &base, &train_config, &s, &train, &val, 0)?;
            println!(
                "sweep: {} — {} steps in {:.1} s",
                s.label,
                m.report.total_steps,
                t.elapsed().as_secs_f64()
            );
            sweep.push((lr, m.val_accuracy(), end_never(&m), m.diverged_at()));
        }
    }
    sweep.sort_by(|a, b| a.0.total_cmp(&b.0));

    println!();
    print!("{}", table(&runs));

    println!();
    println!(
        "learning-rate sweep, relu + he_normal, {} epochs:",
        args.epochs
    );
    println!("{:>6} {:>8} {:>10} diverged", "lr", "val acc", "never@end");
    for (lr, acc, never, div) in &sweep {
        println!(
            "{:>6} {:>8} {:>10} {}",
            lr,
            fmt_frac(div.is_none().then_some(*acc)),
            fmt_frac(*never),
            div.map_or("no".to_string(), |s| format!("yes, at step {s}"))
        );
    }

    // Verdicts, each against the run it should improve on.
    println!();
    println!("what was measured (one seed, {} epochs):", args.epochs);
    let baseline = &runs[0];
    match (
        baseline.start_masks().map(|k| mean(&fractions(k))),
        end_never(baseline),
    ) {
        (Some(a), Some(b)) => {
            let large = if b >= 0.25 && b >= a + 0.10 {
                "that it loses a large fraction of its units HOLDS here"
            } else {
                "that it loses a large fraction of its units is NOT SHOWN here (the rule: at \
                 least 0.25 at the end and 0.10 above the start)"
            };
            let stayed = stayed_dead(baseline);
            let for_good = match stayed {
                Some(f) if f >= 0.9 => {
                    "'for good' HOLDS (the rule: at least 0.9 stayed)".to_string()
                }
                Some(f) => format!(
                    "'for good' holds only PARTLY: {:.3} of them were active again at the end, \
                     because the layers below them kept changing",
                    1.0 - f
                ),
                None => "'for good' could not be measured".to_string(),
            };
            println!(
                "- baseline '{}': never-active units {a:.3} at initialisation -> {b:.3} after \
                 training (mean over hidden layers), val acc {:.3}: the claim {large}. Of the \
                 units never active at mid-run, {} were still never active at the end: {for_good}.",
                baseline.spec.label,
                baseline.val_accuracy(),
                fmt_frac(stayed),
            )
        }
        _ => println!(
            "- baseline '{}' diverged: it does not show dying units at this learning rate; \
             choose a lower --high-lr",
            baseline.spec.label
        ),
    }
    println!(
        "- {}",
        verdict("leaky_relu keeps units alive", &runs[1], baseline)
    );
    println!(
        "  (leaky_relu's batch dead fraction is 0 by definition; its never-active units still \
         pass 0.01x gradient)"
    );
    println!(
        "- {}",
        verdict(
            "a lower learning rate keeps units alive",
            &runs[2],
            baseline
        )
    );
    for pair in runs[3..].chunks(2) {
        for bad in pair {
            let he = if bad.spec.lr == args.high_lr {
                &runs[0]
            } else {
                &runs[2]
            };
            println!(
                "- {}",
                verdict(
                    &format!(
                        "he_normal instead of {} (lr {}) keeps units alive",
                        bad.spec.init, bad.spec.lr
                    ),
                    he,
                    bad
                )
            );
        }
    }
    println!(
        "  (rule: HOLDS when the remedy's mean never-active fraction at the end is at least 0.10 \
         below the other run's; CONTRADICTED when at least 0.10 above; NOT SHOWN in between)"
    );
    let relu_starts: Vec<&Masks> = runs
        .iter()
        .filter(|m| m.spec.activation == relu)
        .filter_map(|m| m.start_masks())
        .collect();
    if relu_starts.len() > 1 && relu_starts.iter().all(|k| *k == relu_starts[0]) {
        println!(
            "- at initialisation every relu run has the very same never-active units ({:.3}), \
             whatever the init's scale: with zero biases a relu net's signs do not depend on it; \
             the scale acts only through training",
            mean(&fractions(relu_starts[0]))
        );
    }
    for m in &runs {
        if let Some(k) = m.end_masks() {
            let full: Vec<String> = fractions(k)
                .iter()
                .enumerate()
                .filter(|(_, &f)| f >= 1.0)
                .map(|(l, _)| (l + 1).to_string())
                .collect();
            if !full.is_empty() {
                println!(
                    "- '{}': every unit of hidden layer(s) {} is never active at the end, so no \
                     gradient from the data reaches the layers below; val acc {:.3}",
                    m.spec.label,
                    full.join(", "),
                    m.val_accuracy()
                );
            }
        }
    }

    // Figures.
    std::fs::create_dir_all(&args.out).map_err(|e| Error::Io {
        context: format!("creating {}", args.out.display()),
        source: e,
    })?;
    let mut written = Vec::new();
    let dead_png = args.out.join("dead_units.png");
    plot_dead_units(&runs, &args, &dead_png)?;
    written.push(dead_png);
    if sweep.len() > 1 {
        let bars: Vec<(String, f64)> = sweep
            .iter()
            .map(|(lr, acc, never, div)| {
                (
                    match div {
                        Some(s) => format!("lr {lr} (diverged at step {s})"),
                        None => format!("lr {lr} (val acc {})", fmt_frac(Some(*acc))),
                    },
                    never.unwrap_or(f64::NAN),
                )
            })
            .collect();
        let sweep_png = args.out.join("lr_sweep.png");
        plot_bars(
            &format!(
                "relu + he_normal, {}x{}: never-active units after {} epochs (n/a: diverged)",
                args.depth, args.width, args.epochs
            ),
            "never-active fraction (mean over hidden layers)",
            &bars,
            None,
            &sweep_png,
        )?;
        written.push(sweep_png);
    }
    let measurements = serde_json::json!({
        "claim": "a high learning rate kills ReLU units for good; leaky_relu, a lower learning rate and He initialisation keep them alive",
        "never_active_definition": "pre-activation <= 0 for every training row, per hidden layer",
        "runs": runs.iter().map(|m| serde_json::json!({
            "label": m.spec.label,
            "role": m.spec.role,
            "activation": m.spec.activation.to_string(),
            "init": m.spec.init.to_string(),
            "learning_rate": m.spec.lr,
            "val_accuracy": m.val_accuracy(),
            "diverged_at_step": m.diverged_at(),
            "stayed_dead_fraction": stayed_dead(m),
            "never_active_per_layer": m.probes.iter().map(|(step, k)| serde_json::json!({
                "step": step,
                "fractions": k.as_ref().map(fractions),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "lr_sweep": sweep.iter().map(|(lr, acc, never, div)| serde_json::json!({
            "learning_rate": lr,
            "val_accuracy": acc,
            "never_active_end": never,
            "diverged_at_step": div,
        })).collect::<Vec<_>>(),
    });
    let json_path = args.out.join("measurements.json");
    let text = serde_json::to_string_pretty(&measurements)
        .map_err(|e| Error::Config(format!("serialising the measurements: {e}")))?;
    std::fs::write(&json_path, text).map_err(|e| Error::Io {
        context: format!("writing {}", json_path.display()),
        source: e,
    })?;
    written.push(json_path);
    let reports: Vec<RunReport> = runs.iter().map(|m| m.report.clone()).collect();
    written.extend(compare::write_outputs(&reports, &args.out)?);
    println!();
    for f in &written {
        println!("wrote {}", f.display());
    }
    println!("total time {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn plot_dead_units(runs: &[Measured], args: &Args, path: &Path) -> Result<(), Error> {
    let series = |m: &Measured, points: Vec<(f64, f64)>, markers: bool| Series {
        label: m.spec.label.clone(),
        points,
        dashed: m.spec.lr != args.high_lr,
        markers,
    };
    let over_time_set = Panel {
        title: "Never active on the whole training set".into(),
        x_label: "step".into(),
        y_label: "fraction of units (mean over hidden layers)".into(),
        log_y: false,
        y_range: Some((0.0, 1.0)),
        series: runs
            .iter()
            .map(|m| {
                let points = m
                    .probes
                    .iter()
                    .filter_map(|(step, k)| k.as_ref().map(|k| (*step as f64, mean(&fractions(k)))))
                    .collect();
                series(m, points, false)
            })
            .collect(),
    };
    let over_time_batch = Panel {
        title: "Dead on the logged batch (GPU diagnostic)".into(),
        x_label: "step".into(),
        y_label: "fraction of units (mean over hidden layers)".into(),
        log_y: false,
        y_range: Some((0.0, 1.0)),
        series: runs
            .iter()
            .map(|m| {
                let points = m
                    .report
                    .steps_before_divergence()
                    .iter()
                    .map(|s| (s.step as f64, batch_dead(s).0))
                    .collect();
                series(m, points, false)
            })
            .collect(),
    };
    let per_layer = Panel {
        title: "Never active per layer at the end (training set)".into(),
        x_label: "hidden layer".into(),
        y_label: "fraction of units".into(),
        log_y: false,
        y_range: Some((0.0, 1.0)),
        series: runs
            .iter()
            .map(|m| {
                let points = m
                    .end_masks()
                    .map(|k| {
                        fractions(k)
                            .iter()
                            .enumerate()
                            .map(|(l, &f)| ((l + 1) as f64, f))
                            .collect()
                    })
                    .unwrap_or_default();
                series(m, points, true)
            })
            .collect(),
    };
    let diverged: Vec<String> = runs
        .iter()
        .filter_map(|m| {
            m.diverged_at()
                .map(|s| format!("'{}' diverged at step {s}", m.spec.label))
        })
        .collect();
    let mut notes = vec![
        format!(
            "digits, {}x{} relu/leaky_relu MLP, plain SGD, batch {}, {} epochs, seed {}; solid: lr {}, dashed: lr {}.",
            args.depth, args.width, args.batch_size, args.epochs, args.seed, args.high_lr, args.low_lr
        ),
        "Never active: pre-activation <= 0 for all 1,438 training rows (counted every probe). \
         Dead on the batch: output exactly 0 for all 32 rows of the logged step's batch; \
         always 0 for leaky_relu, whose output is never exactly 0."
            .to_string(),
    ];
    if !diverged.is_empty() {
        notes.push(format!(
            "{}; their lines stop there and they have no per-layer end values.",
            diverged.join(", ")
        ));
    }
    plot_panels(
        "Dying ReLU: dead units over training and per layer",
        &[over_time_set, over_time_batch, per_layer],
        &notes,
        path,
    )
}
