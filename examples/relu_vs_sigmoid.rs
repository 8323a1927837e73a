//! The main job: 20-layer MLPs on the embedded digits, ReLU with He
//! initialisation against sigmoid with Xavier, the same seed, data order and
//! training recipe (plain SGD, batch 32, a peak rate of 0.03 with a 2-epoch
//! warm-up and cosine decay); plus the ReLU net at a constant 0.05, to show
//! the instability the schedule removes. Prints a side-by-side table and
//! writes the JSON report and plots.
//!
//! `cargo run --release --features cli --example relu_vs_sigmoid -- --seeds 0..5` repeats it
//! over 5 seeds and prints each figure's median and range;
//! `--activations relu,sigmoid,tanh,leaky_relu,elu,selu,gelu` adds more runs.

use clap::Parser;
use fusedmlp::compare::{self, Contender};
use fusedmlp::nn::Schedule;
use fusedmlp::train::{Kernels, Seeds};
use fusedmlp::{data, Activation, Gpu, MlpConfig};

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
    /// Peak learning rate (plain SGD).
    #[arg(long, default_value_t = 0.03)]
    lr: f32,
    /// Learning-rate schedule after the warm-up: cosine (decay to 0 over
    /// the run), constant, or step:STEP_SIZE,GAMMA.
    #[arg(long, default_value = "cosine")]
    schedule: Schedule,
    /// Epochs of linear learning-rate warm-up.
    #[arg(long, default_value_t = 2)]
    warmup_epochs: u64,
    /// Leave out the ReLU run at a constant rate (shown by default beside
    /// the scheduled runs when the schedule is not constant).
    #[arg(long)]
    no_baseline: bool,
    /// The baseline's constant learning rate (plain SGD, no warm-up): 0.05,
    /// where 20 ReLU layers are on the edge of stability.
    #[arg(long, default_value_t = 0.05)]
    baseline_lr: f32,
    /// Seeds of the weights, the split and the shuffling: one (0), a range
    /// (0..5 for 0 to 4) or a list (1,4,9). With several, every run is
    /// repeated on each and the table gives medians and ranges.
    #[arg(long, default_value = "0")]
    seeds: Seeds,
    /// Which kernels run the hidden layers: auto, fused or layered.
    #[arg(long, default_value = "auto")]
    kernels: Kernels,
    /// Output folder for report.json and the PNG plots.
    #[arg(long, default_value = "out/relu_vs_sigmoid")]
    out: std::path::PathBuf,
}

fn main() -> Result<(), fusedmlp::Error> {
    let args = Args::parse();
    let gpu = Gpu::new()?;
    let digits = data::digits()?;
    let (train, val) = digits.split(0.2, args.seeds.as_slice()[0])?;
    let base = MlpConfig::deep(64, args.depth, args.width, 10, Activation::Relu);
    let mut recipe = compare::main_job_recipe(train.len(), args.epochs, 0);
    recipe.batch_size = args.batch_size;
    recipe.learning_rate = Some(args.lr);
    recipe.schedule = args.schedule;
    recipe.warmup_steps = args.warmup_epochs * (train.len() / args.batch_size.max(1)) as u64;
    recipe.kernels = args.kernels;
    println!("adapter: {}", gpu.describe());
    println!(
        "data: digits, {} train / {} validation rows, 64 features, 10 classes",
        train.len(),
        val.len()
    );
    println!(
        "model: {} hidden layers x {} units, softmax head; recipe: plain SGD, batch {}, {} epochs, \
         peak lr {}, {} epochs of linear warm-up, then {} schedule; kernels {}; seeds {}",
        args.depth,
        args.width,
        args.batch_size,
        args.epochs,
        args.lr,
        args.warmup_epochs,
        describe(args.schedule),
        args.kernels,
        args.seeds
    );
    let mut contenders: Vec<Contender> = args
        .activations
        .iter()
        .map(|&activation| Contender::new(activation))
        .collect();
    let scheduled = args.schedule != Schedule::Constant || args.warmup_epochs > 0;
    if scheduled && !args.no_baseline && args.activations.contains(&Activation::Relu) {
        let mut constant = recipe.clone();
        constant.schedule = Schedule::Constant;
        constant.warmup_steps = 0;
        constant.learning_rate = Some(args.baseline_lr);
        contenders.push(Contender {
            label: Some(format!("relu, constant lr {}", args.baseline_lr)),
            train: Some(constant),
            ..Contender::new(Activation::Relu)
        });
        println!(
            "baseline: relu at the constant rate {} without warm-up or decay",
            args.baseline_lr
        );
    }
    let count = contenders.len();
    let runs = compare::compare_seeds(
        &gpu,
        &base,
        &recipe,
        &args.seeds,
        |seed| digits.split(0.2, seed),
        &contenders,
        |seed, i, label, config| {
            println!(
                "seed {seed}, run {}/{count}: {label}, init {}",
                i + 1,
                config.init()
            )
        },
        |_, _| {},
    )?;
    println!();
    if runs.seeds.len() == 1 {
        let runs = &runs.runs[0];
        print!("{}", compare::table(runs));
        for run in runs {
            print_gradient_norms(run);
        }
        for run in runs {
            println!(
                "{}: {} steps in {:.1} s, {} readbacks, {}",
                run.label, run.total_steps, run.wall_seconds, run.readbacks, run.outcome
            );
        }
        for f in compare::write_outputs(runs, &args.out)? {
            println!("wrote {}", f.display());
        }
    } else {
        print!("{}", compare::seed_table(&runs));
        for (seed, runs) in runs.seeds.iter().zip(&runs.runs) {
            let line: Vec<String> = runs
                .iter()
                .map(|r| {
                    let m = compare::summarize(r);
                    format!(
                        "{} val {:.4} (min5 {:.4}) in {:.1} s",
                        r.label, m.val_accuracy, m.val_accuracy_min_last5, r.wall_seconds
                    )
                })
                .collect();
            println!("seed {seed}: {}", line.join("; "));
        }
        for f in compare::write_seed_outputs(&runs, &args.out)? {
            println!("wrote {}", f.display());
        }
    }
    Ok(())
}

fn describe(schedule: Schedule) -> String {
    match schedule {
        Schedule::Cosine { min_lr: 0.0 } => "cosine-decay (to 0)".into(),
        Schedule::Cosine { min_lr } => format!("cosine-decay (to {min_lr})"),
        Schedule::Constant => "a constant".into(),
        other => format!("a {other:?}"),
    }
}

fn print_gradient_norms(run: &fusedmlp::train::RunReport) {
    let (Some(first), Some(last)) = (run.steps.first(), run.steps.last()) else {
        return;
    };
    for s in [first, last] {
        let norms: Vec<String> = s
            .layers
            .iter()
            .map(|l| format!("{:.1e}", l.weight_grad_norm))
            .collect();
        println!(
            "{} gradient norm per layer (first hidden .. output), step {}: {}",
            run.label,
            s.step,
            norms.join(" ")
        );
    }
}
