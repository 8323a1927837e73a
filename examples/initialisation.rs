//! Initialisation: the same deep ReLU and tanh nets under He, Xavier, LeCun
//! and naive N(0, 1) or N(0, 0.01²) initialisation. The claim: the
//! activations' standard deviation, layer by layer at initialisation,
//! explodes, vanishes or stays flat depending on the scheme, and the
//! training outcome follows.
//!
//! For each activation (`--activations`, default relu and tanh) and each
//! initialiser (`--inits`), the program builds a 20 × 64 MLP on the embedded
//! digits (split 0.2, one seed) and measures:
//!
//! * the activation std of every hidden layer at the first logged step
//!   (step 0, before any update; the GPU diagnostic over that step's batch
//!   of 32 rows), and as a cross-check the same std over the whole training
//!   set, computed on the CPU in f64 from the initial weights;
//! * the fraction of saturated (tanh) or dead (relu) units at step 0;
//! * after brief training (plain SGD, lr 0.05, batch 32, 8 epochs; a run
//!   whose values become NaN or infinite is stopped by the trainer), the
//!   final validation accuracy and the outcome.
//!
//! It classifies each std profile (last hidden layer over first: above 10×
//! "explodes", below 0.1× "vanishes", otherwise "flat") and each outcome,
//! says for each run whether the outcome followed the profile, prints the
//! table, and writes `activation_std.png` (one panel per activation, std
//! per layer on a log scale, one line per initialiser), `measurements.json`
//! and the standard `report.json` and figures to `out/initialisation/`.
//!
//! `cargo run --release --features cli --example initialisation`

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use fusedmlp::analysis::{activation_std_per_layer, std_dev};
use fusedmlp::compare;
use fusedmlp::nn::LayerValues;
use fusedmlp::plot::{plot_panels, Panel, Series};
use fusedmlp::{
    data, Activation, Error, Gpu, Init, Mlp, MlpConfig, Optimizer, RunReport, TrainConfig, Trainer,
};

#[derive(Parser)]
#[command(
    about = "Measure activation std per layer at initialisation under He, Xavier, LeCun and naive inits, then train"
)]
struct Args {
    /// Hidden activations.
    #[arg(long, value_delimiter = ',', default_value = "relu,tanh")]
    activations: Vec<Activation>,
    /// Initialisers.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "he_normal,xavier_normal,lecun_normal,normal:1,normal:0.01"
    )]
    inits: Vec<Init>,
    /// Hidden layers.
    #[arg(long, default_value_t = 20)]
    depth: usize,
    /// Units per hidden layer.
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// Epochs of training after the measurement at initialisation.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Learning rate (plain SGD).
    #[arg(long, default_value_t = 0.05)]
    lr: f32,
    /// Log the GPU diagnostics every this many steps (step 0 is always logged).
    #[arg(long, default_value_t = 44)]
    log_every: u64,
    /// Seed of the weights, the split and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "out/initialisation")]
    out: PathBuf,
}

/// One (activation, initialiser) run.
struct Measured {
    activation: Activation,
    init: Init,
    report: RunReport,
    /// Std of one hidden layer's initial weights (the second, `width × width`).
    weight_std: f64,
    /// Activation std per hidden layer at step 0 (GPU, the first batch).
    gpu_std: Vec<f64>,
    /// Activation std per hidden layer at initialisation (CPU f64, whole training set).
    cpu_std: Vec<f64>,
    /// Mean saturated (tanh) or dead (relu) fraction over hidden layers at step 0.
    stuck_at_init: f64,
    /// The init whose initial weights this run shares, if it was not trained itself.
    same_as: Option<Init>,
}

impl Measured {
    fn val_accuracy(&self) -> f64 {
        self.report
            .epochs
            .last()
            .map_or(f64::NAN, |e| e.val_accuracy as f64)
    }

    /// Per hidden layer: the GPU value, or the CPU f64 value where the GPU's
    /// f32 sum of squares underflowed to 0 (then `true`).
    fn std_used(&self) -> Vec<(f64, bool)> {
        self.gpu_std
            .iter()
            .zip(&self.cpu_std)
            .map(|(&g, &c)| {
                if g == 0.0 && c > 0.0 {
                    (c, true)
                } else {
                    (g, false)
                }
            })
            .collect()
    }

    fn profile(&self) -> Profile {
        profile(&self.std_used().iter().map(|s| s.0).collect::<Vec<_>>())
    }

    fn outcome(&self) -> Outcome {
        if let Some(d) = &self.report.divergence {
            return Outcome::Diverged(d.step);
        }
        let acc = self.val_accuracy();
        if !acc.is_finite() || acc < 0.2 {
            Outcome::NoLearning
        } else if acc < 0.8 {
            Outcome::Partial
        } else {
            Outcome::Learned
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Profile {
    Explodes(f64),
    Vanishes(f64),
    Flat(f64),
    NotFinite,
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Profile::Explodes(r) => write!(f, "explodes ({r:.0e}x)"),
            Profile::Vanishes(r) => write!(f, "vanishes ({r:.0e}x)"),
            Profile::Flat(r) => write!(f, "flat ({r:.2}x)"),
            Profile::NotFinite => f.write_str("not finite"),
        }
    }
}

/// Last hidden layer's std over the first's: > 10 explodes, < 0.1 vanishes.
fn profile(std: &[f64]) -> Profile {
    let (Some(&first), Some(&last)) = (std.first(), std.last()) else {
        return Profile::NotFinite;
    };
    let r = last / first;
    if !r.is_finite() || !first.is_finite() {
        Profile::NotFinite
    } else if r > 10.0 {
        Profile::Explodes(r)
    } else if r < 0.1 {
        Profile::Vanishes(r)
    } else {
        Profile::Flat(r)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Outcome {
    Diverged(u64),
    NoLearning,
    Partial,
    Learned,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Diverged(s) => write!(f, "diverged at step {s}"),
            Outcome::NoLearning => f.write_str("no learning"),
            Outcome::Partial => f.write_str("partly learned"),
            Outcome::Learned => f.write_str("learned"),
        }
    }
}

/// Whether the outcome is the one the std profile predicts (flat: it
/// learns; explodes or vanishes: it does not).
fn follows(p: Profile, o: Outcome) -> bool {
    let learns = matches!(o, Outcome::Learned | Outcome::Partial);
    matches!(p, Profile::Flat(_)) == learns
}

fn fmt_std(v: Option<&f64>) -> String {
    match v {
        Some(v) if *v == 0.0 => "0*".to_string(),
        Some(v) if v.is_finite() => format!("{v:.2e}"),
        Some(v) => format!("{v}"),
        None => "n/a".to_string(),
    }
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
        .with_learning_rate(args.lr)
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
        "model: {} hidden layers x {} units, softmax head; plain SGD, lr {}, batch {}, {} epochs, \
         seed {}; std measured at step 0 (before any update)",
        args.depth, args.width, args.lr, args.batch_size, args.epochs, args.seed
    );

    let hidden = args.depth;
    let mut runs: Vec<Measured> = Vec::new();
    let total = args.activations.len() * args.inits.len();
    for &activation in &args.activations {
        // (init, its initial parameters, index of its run) of the runs trained.
        let mut trained: Vec<(Init, Vec<LayerValues>, usize)> = Vec::new();
        for &init in &args.inits {
            let mut config = base.clone();
            config.activation = activation;
            config.init = Some(init);
            let params = config.initial_parameters();
            let weight_std = params
                .get(1)
                .map_or(f64::NAN, |(w, _)| std_dev(w.iter().map(|&x| x as f64)));
            let cpu_std = activation_std_per_layer(&config, &params, &train);
            let label = format!("{activation}, {init}");
            let t = Instant::now();
            // The same initial weights, data and seed give the same run bit
            // for bit: train such a twin once.
            let twin = trained.iter().find(|(_, p, _)| *p == params);
            let (report, same_as) = match twin {
                Some(&(other, _, index)) => {
                    let mut report = runs[index].report.clone();
                    report.label = label.clone();
                    (report, Some(other))
                }
                None => {
                    let model = Mlp::new(&gpu, config.clone())?;
                    let mut trainer = Trainer::new(model, train_config.clone(), &train, &val)?;
                    let report = trainer.train(&label, |_, _| {}, |_| {})?;
                    trained.push((init, params, runs.len()));
                    (report, None)
                }
            };
            let first = report.steps.first();
            let gpu_std: Vec<f64> = first.map_or(Vec::new(), |s| {
                s.layers[..hidden.min(s.layers.len())]
                    .iter()
                    .map(|l| l.activation_std as f64)
                    .collect()
            });
            let stuck_at_init = first.map_or(f64::NAN, |s| {
                let h = &s.layers[..hidden.min(s.layers.len())];
                h.iter()
                    .map(|l| (l.saturated_fraction + l.dead_fraction) as f64)
                    .sum::<f64>()
                    / h.len().max(1) as f64
            });
            println!(
                "run {}/{}: {label} — {}",
                runs.len() + 1,
                total,
                match same_as {
                    Some(o) => format!("same initial weights as {o}: not trained again"),
                    None => format!(
                        "{} steps in {:.1} s, {}",
                        report.total_steps,
                        t.elapsed().as_secs_f64(),
                        if report.divergence.is_some() {
                            "diverged"
                        } else {
                            "completed"
                        }
                    ),
                }
            );
            runs.push(Measured {
                activation,
                init,
                report,
                weight_std,
                gpu_std,
                cpu_std,
                stuck_at_init,
                same_as,
            });
        }
    }

    let (l1, lm, ll) = (0, (hidden / 2).max(1) - 1, hidden - 1);
    println!();
    println!(
        "{:<8} {:<14} {:>8} | {:>9} {:>9} {:>9} {:>9} | {:<19} {:>8} | {:>7} {:<22} follows?",
        "act",
        "init",
        "w std",
        format!("std L{}", l1 + 1),
        format!("std L{}", lm + 1),
        format!("std L{}", ll + 1),
        format!("cpu L{}", ll + 1),
        format!("profile L{}/L{}", ll + 1, l1 + 1),
        "sat/dead",
        "val acc",
        "outcome",
    );
    let mut contradictions = Vec::new();
    for m in &runs {
        let p = m.profile();
        let o = m.outcome();
        let ok = follows(p, o);
        if !ok {
            contradictions.push(m);
        }
        println!(
            "{:<8} {:<14} {:>8.4} | {:>9} {:>9} {:>9} {:>9} | {:<19} {:>8.3} | {:>7} {:<22} {}",
            m.activation.to_string(),
            m.init.to_string(),
            m.weight_std,
            fmt_std(m.gpu_std.get(l1)),
            fmt_std(m.gpu_std.get(lm)),
            fmt_std(m.gpu_std.get(ll)),
            fmt_std(m.cpu_std.get(ll)),
            p.to_string(),
            m.stuck_at_init,
            match o {
                Outcome::Diverged(_) => "n/a".to_string(),
                _ => format!("{:.3}", m.val_accuracy()),
            },
            o.to_string(),
            if ok { "yes" } else { "NO" }
        );
    }
    println!(
        "w std: std of a {w}x{w} hidden layer's initial weights. std Lk: activation std of hidden \
         layer k at step 0 (GPU diagnostic, the first batch of {b} rows); cpu L{}: the same over all \
         {} training rows, f64 on the CPU. profile: std of the last hidden layer over the first's \
         (> 10x explodes, < 0.1x vanishes, else flat). sat/dead: mean fraction of saturated (tanh) \
         or dead (relu) units at step 0. 0*: the GPU's f32 sum of squares underflowed (activations \
         too small to square in f32); the profile then uses the CPU value. outcome: val acc >= 0.8 learned, >= 0.2 partly, else no \
         learning (chance is 0.10). follows?: flat and learned/partly, or explodes/vanishes and \
         no learning/diverged.",
        ll + 1,
        train.len(),
        w = args.width,
        b = args.batch_size,
    );

    println!();
    println!(
        "what was measured (one seed, {} hidden layers, {} epochs):",
        args.depth, args.epochs
    );
    for m in &runs {
        if let Some(o) = m.same_as {
            println!(
                "- {}: {} draws exactly the same initial weights as {o} here (fan-in equals \
                 fan-out in every hidden layer, and there the two schemes give the same std from \
                 the same seed), so the two rows are one net and one run",
                m.activation, m.init,
            );
        }
    }
    for act in &args.activations {
        let of_act: Vec<&Measured> = runs.iter().filter(|m| m.activation == *act).collect();
        let flat: Vec<String> = of_act
            .iter()
            .filter(|m| matches!(m.profile(), Profile::Flat(_)))
            .map(|m| m.init.to_string())
            .collect();
        let learned: Vec<String> = of_act
            .iter()
            .filter(|m| matches!(m.outcome(), Outcome::Learned | Outcome::Partial))
            .map(|m| format!("{} ({:.3})", m.init, m.val_accuracy()))
            .collect();
        println!(
            "- {act}: std stays flat under [{}]; the runs that learned: [{}]",
            flat.join(", "),
            learned.join(", ")
        );
    }
    for act in &args.activations {
        let dead: Vec<f64> = runs
            .iter()
            .filter(|m| m.activation == *act && m.stuck_at_init > 0.0)
            .map(|m| m.stuck_at_init)
            .collect();
        let n = runs.iter().filter(|m| m.activation == *act).count();
        if n > 1 && dead.len() == n && dead.iter().all(|&d| d == dead[0]) {
            println!(
                "- {act}: the saturated/dead fraction at step 0 is {:.3} under every init: with \
                 zero biases the signs of a ReLU-family net's units do not depend on the weights' \
                 scale",
                dead[0]
            );
        }
    }
    let max_gap = runs
        .iter()
        .flat_map(|m| m.gpu_std.iter().zip(&m.cpu_std))
        .filter(|(g, c)| g.is_finite() && c.is_finite() && **g > 0.0 && **c > 0.0)
        .map(|(g, c)| (g / c).ln().abs())
        .fold(0.0f64, f64::max);
    println!(
        "- the GPU batch std and the CPU whole-training-set std agree within a factor {:.2} on \
         every layer of every run where both are finite and non-zero",
        max_gap.exp()
    );
    for m in &runs {
        let under: Vec<usize> = m
            .std_used()
            .iter()
            .enumerate()
            .filter(|(_, s)| s.1)
            .map(|(l, _)| l + 1)
            .collect();
        if let (Some(first), Some(last)) = (under.first(), under.last()) {
            println!(
                "- {} with {}: the GPU std reads 0 at layers {first}..{last} (f32 underflow of \
                 the sum of squares); the CPU f64 std there falls to {:.1e} at layer {last}",
                m.activation,
                m.init,
                m.cpu_std.get(last - 1).copied().unwrap_or(f64::NAN)
            );
        }
    }
    if contradictions.is_empty() {
        println!("- the claim HOLDS for every run: each outcome follows its std profile");
    } else {
        for m in &contradictions {
            println!(
                "- CONTRADICTS the claim: {} with {}: std profile {}, but the outcome is {} \
                 (val acc {:.3}); {:.3} of its units are saturated/dead at step 0",
                m.activation,
                m.init,
                m.profile(),
                m.outcome(),
                m.val_accuracy(),
                m.stuck_at_init
            );
        }
        println!(
            "- the claim holds for the other {} of {} runs",
            runs.len() - contradictions.len(),
            runs.len()
        );
    }

    let mut written = Vec::new();
    let png = args.out.join("activation_std.png");
    plot_std(&runs, &args, false, &png)?;
    written.push(png);
    let png = args.out.join("activation_std_flat.png");
    plot_std(&runs, &args, true, &png)?;
    written.push(png);
    let measurements = serde_json::json!({
        "claim": "activation std per layer at initialisation explodes, vanishes or stays flat, and the training outcome follows",
        "runs": runs.iter().map(|m| serde_json::json!({
            "activation": m.activation.to_string(),
            "init": m.init.to_string(),
            "weight_std": m.weight_std,
            "activation_std_step0_gpu_batch": m.gpu_std,
            "activation_std_init_cpu_train_set": m.cpu_std,
            "saturated_or_dead_at_init": m.stuck_at_init,
            "profile": m.profile().to_string(),
            "val_accuracy": m.val_accuracy(),
            "outcome": m.outcome().to_string(),
            "follows_profile": follows(m.profile(), m.outcome()),
            "same_initial_weights_as": m.same_as.map(|i| i.to_string()),
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

/// The std per layer, one panel per activation; `flat_only`: only the runs
/// whose std stays flat, on a linear axis.
fn plot_std(runs: &[Measured], args: &Args, flat_only: bool, path: &Path) -> Result<(), Error> {
    let shown = |m: &&Measured| {
        m.same_as.is_none() && (!flat_only || matches!(m.profile(), Profile::Flat(_)))
    };
    let scale = |v: f64| if flat_only { v } else { v.log10() };
    let top = runs
        .iter()
        .filter(shown)
        .flat_map(|m| m.std_used())
        .map(|s| s.0)
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let panels: Vec<Panel> = args
        .activations
        .iter()
        .map(|act| Panel {
            title: if flat_only {
                format!("{act}: the initialisations whose std stays flat")
            } else {
                format!("{act}: activation std per layer at initialisation")
            },
            x_label: "hidden layer".into(),
            y_label: if flat_only {
                "activation std".into()
            } else {
                "log10 of the activation std".into()
            },
            // log10 values on a linear axis rather than `log_y`: plotters
            // draws no tick labels below 1e-16, and these values reach 1e-26.
            log_y: false,
            y_range: (flat_only && top > 0.0).then_some((0.0, top * 1.1)),
            series: runs
                .iter()
                .filter(|m| m.activation == *act)
                .filter(shown)
                .flat_map(|m| {
                    let used = m.std_used();
                    let gpu = Series {
                        label: m.init.to_string(),
                        points: used
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| !s.1)
                            .map(|(l, s)| ((l + 1) as f64, scale(s.0)))
                            .collect(),
                        dashed: false,
                        markers: true,
                    };
                    // Where the GPU's f32 diagnostic underflowed: the CPU
                    // value, dashed, from the last GPU point on.
                    let start = used.iter().position(|s| s.1).map(|i| i.saturating_sub(1));
                    let cpu = start.map(|start| Series {
                        label: m.init.to_string(),
                        points: used
                            .iter()
                            .enumerate()
                            .skip(start)
                            .map(|(l, s)| ((l + 1) as f64, scale(s.0)))
                            .collect(),
                        dashed: true,
                        markers: false,
                    });
                    std::iter::once(gpu).chain(cpu)
                })
                .collect(),
        })
        .collect();
    let mut notes = vec![format!(
        "digits, {}x{} MLP, seed {}; the GPU diagnostic at step 0 (before any update) over the first batch of {} rows.",
        args.depth, args.width, args.seed, args.batch_size
    )];
    for m in runs {
        if let Some(o) = m.same_as {
            notes.push(format!(
                "{}: {} draws the same initial weights as {o}, so its line is {o}'s (not drawn twice).",
                m.activation, m.init
            ));
        }
        if !flat_only && m.std_used().iter().any(|s| s.1) {
            notes.push(format!(
                "{} with {}: dashed where the GPU's f32 sum of squares underflowed to 0: the std over \
                 the training set computed on the CPU in f64.",
                m.activation, m.init
            ));
        }
    }
    if !flat_only {
        notes.push(
            "y: log10 of the std (0 is 1, -10 is 1e-10): one unit on the axis is a factor of 10."
                .to_string(),
        );
    }
    if flat_only {
        notes.push(
            "Only the runs whose std at the last hidden layer is within 0.1x-10x of the first's, \
             on a linear axis (all runs, log scale: activation_std.png)."
                .to_string(),
        );
    }
    plot_panels(
        &format!(
            "Activation std through depth under {} initialisations",
            args.inits.len()
        ),
        &panels,
        &notes,
        path,
    )
}
