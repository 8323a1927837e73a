//! The `fusedmlp` command line: self-test, benchmarks and training runs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fusedmlp::{selftest, Error, Gpu};

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
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "adapter": gpu.describe(),
            "rows": rows,
        }))
        .map_err(|e| Error::Config(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| Error::Io {
            context: format!("writing {}", path.display()),
            source: e,
        })?;
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
