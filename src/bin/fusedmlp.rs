//! The `fusedmlp` command line: self-test, benchmarks and training runs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;

use fusedmlp::compare::{self, Contender};
use fusedmlp::{
    bench, data, selftest, Activation, Error, Gpu, Head, Init, Mlp, MlpConfig, Optimizer,
    RunReport, Schedule, TrainConfig, Trainer,
};

#[derive(Parser)]
#[command(
    name = "fusedmlp",
    version,
    about = "Train deep MLPs on the GPU with fused WGSL kernels, and measure what activations do to the gradient"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check every activation on this GPU against the CPU reference and
    /// measure elementwise throughput. Exits non-zero if any is out of tolerance.
    Selftest {
        /// Inputs per activation.
        #[arg(long, default_value_t = 120_000)]
        inputs: usize,
        /// Elements for the throughput measurement (0 skips it).
        #[arg(long, default_value_t = 1 << 22)]
        throughput_len: usize,
        /// Also write the results as JSON to this file.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// Train one MLP and report loss, accuracy and per-layer gradient-flow diagnostics.
    Train {
        #[command(flatten)]
        run: RunArgs,
        /// The hidden activation (e.g. relu, leaky_relu:0.1, sigmoid, tanh, gelu).
        #[arg(long, default_value = "relu")]
        activation: Activation,
    },
    /// Train with diagnostics logged for a while and watch what the
    /// process holds: prints resident memory and live GPU objects at every
    /// sample, and exits non-zero if either grew past its bound after the
    /// warm-up.
    Soak(SoakArgs),
    /// Loss and accuracy of a saved model on a data set.
    Eval {
        /// The checkpoint (a .safetensors file written by `train --checkpoint`).
        #[arg(long)]
        checkpoint: PathBuf,
        /// Data: digits, csv:PATH, idx:IMAGES,LABELS, or a synthetic set.
        #[arg(long, default_value = "digits")]
        data: String,
        /// Seed for synthetic data sets.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Class probabilities of a saved model for the rows of a features-only CSV.
    Predict {
        /// The checkpoint.
        #[arg(long)]
        checkpoint: PathBuf,
        /// CSV of features (no label column; a header row is detected).
        #[arg(long)]
        input: PathBuf,
        /// Write the probabilities here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Train the same net with several activations (same data, architecture,
    /// optimizer and seed) and compare them side by side.
    Compare {
        #[command(flatten)]
        run: RunArgs,
        /// Comma-separated hidden activations.
        #[arg(long, value_delimiter = ',', default_value = "relu,sigmoid,tanh")]
        activations: Vec<Activation>,
        /// Run every activation on each of these seeds (0..5 for 0 to 4,
        /// 0..=4, or 1,4,9) and print the median and range of each figure
        /// over them; replaces --seed.
        #[arg(long, conflicts_with_all = ["seed", "checkpoint", "resume"])]
        seeds: Option<fusedmlp::train::Seeds>,
    },
    /// Benchmark the fused linear kernels: forward and backward GFLOP/s, the
    /// unfused path for contrast, each as a fraction of the adapter's peak
    /// measured in the same run.
    Bench {
        /// Also run 2048³ and 4096³ (for real GPUs).
        #[arg(long)]
        large: bool,
        /// Interleaved timing rounds per median.
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Comma-separated activations (default: identity,relu,sigmoid,tanh,gelu).
        #[arg(long, value_delimiter = ',')]
        activations: Option<Vec<Activation>>,
        /// Comma-separated shapes as BATCHxINxOUT (default: 256x256x256,1024x1024x1024,4096x512x512).
        #[arg(long, value_delimiter = ',', value_parser = parse_shape)]
        shapes: Option<Vec<fusedmlp::LinearShape>>,
        /// Also write the table as JSON to this file.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Benchmark training steps instead: per net, activation and kernel
        /// path (fully fused where the net allows it, and layered), ms per
        /// step, dispatches per step, host recording time, GFLOP/s and the
        /// fraction of the adapter's peak. Default nets: the main job's
        /// (20 × 64, batch 32) and 20 × 256 at batch 256; --width, --depth
        /// and --batch give one net instead; --activations (default relu).
        #[arg(long)]
        train: bool,
        /// With --train: the cost of each remedy (LayerNorm, BatchNorm,
        /// residual, dropout) on a 20 × 256 step at batch 256 instead.
        #[arg(long, requires = "train")]
        remedies: bool,
        /// With --train: also show where a step's time goes, each compute
        /// pass submitted and waited on alone (milliseconds, medians).
        #[arg(long, requires = "train", conflicts_with = "remedies")]
        profile: bool,
        /// With --train: units per hidden layer of the one net to measure.
        #[arg(long, requires = "train")]
        width: Option<usize>,
        /// With --train: hidden layers of the one net to measure.
        #[arg(long, requires = "train")]
        depth: Option<usize>,
        /// With --train: rows a step of the one net to measure.
        #[arg(long, requires = "train")]
        batch: Option<usize>,
        /// Benchmark stacks of hidden layers instead, forward and backward,
        /// through the fully fused kernels against the layered path
        /// (default stacks: 20 × 64 at batch 32 and 256, 20 × 128 at batch 256;
        /// activations relu and tanh unless --activations says otherwise).
        #[arg(long, conflicts_with = "train")]
        fused: bool,
    },
}

/// The options shared by `train` and `compare`.
#[derive(clap::Args)]
struct RunArgs {
    /// Data: digits, spirals[:N], moons[:N], blobs[:N], checkerboard[:N], csv:PATH or idx:IMAGES,LABELS.
    #[arg(long, default_value = "digits")]
    data: String,
    /// Fraction of the data held out for validation.
    #[arg(long, default_value_t = 0.2)]
    val_fraction: f64,
    /// Z-score the features with statistics of the training split.
    #[arg(long)]
    standardize: bool,
    /// Hidden layers (ignored when --hidden is given).
    #[arg(long, default_value_t = 20)]
    depth: usize,
    /// Units per hidden layer (ignored when --hidden is given).
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// Explicit hidden widths, comma-separated (e.g. 256,128,64).
    #[arg(long, value_delimiter = ',')]
    hidden: Option<Vec<usize>>,
    /// Residual connections: hidden layers after the first compute x + f(x).
    #[arg(long)]
    residual: bool,
    /// Dropout probability after each hidden activation (training only).
    #[arg(long, default_value_t = 0.0)]
    dropout: f32,
    /// Alpha dropout (for SELU nets) instead of inverted dropout.
    #[arg(long)]
    alpha_dropout: bool,
    /// With --residual: scale each residual branch's initial weights by
    /// 1/sqrt(number of residual blocks), so very deep residual nets start
    /// with bounded activations.
    #[arg(long)]
    scale_residual_init: bool,
    /// LayerNorm in every hidden layer, before or after the activation.
    #[arg(long)]
    layer_norm: Option<fusedmlp::nn::NormPlacement>,
    /// BatchNorm1d in every hidden layer, before or after the activation
    /// (batch statistics in training, running estimates in evaluation).
    #[arg(long)]
    batch_norm: Option<fusedmlp::nn::NormPlacement>,
    /// Learn the PReLU slopes (with --activation prelu[:initial]): per_layer or per_unit.
    #[arg(long)]
    learn_prelu: Option<fusedmlp::nn::PreluMode>,
    /// The self-normalising preset: SELU, LeCun normal and alpha dropout
    /// (with --dropout's probability), no normalisation.
    #[arg(long)]
    self_normalising: bool,
    /// Output head and loss: softmax (cross-entropy), sigmoid (binary cross-entropy) or mse.
    #[arg(long, default_value = "softmax")]
    head: Head,
    /// Initialiser: he_normal, he_uniform, xavier_normal, xavier_uniform, lecun_normal,
    /// orthogonal, torch_default or normal:STD (default: the activation's usual one).
    #[arg(long)]
    init: Option<Init>,
    /// Optimizer: sgd, adam, adamw or rmsprop.
    #[arg(long, default_value = "sgd")]
    optimizer: Optimizer,
    /// Learning rate (default: the optimizer's own, as PyTorch's: 1e-3 for
    /// sgd, adam and adamw, 1e-2 for rmsprop).
    #[arg(long)]
    lr: Option<f32>,
    /// Momentum (SGD, RMSprop).
    #[arg(long)]
    momentum: Option<f32>,
    /// Nesterov momentum (SGD).
    #[arg(long)]
    nesterov: bool,
    /// Weight decay (decoupled for AdamW, L2 otherwise).
    #[arg(long)]
    weight_decay: Option<f32>,
    /// Learning-rate schedule: constant, step:STEP_SIZE,GAMMA or cosine[:MIN_LR].
    #[arg(long, default_value = "constant")]
    schedule: Schedule,
    /// Steps of linear learning-rate warmup.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Clip gradients to this global L2 norm.
    #[arg(long)]
    clip_norm: Option<f32>,
    /// Epochs.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Read diagnostics back every this many steps.
    #[arg(long, default_value_t = 25)]
    log_every: u64,
    /// Keep at most this many logged steps in memory and in the report;
    /// past it, older entries are thinned (the report says how).
    #[arg(long, default_value_t = fusedmlp::train::DEFAULT_MAX_LOGGED_STEPS)]
    max_logged_steps: usize,
    /// Which kernels run the hidden layers: auto (the fully fused stack
    /// where the net allows it and the batch is at most 64 rows), fused or
    /// layered.
    #[arg(long, default_value = "auto")]
    kernels: fusedmlp::train::Kernels,
    /// Seed of the weights, the split and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the JSON report to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write PNG plots (and report.json) into this folder.
    #[arg(long)]
    plots: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Save a checkpoint (safetensors) to this file every --checkpoint-every
    /// steps and at the end (train only).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 500)]
    checkpoint_every: u64,
    /// Resume the run saved in this checkpoint: the model, optimizer state
    /// and training configuration come from it; --epochs sets the total
    /// epoch count; the data options must match the original run's (train only).
    #[arg(long)]
    resume: Option<PathBuf>,
}

impl RunArgs {
    fn optimizer(&self) -> Result<Optimizer, Error> {
        let mut opt = self.optimizer;
        match &mut opt {
            Optimizer::Sgd {
                momentum,
                nesterov,
                weight_decay,
            } => {
                *momentum = self.momentum.unwrap_or(0.0);
                *nesterov = self.nesterov;
                *weight_decay = self.weight_decay.unwrap_or(0.0);
            }
            Optimizer::Adam { weight_decay, .. } | Optimizer::AdamW { weight_decay, .. } => {
                if let Some(wd) = self.weight_decay {
                    *weight_decay = wd;
                }
                if self.momentum.is_some() || self.nesterov {
                    return Err(Error::Config(
                        "--momentum and --nesterov apply to sgd and rmsprop only".into(),
                    ));
                }
            }
            Optimizer::RmsProp {
                momentum,
                weight_decay,
                ..
            } => {
                *momentum = self.momentum.unwrap_or(0.0);
                *weight_decay = self.weight_decay.unwrap_or(0.0);
            }
            _ if self.momentum.is_none() && !self.nesterov && self.weight_decay.is_none() => {}
            other => {
                return Err(Error::Config(format!(
                    "--momentum, --nesterov and --weight-decay do not apply to {other:?}"
                )))
            }
        }
        opt.validate()?;
        Ok(opt)
    }

    /// Loads and splits the data, builds the base model and training configs.
    #[allow(clippy::type_complexity)]
    fn setup(
        &self,
    ) -> Result<
        (
            data::Dataset,
            data::Dataset,
            MlpConfig,
            TrainConfig,
            Option<data::Standardizer>,
        ),
        Error,
    > {
        let all = data::by_name(&self.data, self.seed)?;
        let (mut train, mut val) = all.split(self.val_fraction, self.seed)?;
        if val.is_empty() {
            return Err(Error::Config(
                "the validation split is empty; use a --val-fraction above 0".into(),
            ));
        }
        let mut standardizer = None;
        if self.standardize {
            let s = data::Standardizer::fit(&train);
            s.apply(&mut train)?;
            s.apply(&mut val)?;
            standardizer = Some(s);
        }
        let hidden = self
            .hidden
            .clone()
            .unwrap_or_else(|| vec![self.width; self.depth]);
        let output = if self.head != Head::Softmax && all.n_classes() == 2 {
            1
        } else {
            all.n_classes()
        };
        let mut model = MlpConfig::new(all.n_features(), hidden, output, Activation::Relu);
        model.head = self.head;
        model.init = self.init;
        model.seed = self.seed;
        model.residual = self.residual;
        model.scale_residual_init = self.scale_residual_init;
        model.dropout = self.dropout;
        model.alpha_dropout = self.alpha_dropout || self.self_normalising;
        model.learn_prelu = self.learn_prelu;
        model.layer_norm = self.layer_norm;
        model.batch_norm = self.batch_norm;
        if self.self_normalising {
            model.activation = Activation::Selu;
            model.init = Some(self.init.unwrap_or(Init::LecunNormal));
        }
        let train_config = TrainConfig::default()
            .with_epochs(self.epochs)
            .with_batch_size(self.batch_size)
            .with_learning_rate(self.lr)
            .with_optimizer(self.optimizer()?)
            .with_schedule(self.schedule)
            .with_warmup_steps(self.warmup)
            .with_clip_norm(self.clip_norm)
            .with_log_every(self.log_every)
            .with_max_logged_steps(self.max_logged_steps)
            .with_seed(self.seed)
            .with_kernels(self.kernels);
        train_config.validate(train.len())?;
        println!(
            "data: {} ({} train / {} validation rows, {} features, {} classes{})",
            all.name(),
            train.len(),
            val.len(),
            all.n_features(),
            all.n_classes(),
            if self.standardize {
                ", standardised"
            } else {
                ""
            }
        );
        println!(
            "model: {} hidden layers {:?}, {} outputs, head {}; optimizer {}, lr {}, batch {}, {} epochs, seed {}",
            model.hidden.len(), model.hidden, model.output, model.head, train_config.optimizer,
            train_config.lr(), self.batch_size, self.epochs, self.seed
        );
        Ok((train, val, model, train_config, standardizer))
    }

    fn progress(&self) -> indicatif::ProgressBar {
        if self.quiet || !std::io::stdout().is_terminal() {
            indicatif::ProgressBar::hidden()
        } else {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>12} [{bar:40}] {pos}/{len} steps {per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        }
    }

    fn write(&self, runs: &[RunReport]) -> Result<(), Error> {
        if let Some(path) = &self.json {
            write_json(
                path,
                &serde_json::json!({
                    "summary": runs.iter().map(compare::summarize).collect::<Vec<_>>(),
                    "runs": runs,
                }),
            )?;
            println!("wrote {}", path.display());
        }
        if let Some(dir) = &self.plots {
            for f in compare::write_outputs(runs, dir)? {
                println!("wrote {}", f.display());
            }
        }
        Ok(())
    }
}

/// Options of `fusedmlp soak`.
#[derive(clap::Args)]
struct SoakArgs {
    /// How long to train.
    #[arg(long, default_value_t = 5.0)]
    minutes: f64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 60.0)]
    sample_seconds: f64,
    /// Read diagnostics back every this many steps.
    #[arg(long, default_value_t = 1)]
    log_every: u64,
    /// Logged steps kept (the report's cap).
    #[arg(long, default_value_t = fusedmlp::train::DEFAULT_MAX_LOGGED_STEPS)]
    max_logged_steps: usize,
    /// Hidden layers.
    #[arg(long, default_value_t = 20)]
    depth: usize,
    /// Units per hidden layer.
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Largest resident-memory growth allowed after the warm-up, in MB.
    #[arg(long, default_value_t = 64.0)]
    max_growth_mb: f64,
}

fn run_soak(a: SoakArgs) -> Result<bool, Error> {
    let positive = |v: f64| v.is_finite() && v > 0.0;
    let valid = positive(a.minutes)
        && positive(a.sample_seconds)
        && a.max_growth_mb.is_finite()
        && a.max_growth_mb >= 0.0;
    if !valid {
        return Err(Error::Config(
            "--minutes and --sample-seconds must be positive and --max-growth-mb at least 0".into(),
        ));
    }
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());
    let (train, _) = data::digits()?.split(0.2, 0)?;
    let model = MlpConfig::deep(64, a.depth, a.width, 10, Activation::Relu);
    let tc = TrainConfig::default()
        .with_epochs(1)
        .with_batch_size(a.batch_size)
        .with_log_every(a.log_every)
        .with_max_logged_steps(a.max_logged_steps);
    println!(
        "soak: {} x {} relu, batch {}, diagnostics every {} steps, at most {} kept, {} min, \
         resident growth bound {} MB",
        a.depth, a.width, a.batch_size, a.log_every, a.max_logged_steps, a.minutes, a.max_growth_mb
    );
    let start = std::time::Instant::now();
    let report = fusedmlp::soak::soak(
        &gpu,
        model,
        tc,
        &train,
        &fusedmlp::soak::SoakConfig {
            // Until the report reaches its cap (at most 1,000 steps): from
            // then on the logged steps it holds stay bounded.
            warmup_steps: (a.max_logged_steps as u64)
                .saturating_mul(a.log_every)
                .min(1000) as usize
                + 20,
            steps: None,
            duration: Some(std::time::Duration::from_secs_f64(a.minutes * 60.0)),
            sample_every: std::time::Duration::from_secs_f64(a.sample_seconds),
            max_resident_growth: (a.max_growth_mb * 1e6) as u64,
        },
        |step, s| {
            println!(
                "{:>8.1} s  step {step:>8}  {}",
                start.elapsed().as_secs_f64(),
                s.describe()
            )
        },
    )?;
    println!("logged steps held at the end: {}", report.logged_steps_held);
    if report.failures.is_empty() {
        println!("soak: held (no live object grew, resident memory within its bound)");
        Ok(true)
    } else {
        for f in &report.failures {
            println!("soak: FAILED: {f}");
        }
        Ok(false)
    }
}

fn run_train(args: RunArgs, activation: Activation) -> Result<bool, Error> {
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());
    let activation = if args.self_normalising {
        Activation::Selu
    } else {
        activation
    };
    let (train, val, mut model, tc, standardizer) = args.setup()?;
    model.activation = activation;
    model.validate()?;
    let mut trainer = match &args.resume {
        Some(path) => {
            let ckpt = fusedmlp::train::Checkpoint::load(path)?;
            let t = Trainer::resume(&gpu, &ckpt, &train, &val, Some(args.epochs))?;
            println!(
                "resuming {} at step {}: model and training configuration from the checkpoint \
                 (activation {}), {} epochs in total",
                path.display(),
                t.steps_taken(),
                ckpt.model.activation,
                args.epochs
            );
            t
        }
        None => {
            println!("activation {activation}, init {}", model.init());
            let mut t = Trainer::new(Mlp::new(&gpu, model)?, tc, &train, &val)?;
            t.set_standardizer(standardizer)?;
            t
        }
    };
    if let Some(path) = &args.checkpoint {
        trainer.set_checkpointing(path, args.checkpoint_every);
    }
    let bar = args.progress();
    bar.set_prefix(activation.to_string());
    let report = trainer.train(
        &activation.to_string(),
        |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
        |e| {
            bar.suspend(|| {
                let val = match e.validation() {
                    Some((loss, acc)) => format!("val loss {loss:.4} acc {acc:.4}"),
                    None => "no validation set".to_string(),
                };
                println!(
                    "epoch {:>3}: train loss {:.4} acc {:.4} | {val} | {:.1} s",
                    e.epoch, e.train_loss, e.train_accuracy, e.elapsed_seconds
                )
            })
        },
    )?;
    bar.finish_and_clear();
    let runs = vec![report];
    print!("{}", compare::table(&runs));
    println!(
        "{} steps, {} readbacks",
        runs[0].total_steps, runs[0].readbacks
    );
    args.write(&runs)?;
    if let Some(d) = &runs[0].divergence {
        eprintln!("error: {d}");
        return Ok(false);
    }
    if let Some(path) = &args.checkpoint {
        println!("checkpoint: {}", path.display());
    }
    Ok(true)
}

fn run_eval(checkpoint: PathBuf, data_spec: String, seed: u64) -> Result<bool, Error> {
    let gpu = Gpu::new()?;
    let model = Mlp::load(&gpu, &checkpoint)?;
    let set = data::by_name(&data_spec, seed)?;
    // The model standardises the rows itself, with the scaling it was saved with.
    let metrics = model.evaluate(&set)?;
    println!(
        "{}: {} rows, loss {:.4}, accuracy {:.4} ({} correct)",
        set.name(),
        metrics.rows,
        metrics.loss,
        metrics.accuracy,
        metrics.correct
    );
    Ok(true)
}

fn run_predict(
    checkpoint: PathBuf,
    input: PathBuf,
    output: Option<PathBuf>,
) -> Result<bool, Error> {
    let gpu = Gpu::new()?;
    let model = Mlp::load(&gpu, &checkpoint)?;
    let (x, rows, cols) = data::load_features_csv(&input)?;
    if cols != model.config().input {
        return Err(Error::Data {
            path: input.display().to_string(),
            message: format!(
                "rows have {cols} features but the model takes {}",
                model.config().input
            ),
        });
    }
    // The model standardises the rows itself, with the scaling it was saved with.
    let logits = model.predict_logits(&x, rows)?;
    let k = model.config().output;
    let mut text = (0..k)
        .map(|j| format!("class_{j}"))
        .collect::<Vec<_>>()
        .join(",");
    text.push('\n');
    for row in logits.chunks(k) {
        let probs = model.config().head.outputs_of(row);
        text.push_str(
            &probs
                .iter()
                .map(|p| format!("{p:.6}"))
                .collect::<Vec<_>>()
                .join(","),
        );
        text.push('\n');
    }
    match output {
        Some(path) => {
            fusedmlp::train::write_atomic(&path, text.as_bytes())?;
            eprintln!("wrote {} rows of probabilities to {}", rows, path.display());
        }
        None => print!("{text}"),
    }
    Ok(true)
}

fn run_compare(args: RunArgs, activations: Vec<Activation>) -> Result<bool, Error> {
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());
    if args.resume.is_some() || args.checkpoint.is_some() {
        return Err(Error::Config(
            "--checkpoint and --resume apply to `train` only".into(),
        ));
    }
    let (train, val, model, tc, _) = args.setup()?;
    let contenders = contenders_of(&activations, args.init);
    let bar = args.progress();
    let runs = compare::compare(
        &gpu,
        &model,
        &tc,
        &train,
        &val,
        &contenders,
        |i, label, config| {
            run_started(
                &bar,
                format!(
                    "run {}/{}: {label}, init {}",
                    i + 1,
                    contenders.len(),
                    config.init()
                ),
                label.to_string(),
            )
        },
        step_progress(&bar),
    )?;
    bar.finish_and_clear();
    print!("{}", compare::table(&runs));
    args.write(&runs)?;
    Ok(true)
}

/// Prints `line` above the progress bar and restarts the bar for a run.
fn run_started(bar: &indicatif::ProgressBar, line: String, prefix: String) {
    bar.suspend(|| println!("{line}"));
    bar.set_prefix(prefix);
    bar.set_position(0);
}

/// The `on_step` callback that moves the progress bar.
fn step_progress(bar: &indicatif::ProgressBar) -> impl FnMut(u64, u64) + '_ {
    move |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    }
}

fn contenders_of(activations: &[Activation], init: Option<Init>) -> Vec<Contender> {
    activations
        .iter()
        .map(|&activation| Contender {
            init,
            ..Contender::new(activation)
        })
        .collect()
}

/// `compare --seeds`: every activation on every seed, then the median and
/// range of each figure.
fn run_compare_seeds(
    mut args: RunArgs,
    activations: Vec<Activation>,
    seeds: fusedmlp::train::Seeds,
) -> Result<bool, Error> {
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());
    let first = seeds.as_slice()[0];
    args.seed = first;
    let (_, _, model, tc, _) = args.setup()?;
    let contenders = contenders_of(&activations, args.init);
    let bar = args.progress();
    let count = contenders.len();
    let runs = compare::compare_seeds(
        &gpu,
        &model,
        &tc,
        &seeds,
        |seed| {
            args.seed = seed;
            args.setup().map(|(train, val, ..)| (train, val))
        },
        &contenders,
        |seed, i, label, config| {
            run_started(
                &bar,
                format!(
                    "seed {seed}, run {}/{count}: {label}, init {}",
                    i + 1,
                    config.init()
                ),
                format!("{label} seed {seed}"),
            )
        },
        step_progress(&bar),
    )?;
    bar.finish_and_clear();
    print!("{}", compare::seed_table(&runs));
    if let Some(path) = &args.json {
        write_json(
            path,
            &serde_json::json!({
                "seeds": runs.seeds,
                "summary": compare::seed_summaries(&runs),
                "runs": runs.runs,
            }),
        )?;
        println!("wrote {}", path.display());
    }
    if let Some(dir) = &args.plots {
        for f in compare::write_seed_outputs(&runs, dir)? {
            println!("wrote {}", f.display());
        }
    }
    Ok(true)
}

fn run_train_bench() -> Result<bool, Error> {
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());
    let report = bench::train_step_bench(&gpu, 20)?;
    println!(
        "{:<10} {:<11} {:>12} {:>14} {:>16} {:>18} {:>18} {:>12} {:>14}",
        "activation",
        "remedy",
        "ms / step",
        "samples / s",
        "host ms / step",
        "readbacks / step",
        "dispatches / step",
        "step GF/s",
        "linear GF/s"
    );
    for r in &report {
        println!(
            "{:<10} {:<11} {:>12.2} {:>14.0} {:>16.3} {:>18} {:>18} {:>12.2} {:>14.2}",
            r.activation,
            r.remedy,
            r.step_ms,
            r.samples_per_second,
            r.host_record_ms,
            r.readbacks_per_step,
            r.dispatches_per_step,
            r.step_gflops,
            r.linear_gflops
        );
    }
    for r in report.iter().filter(|r| r.remedy == "none") {
        println!("{}: first step done {:.2} s after the model was created (including kernel compilation and autotuning)", r.activation, r.first_step_seconds);
    }
    let (classes, tuned) = fusedmlp::bench::autotune_summary(&gpu);
    println!("autotune: {classes} shape classes, {tuned:.2} s measuring in total");
    println!("(20 hidden layers of 256, input 64, 10 classes, batch 256, plain SGD; linear GF/s: the fused linear benchmark at 256x256x256, forward + backward)");
    Ok(true)
}

fn parse_shape(s: &str) -> Result<fusedmlp::LinearShape, String> {
    let parts: Vec<&str> = s.split('x').collect();
    let nums: Result<Vec<usize>, _> = parts.iter().map(|p| p.trim().parse::<usize>()).collect();
    match nums {
        Ok(n) if n.len() == 3 && n.iter().all(|&v| v > 0) => {
            Ok(fusedmlp::LinearShape::new(n[0], n[1], n[2]))
        }
        _ => Err(format!(
            "'{s}' is not a shape: write BATCHxINxOUT with positive sizes, e.g. 256x784x128"
        )),
    }
}

fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Config(e.to_string()))?;
    std::fs::write(path, text).map_err(|e| Error::Io {
        context: format!("writing {}", path.display()),
        source: e,
    })
}

fn run_train_paths_bench(
    profile: bool,
    width: Option<usize>,
    depth: Option<usize>,
    batch: Option<usize>,
    activations: Option<Vec<Activation>>,
    repeats: usize,
    json: Option<std::path::PathBuf>,
) -> Result<bool, Error> {
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());
    let nets = if width.is_some() || depth.is_some() || batch.is_some() {
        vec![bench::TrainNet {
            input: 64,
            width: width.unwrap_or(64),
            depth: depth.unwrap_or(20),
            batch: batch.unwrap_or(32),
            classes: 10,
        }]
    } else {
        bench::default_train_nets()
    };
    let activations = activations.unwrap_or_else(|| vec![Activation::Relu]);
    let (peak, rows) =
        bench::train_path_bench(&gpu, &nets, &activations, 20, repeats.max(1), profile)?;
    println!(
        "{:<16} {:<8} {:<8} {:>10} {:>12} {:>11} {:>10} {:>7} {:>12}",
        "net L×w b",
        "act",
        "kernels",
        "ms / step",
        "dispatches",
        "host ms",
        "step GF/s",
        "peak",
        "first step s"
    );
    for r in &rows {
        println!(
            "{:<16} {:<8} {:<8} {:>10.2} {:>12} {:>11.3} {:>10.2} {:>6.1}% {:>12.2}",
            format!("{}×{} b{}", r.net.depth, r.net.width, r.net.batch),
            r.activation,
            r.kernels,
            r.step_ms,
            r.dispatches_per_step,
            r.host_record_ms,
            r.step_gflops,
            100.0 * r.fraction_of_peak,
            r.first_step_seconds
        );
    }
    println!(
        "(plain SGD, unlogged steps, input 64, 10 classes; peak {peak:.1} GFLOP/s measured in the same run; \
         medians over {} interleaved rounds of 20 steps; a net the fused path cannot run has no fused row)",
        repeats.max(1)
    );
    for r in rows.iter().filter(|r| r.profiled_step_ms.is_some()) {
        println!(
            "\n{}×{} b{} {} {}: each pass submitted and waited on alone (median ms over 20 steps)",
            r.net.depth, r.net.width, r.net.batch, r.activation, r.kernels
        );
        print_passes(&r.passes, r.profiled_step_ms);
        println!("  the step's plan (replayed every unlogged step):");
        for line in r.plan.lines() {
            println!("    {line}");
        }
        println!("  a step that logs its diagnostics (read back before the next step):");
        print_passes(&r.logged_passes, r.profiled_logged_step_ms);
    }
    if let Some(path) = json {
        write_json(
            &path,
            &serde_json::json!({ "adapter": gpu.describe(), "peak_gflops": peak, "rows": rows }),
        )?;
    }
    Ok(true)
}

/// Prints a profiled step's passes, those of one label merged, their sum
/// and the whole step's time run that way.
fn print_passes(passes: &[(String, f64)], whole_ms: Option<f64>) {
    let mut merged: Vec<(String, f64, usize)> = Vec::new();
    for (label, ms) in passes {
        match merged.iter_mut().find(|m| &m.0 == label) {
            Some(m) => {
                m.1 += ms;
                m.2 += 1;
            }
            None => merged.push((label.clone(), *ms, 1)),
        }
    }
    for (label, ms, count) in &merged {
        println!("  {label:<28} {count:>4} × {:>9.3} ms", ms);
    }
    let sum: f64 = passes.iter().map(|p| p.1).sum();
    println!(
        "  {:<28} {:>4}   {sum:>9.3} ms (whole step run this way: {:.3} ms)",
        "sum of passes",
        passes.len(),
        whole_ms.unwrap_or(0.0)
    );
}

fn run_fused_bench(
    repeats: usize,
    activations: Option<Vec<Activation>>,
    json: Option<std::path::PathBuf>,
) -> Result<bool, Error> {
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());
    let activations = activations.unwrap_or_else(|| vec![Activation::Relu, Activation::Tanh]);
    let (peak, _, _) = gpu.measure_peak_gflops()?;
    println!("fused kernel design: {:?}", gpu.fused_kernel());
    println!(
        "{:<20} {:<8} {:>9} {:>7} {:>9} {:>11} {:>9} {:>12} {:>9} {:>12} {:>8}",
        "stack b×in×w×L",
        "act",
        "fused ms",
        "peak",
        "other ms",
        "layered ms",
        "fused ×",
        "dispatches",
        "fused GF/s",
        "layered GF/s",
        "build s"
    );
    let mut rows = Vec::new();
    for shape in bench::default_stacks() {
        for &act in &activations {
            let r = bench::stack_bench(&gpu, shape, act, repeats.max(1))?;
            println!(
                "{:<20} {:<8} {:>9.3} {:>6.1}% {:>9} {:>11.3} {:>8.2}× {:>5} / {:<5} {:>9.2} {:>12.2} {:>8.2}",
                format!("{}×{}×{}×{}", r.batch, r.input, r.width, r.layers),
                r.activation,
                r.fused_ms,
                100.0 * r.fused_gflops / peak,
                r.other_fused_ms.map_or("-".to_string(), |v| format!("{v:.3}")),
                r.layered_ms,
                r.layered_ms / r.fused_ms,
                r.fused_dispatches,
                r.layered_dispatches,
                r.fused_gflops,
                r.layered_gflops,
                r.build_s,
            );
            rows.push(r);
        }
    }
    println!(
        "(forward and backward of the hidden stack only, no head or optimizer; peak {peak:.1} GFLOP/s \
         measured in the same run; other: the workgroup-memory fused design where the default is the \
         subgroup one; dispatches: fused / layered, counted by the host layer; build: buffers and kernels \
         of the default design; medians over {} interleaved rounds)",
        repeats.max(1)
    );
    if let Some(path) = json {
        write_json(
            &path,
            &serde_json::json!({ "adapter": gpu.describe(), "peak_gflops": peak, "rows": rows }),
        )?;
    }
    Ok(true)
}

fn run_bench(
    large: bool,
    repeats: usize,
    activations: Option<Vec<Activation>>,
    shapes: Option<Vec<fusedmlp::LinearShape>>,
    json: Option<std::path::PathBuf>,
) -> Result<bool, Error> {
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());
    let shapes = shapes.unwrap_or_else(|| bench::default_shapes(large));
    let activations = activations.unwrap_or_else(|| bench::BENCH_ACTIVATIONS.to_vec());
    eprintln!(
        "measuring {} shapes x {} activations in {} interleaved rounds...",
        shapes.len(),
        activations.len(),
        repeats.max(1)
    );
    let report = bench::run(&gpu, &shapes, &activations, repeats.max(1), |r| {
        let s = r.shape;
        eprintln!(
            "  {}×{}×{} {}: done",
            s.batch, s.in_features, s.out_features, r.activation
        );
    })?;
    println!(
        "{:<16} {:<10} {:<22} {:>9} {:>6} {:>9} {:>6} {:>11} {:>9}",
        "shape b×i×o",
        "activation",
        "forward variant",
        "fwd GF/s",
        "peak",
        "bwd GF/s",
        "peak",
        "unfused GF/s",
        "fused ×"
    );
    for r in &report.rows {
        let s = r.shape;
        println!(
            "{:<16} {:<10} {:<22} {:>9.2} {:>5.0}% {:>9.2} {:>5.0}% {:>11.2} {:>8.2}×",
            format!("{}×{}×{}", s.batch, s.in_features, s.out_features),
            r.activation,
            r.forward_variant,
            r.forward_gflops,
            100.0 * r.forward_fraction_of_peak,
            r.backward_gflops,
            100.0 * r.backward_fraction_of_peak,
            r.unfused_forward_gflops,
            r.forward_gflops / r.unfused_forward_gflops
        );
    }
    let samples: Vec<String> = report
        .peak_samples_gflops
        .iter()
        .map(|p| format!("{p:.1}"))
        .collect();
    println!(
        "peak: {:.2} GFLOP/s (fma() {:.2}, a*b+c {:.2}; median of [{}]); times from {:?}, \
         median of {} interleaved rounds",
        report.peak_gflops,
        report.peak_fma_gflops,
        report.peak_mul_add_gflops,
        samples.join(", "),
        report.time_source,
        report.repeats
    );
    for t in &report.tuning {
        println!(
            "autotune {}: {} ({}, {:.2} s)",
            t.class, t.variant, t.how, t.seconds
        );
    }
    if let Some(path) = json {
        write_json(&path, &report)?;
        println!("wrote {}", path.display());
    }
    Ok(true)
}

fn run_selftest(
    inputs: usize,
    throughput_len: usize,
    json: Option<std::path::PathBuf>,
) -> Result<bool, Error> {
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());
    println!(
        "tolerance: |gpu - ref| <= {:e} + {:e}·|ref| (ref computed in f64); {inputs} inputs per activation in [-1e4, 1e4]",
        selftest::ELEMENTWISE_ABS_TOL,
        selftest::ELEMENTWISE_REL_TOL
    );
    let rows = selftest::run(&gpu, inputs, throughput_len)?;
    println!(
        "{:<14} {:>11} {:>11} {:>7} {:>11} {:>11} {:>7} {:>8} {:>9}  result",
        "activation",
        "f abs err",
        "f rel err",
        "f tol",
        "f' abs err",
        "f' rel err",
        "f' tol",
        "nan/inf",
        "GB/s"
    );
    let mut all_ok = true;
    for r in &rows {
        let ok = r.passes();
        all_ok &= ok;
        println!(
            "{:<14} {:>11.3e} {:>11.3e} {:>7.3} {:>11.3e} {:>11.3e} {:>7.3} {:>8} {:>9.2}  {}",
            r.activation,
            r.forward.max_abs_error,
            r.forward.max_rel_error,
            r.forward.worst_tolerance_ratio,
            r.backward.max_abs_error,
            r.backward.max_rel_error,
            r.backward.worst_tolerance_ratio,
            if r.special_values_ok { "ok" } else { "WRONG" },
            r.throughput_gb_s,
            if ok { "ok" } else { "FAIL" }
        );
    }
    println!("('tol' is the worst error as a fraction of the tolerance: at most 1 passes)");
    if let Some(path) = json {
        write_json(
            &path,
            &serde_json::json!({ "adapter": gpu.describe(), "rows": rows }),
        )?;
    }
    println!(
        "{}",
        if all_ok {
            "selftest passed: every activation is within tolerance"
        } else {
            "selftest FAILED: see the rows marked FAIL"
        }
    );
    Ok(all_ok)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Selftest {
            inputs,
            throughput_len,
            json,
        } => run_selftest(inputs, throughput_len, json),
        Command::Bench {
            train: true,
            remedies: true,
            ..
        } => run_train_bench(),
        Command::Bench {
            train: true,
            width,
            depth,
            batch,
            activations,
            repeats,
            json,
            profile,
            ..
        } => run_train_paths_bench(profile, width, depth, batch, activations, repeats, json),
        Command::Bench {
            fused: true,
            repeats,
            activations,
            json,
            ..
        } => run_fused_bench(repeats, activations, json),
        Command::Bench {
            large,
            repeats,
            activations,
            shapes,
            json,
            ..
        } => run_bench(large, repeats, activations, shapes, json),
        Command::Train { run, activation } => run_train(run, activation),
        Command::Soak(args) => run_soak(args),
        Command::Compare {
            run,
            activations,
            seeds,
        } => match seeds {
            Some(seeds) => run_compare_seeds(run, activations, seeds),
            None => run_compare(run, activations),
        },
        Command::Eval {
            checkpoint,
            data,
            seed,
        } => run_eval(checkpoint, data, seed),
        Command::Predict {
            checkpoint,
            input,
            output,
        } => run_predict(checkpoint, input, output),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            match e.field().and_then(flag_of) {
                Some(flag) => eprintln!("error: {e} (set with {flag})"),
                None => eprintln!("error: {e}"),
            }
            ExitCode::from(1)
        }
    }
}

/// The command-line flag that sets a library setting named in an
/// [`Error::InvalidSetting`].
fn flag_of(field: &str) -> Option<&'static str> {
    let base = field.split('[').next().unwrap_or(field);
    Some(match base {
        "TrainConfig::epochs" => "--epochs",
        "TrainConfig::batch_size" => "--batch-size",
        "TrainConfig::learning_rate" => "--lr",
        "TrainConfig::clip_norm" => "--clip-norm",
        "TrainConfig::log_every" => "--log-every",
        "TrainConfig::max_logged_steps" => "--max-logged-steps",
        "MlpConfig::hidden" => "--depth and --width, or --hidden",
        "MlpConfig::output" => "--head (the output count follows the data)",
        "MlpConfig::input" => "--data (the input count follows the data)",
        "MlpConfig::dropout" => "--dropout",
        "MlpConfig::scale_residual_init" => "--scale-residual-init and --residual",
        "MlpConfig::batch_norm" | "MlpConfig::layer_norm" => "--batch-norm or --layer-norm",
        "MlpConfig::learn_prelu" => "--learn-prelu",
        "Optimizer::Sgd::momentum" | "Optimizer::RmsProp::momentum" => "--momentum",
        f if f.ends_with("::weight_decay") => "--weight-decay",
        _ => return None,
    })
}
