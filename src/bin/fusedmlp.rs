//! The `fusedmlp` command line: self-test, benchmarks and training runs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fusedmlp::{bench, selftest, Activation, Error, Gpu};

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
    /// Benchmark the fused linear kernels: forward and backward GFLOP/s, the
    /// unfused path for contrast, each as a fraction of the adapter's peak
    /// measured in the same run.
    Bench {
        /// Also run 2048³ and 4096³ (for real GPUs).
        #[arg(long)]
        large: bool,
        /// Timed repeats per median.
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
    },
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
    let report = bench::run(&gpu, &shapes, &activations, repeats.max(1), |r| {
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
    })?;
    println!(
        "peak: {:.2} GFLOP/s (fma() {:.2}, a*b+c {:.2}); times from {:?}, median of {}",
        report.peak_gflops,
        report.peak_fma_gflops,
        report.peak_mul_add_gflops,
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
            large,
            repeats,
            activations,
            shapes,
            json,
        } => run_bench(large, repeats, activations, shapes, json),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
