//! The main job: 20-layer MLPs on the embedded digits, ReLU with He
//! initialisation against sigmoid with Xavier, the same seed, data and plain
//! SGD; prints a side-by-side table and writes the JSON report and plots.
//!
//! `cargo run --release --example relu_vs_sigmoid -- --activations relu,sigmoid,tanh,leaky_relu,elu,selu,gelu`

use clap::Parser;
use fusedmlp::train::compare::{self, Contender};
use fusedmlp::{data, Activation, Gpu, MlpConfig, Optimizer, TrainConfig};

#[derive(Parser)]
#[command(
    about = "Train deep ReLU and sigmoid MLPs side by side and measure the gradient layer by layer"
)]
struct Args {
    /// Hidden activations to compare (each with its default initialiser).
    #[arg(long, value_delimiter = ',', default_value = "relu,sigmoid")]
    activations: Vec<Activation>,
    /// Hidden layers.
    #[arg(long, default_value_t = 20)]
    depth: usize,
    /// Units per hidden layer.
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// Epochs.
    #[arg(long, default_value_t = 40)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Learning rate (plain SGD).
    #[arg(long, default_value_t = 0.05)]
    lr: f32,
    /// Seed of the weights, the split and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder for report.json and the PNG plots.
    #[arg(long, default_value = "out/relu_vs_sigmoid")]
    out: std::path::PathBuf,
}

fn main() -> Result<(), fusedmlp::Error> {
    let args = Args::parse();
    let gpu = Gpu::new()?;
    let digits = data::digits()?;
    let (train, val) = digits.split(0.2, args.seed)?;
    let mut base = MlpConfig::deep(64, args.depth, args.width, 10, Activation::Relu);
    base.seed = args.seed;
    let train_config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        optimizer: Optimizer::sgd(),
        log_every: 25,
        seed: args.seed,
        ..Default::default()
    };
    println!("adapter: {}", gpu.describe());
    println!(
        "data: digits, {} train / {} validation rows, 64 features, 10 classes",
        train.len(),
        val.len()
    );
    println!(
        "model: {} hidden layers x {} units, softmax head; optimizer: plain SGD, lr {}, batch {}, {} epochs, seed {}",
        args.depth, args.width, args.lr, args.batch_size, args.epochs, args.seed
    );
    let contenders: Vec<Contender> = args
        .activations
        .iter()
        .map(|&activation| Contender {
            activation,
            init: None,
        })
        .collect();
    let runs = compare::compare(
        &gpu,
        &base,
        &train_config,
        &train,
        &val,
        &contenders,
        |i, label, config| {
            println!(
                "run {}/{}: {label}, init {}",
                i + 1,
                contenders.len(),
                config.init()
            )
        },
        |_, _| {},
    )?;
    println!();
    print!("{}", compare::table(&runs));
    for run in &runs {
        if let (Some(first), Some(last)) = (run.steps.first(), run.steps.last()) {
            let norms = |s: &fusedmlp::train::StepLog| {
                s.layers
                    .iter()
                    .map(|l| format!("{:.1e}", l.weight_grad_norm))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            println!(
                "{} gradient norm per layer (first hidden .. output), step {}: {}",
                run.label,
                first.step,
                norms(first)
            );
            println!(
                "{} gradient norm per layer (first hidden .. output), step {}: {}",
                run.label,
                last.step,
                norms(last)
            );
        }
        println!(
            "{}: {} steps in {:.1} s, {} readbacks, {}",
            run.label, run.total_steps, run.wall_seconds, run.readbacks, run.outcome
        );
    }
    let files = compare::write_outputs(&runs, &args.out)?;
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
