//! What an activation function costs once it is fused into a GEMM.
//!
//! The claim to measure: an exponential (sigmoid, tanh, ELU, GELU's erf, …)
//! is expensive on its own, but fused into the epilogue of a linear layer it
//! costs little, because the layer's time goes to the matrix product.
//!
//! What is measured, for every activation in `Activation::ALL`:
//!
//! * the fused linear layer `Y = act(X·Wᵀ + b)` at batch × in × out =
//!   256 × 256 × 256 (`fusedmlp::bench::run`, each time a median of
//!   `--repeats` timed runs): forward GFLOP/s (training mode, keeping what
//!   the backward needs) and full backward GFLOP/s, relative to identity;
//! * the elementwise forward kernel alone on 2²² values
//!   (`Gpu::elementwise_throughput`, median of `--ew-repeats` runs): GB/s
//!   (bytes read plus written) relative to identity.
//!
//! On a CPU adapter (lavapipe) sharing two cores with other jobs the speed
//! of the whole device jumps by up to 2× from one second to the next, so a
//! ratio is only meaningful between measurements taken close together:
//! every activation is timed between two identity measurements, and its
//! ratio is to their geometric mean. The sweep runs `--rounds` times in
//! alternating order; the table shows the median ratio over rounds and its
//! spread (half the range). Identity against the neighbouring identity is
//! the noise floor, printed with the table. A ratio below 1 means slower
//! than identity.
//!
//! `cargo run --release --features cli --example activation_cost -- --rounds 3 --repeats 3`
//!
//! Writes `out/activation_cost/`: `report.json` (every measurement),
//! `fused_relative.png` (forward), `fused_backward_relative.png` and
//! `elementwise_relative.png`.

use std::path::PathBuf;

use clap::Parser;
use fusedmlp::analysis::median_spread;
use fusedmlp::bench;
use fusedmlp::plot::plot_bars;
use fusedmlp::{Activation, Error, Gpu, LinearShape};

#[derive(Parser)]
#[command(about = "Measure what each activation costs fused into a GEMM and on its own")]
struct Args {
    /// Batch rows of the linear layer.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Input and output features of the linear layer.
    #[arg(long, default_value_t = 256)]
    features: usize,
    /// Timed runs per median in the fused benchmark.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Values in the elementwise measurement.
    #[arg(long, default_value_t = 1 << 22)]
    ew_len: usize,
    /// Timed runs per median in the elementwise measurement.
    #[arg(long, default_value_t = 5)]
    ew_repeats: usize,
    /// Sweeps over all activations (ratios are medians over them).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Output folder.
    #[arg(long, default_value = "out/activation_cost")]
    out: PathBuf,
}

/// The three quantities, in table order.
const KINDS: [&str; 3] = ["fused forward", "fused backward", "elementwise"];

/// One measurement of one activation: [forward GFLOP/s, backward GFLOP/s,
/// elementwise GB/s], plus the unfused forward GFLOP/s.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Sample {
    activation: Activation,
    values: [f64; 3],
    unfused_forward_gflops: f64,
}

/// One sweep: identity, a, identity, b, identity, …, identity.
#[derive(Debug, Clone, serde::Serialize)]
struct Round {
    samples: Vec<Sample>,
    peak_gflops: f64,
}

/// One activation's result over the rounds.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    activation: String,
    /// Medians over rounds of [forward GFLOP/s, backward GFLOP/s, elementwise GB/s].
    values: [f64; 3],
    /// Median over rounds of the ratio to the neighbouring identities.
    ratios: [f64; 3],
    /// Half the range of that ratio over the rounds.
    spreads: [f64; 3],
    unfused_forward_gflops: f64,
}

fn io(path: &std::path::Path, e: std::io::Error) -> Error {
    Error::Io {
        context: format!("writing {}", path.display()),
        source: e,
    }
}

fn main() -> Result<(), Error> {
    let args = Args::parse();
    if args.rounds == 0 || args.repeats == 0 || args.ew_repeats == 0 {
        return Err(Error::Config(
            "--rounds, --repeats and --ew-repeats must be at least 1".into(),
        ));
    }
    let gpu = Gpu::new()?;
    let shape = LinearShape::new(args.batch, args.features, args.features);
    let all = Activation::ALL;
    println!("adapter: {}", gpu.describe());
    println!(
        "fused linear layer: batch {} x in {} x out {}; forward = act(X·Wᵀ + b) keeping what the \
         backward needs, backward = dZ, db, dX, dW; each a median of {} timed runs",
        args.batch, args.features, args.features, args.repeats
    );
    println!(
        "elementwise forward alone: {} values, median of {} timed runs (wall time around submit \
         and wait)",
        args.ew_len, args.ew_repeats
    );
    println!(
        "{} activations (Activation::ALL), each timed between two identity measurements; {} \
         rounds in alternating order after a discarded warm-up",
        all.len(),
        args.rounds
    );

    let started = std::time::Instant::now();
    // Warm-up: autotuning, pipeline compilation, clocks.
    bench::run(&gpu, &[shape], &[Activation::Identity], 1, |_| {})?;
    gpu.elementwise_throughput(Activation::Identity, args.ew_len, 1)?;

    let mut rounds: Vec<Round> = Vec::with_capacity(args.rounds);
    for round in 0..args.rounds {
        let mut others: Vec<Activation> = all
            .iter()
            .copied()
            .filter(|&a| a != Activation::Identity)
            .collect();
        if round % 2 == 1 {
            others.reverse();
        }
        let mut acts = vec![Activation::Identity];
        for a in others {
            acts.push(a);
            acts.push(Activation::Identity);
        }
        let report = bench::run(&gpu, &[shape], &acts, args.repeats, |_| {})?;
        let mut samples = Vec::with_capacity(acts.len());
        for (row, &act) in report.rows.iter().zip(&acts) {
            let ew = gpu.elementwise_throughput(act, args.ew_len, args.ew_repeats)?;
            samples.push(Sample {
                activation: act,
                values: [row.forward_gflops, row.backward_gflops, ew],
                unfused_forward_gflops: row.unfused_forward_gflops,
            });
        }
        println!(
            "  round {}/{}: {} measurements, peak {:.1} GFLOP/s, {:.0} s so far",
            round + 1,
            args.rounds,
            samples.len(),
            report.peak_gflops,
            started.elapsed().as_secs_f64()
        );
        rounds.push(Round {
            samples,
            peak_gflops: report.peak_gflops,
        });
    }

    // Ratios: each non-identity sample (odd positions) against the geometric
    // mean of its neighbours; the noise: each identity against the next.
    let mut per_act: Vec<[Vec<f64>; 3]> = vec![Default::default(); all.len()];
    let mut raw: Vec<[Vec<f64>; 3]> = vec![Default::default(); all.len()];
    let mut unfused: Vec<Vec<f64>> = vec![Vec::new(); all.len()];
    let mut noise: [Vec<f64>; 3] = Default::default();
    let index = |a: Activation| all.iter().position(|&b| b == a).unwrap_or(0);
    for r in &rounds {
        for (k, s) in r.samples.iter().enumerate() {
            let i = index(s.activation);
            for (series, v) in raw[i].iter_mut().zip(s.values) {
                series.push(v);
            }
            unfused[i].push(s.unfused_forward_gflops);
            if k % 2 == 1 {
                let (prev, next) = (&r.samples[k - 1], &r.samples[k + 1]);
                for (q, series) in per_act[i].iter_mut().enumerate() {
                    series.push(s.values[q] / (prev.values[q] * next.values[q]).sqrt());
                }
            } else if let Some(next) = r.samples.get(k + 2) {
                for (q, series) in noise.iter_mut().enumerate() {
                    series.push(next.values[q] / s.values[q]);
                }
            }
        }
    }
    let rows: Vec<Row> = all
        .iter()
        .enumerate()
        .map(|(i, act)| {
            let mut row = Row {
                activation: act.to_string(),
                values: [0.0; 3],
                ratios: [1.0; 3],
                spreads: [0.0; 3],
                unfused_forward_gflops: median_spread(unfused[i].clone()).0,
            };
            for q in 0..3 {
                row.values[q] = median_spread(raw[i][q].clone()).0;
                if *act != Activation::Identity {
                    (row.ratios[q], row.spreads[q]) = median_spread(per_act[i][q].clone());
                }
            }
            row
        })
        .collect();
    // The noise floor: the median distance of identity/identity from 1.
    let noise_floor: Vec<f64> = noise
        .iter()
        .map(|v| median_spread(v.iter().map(|x| (x - 1.0).abs()).collect()).0)
        .collect();
    let noise_max: Vec<f64> = noise
        .iter()
        .map(|v| v.iter().map(|x| (x - 1.0).abs()).fold(0.0, f64::max))
        .collect();
    let peaks: Vec<f64> = rounds.iter().map(|r| r.peak_gflops).collect();
    let (peak, _) = median_spread(peaks.clone());
    let peak_max = peaks.iter().copied().fold(0.0, f64::max);
    let peak_min = peaks.iter().copied().fold(f64::INFINITY, f64::min);

    println!();
    println!(
        "measured peak of this adapter (fma / mul+add loop): {peak:.1} GFLOP/s, median over \
         rounds (range {peak_min:.1} to {peak_max:.1})"
    );
    println!(
        "{:<14} {:>8} {:>7} {:>6} {:>8} {:>7} {:>6} {:>8} {:>7} {:>6} {:>8}",
        "activation",
        "fwd GF/s",
        "fwd/id",
        "±",
        "bwd GF/s",
        "bwd/id",
        "±",
        "ew GB/s",
        "ew/id",
        "±",
        "unfused"
    );
    for r in &rows {
        println!(
            "{:<14} {:>8.2} {:>7.3} {:>6.3} {:>8.2} {:>7.3} {:>6.3} {:>8.2} {:>7.3} {:>6.3} {:>8.2}",
            r.activation,
            r.values[0],
            r.ratios[0],
            r.spreads[0],
            r.values[1],
            r.ratios[1],
            r.spreads[1],
            r.values[2],
            r.ratios[2],
            r.spreads[2],
            r.unfused_forward_gflops
        );
    }
    println!(
        "GF/s, GB/s: medians over rounds (they move with the machine's load); fwd: fused forward \
         (2·b·i·o FLOPs); bwd: fused backward (4·b·i·o); ew: the elementwise kernel alone; x/id: \
         median over rounds of the ratio to the identity measured just before and after (below 1 \
         = slower); ±: half the range of that ratio over the rounds; unfused: GEMM+bias, then a \
         separate activation pass, GFLOP/s"
    );
    println!(
        "noise floor (identity against the next identity, {} pairs each, all medians): {:.1}% \
         (forward), {:.1}% (backward), {:.1}% (elementwise); worst pair {:.0}%, {:.0}%, {:.0}%",
        noise[0].len(),
        100.0 * noise_floor[0],
        100.0 * noise_floor[1],
        100.0 * noise_floor[2],
        100.0 * noise_max[0],
        100.0 * noise_max[1],
        100.0 * noise_max[2]
    );

    // What the numbers say, against the claim.
    let uses_exp = |a: &Activation| {
        matches!(
            a,
            Activation::Sigmoid
                | Activation::Tanh
                | Activation::Elu { .. }
                | Activation::Selu
                | Activation::Celu { .. }
                | Activation::Gelu
                | Activation::GeluTanh
                | Activation::Softplus { .. }
                | Activation::Silu
                | Activation::Mish
                | Activation::LogSigmoid
        )
    };
    let group_mean = |want_exp: bool, q: usize| {
        let v: Vec<f64> = all
            .iter()
            .zip(&rows)
            .filter(|(a, _)| **a != Activation::Identity && uses_exp(a) == want_exp)
            .map(|(_, r)| r.ratios[q])
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    println!();
    println!("measured:");
    for (q, kind) in KINDS.iter().enumerate() {
        let mut v: Vec<&Row> = rows.iter().skip(1).collect();
        v.sort_by(|a, b| a.ratios[q].total_cmp(&b.ratios[q]));
        if let (Some(lo), Some(hi)) = (v.first(), v.last()) {
            println!(
                "  {kind}: from {:.3} ({}) to {:.3} ({}) of identity; noise floor {:.1}%",
                lo.ratios[q],
                lo.activation,
                hi.ratios[q],
                hi.activation,
                100.0 * noise_floor[q]
            );
        }
    }
    let names: Vec<&str> = all
        .iter()
        .filter(|a| uses_exp(a))
        .map(|a| a.name())
        .collect();
    let cost = |ratio: f64| 100.0 * (1.0 - ratio);
    println!(
        "  the {} activations with an exp, erf or log ({}) cost on average {:.1}% of throughput \
         alone (elementwise), {:.1}% fused (forward) and {:.1}% fused (backward); the other {} \
         cost {:.1}%, {:.1}% and {:.1}%",
        names.len(),
        names.join(", "),
        cost(group_mean(true, 2)),
        cost(group_mean(true, 0)),
        cost(group_mean(true, 1)),
        all.len() - 1 - names.len(),
        cost(group_mean(false, 2)),
        cost(group_mean(false, 0)),
        cost(group_mean(false, 1))
    );
    let (alone, fused) = (cost(group_mean(true, 2)), cost(group_mean(true, 0)));
    let worst = all
        .iter()
        .zip(&rows)
        .filter(|(a, _)| uses_exp(a))
        .map(|(_, r)| r)
        .min_by(|a, b| a.ratios[0].total_cmp(&b.ratios[0]));
    if let Some(w) = worst {
        let verdict = if fused < alone && fused > 0.0 {
            format!(
                "fused, the exponential family's forward cost is {:.1}x smaller than alone, but \
                 not zero: up to {:.1}% ({}), against a noise floor of {:.1}%",
                alone / fused,
                cost(w.ratios[0]),
                w.activation,
                100.0 * noise_floor[0]
            )
        } else if fused <= 0.0 {
            "fused, the exponential family costs nothing measurable in the forward".to_string()
        } else {
            "fusing did NOT make the exponential family cheaper than alone here".to_string()
        };
        println!("  claim \"an exponential costs little once fused\": {verdict}");
    }
    println!(
        "  time: {:.0} s for the warm-up and {} rounds",
        started.elapsed().as_secs_f64(),
        args.rounds
    );

    std::fs::create_dir_all(&args.out).map_err(|e| io(&args.out, e))?;
    let json = args.out.join("report.json");
    let text = serde_json::to_string_pretty(&serde_json::json!({
        "adapter": gpu.describe(),
        "shape": shape,
        "repeats": args.repeats,
        "elementwise_len": args.ew_len,
        "elementwise_repeats": args.ew_repeats,
        "peak_gflops_per_round": peaks,
        "kinds": KINDS,
        "rows": rows,
        "noise_floor": noise_floor,
        "identity_pair_ratios": noise,
        "rounds": rounds,
    }))
    .map_err(|e| Error::Config(format!("serialising the report: {e}")))?;
    std::fs::write(&json, text).map_err(|e| io(&json, e))?;
    let mut files = vec![json];

    let shape_text = format!("{}×{}×{}", args.batch, args.features, args.features);
    let charts = [
        (
            "fused_relative.png",
            format!("Fused linear forward at {shape_text}"),
            "forward GFLOP/s ÷ identity's",
        ),
        (
            "fused_backward_relative.png",
            format!("Fused linear backward at {shape_text}"),
            "backward GFLOP/s ÷ identity's",
        ),
        (
            "elementwise_relative.png",
            format!(
                "Elementwise forward alone, {:.1}M values",
                args.ew_len as f64 / 1e6
            ),
            "GB/s ÷ identity's",
        ),
    ];
    for (q, (file, title, y_label)) in charts.into_iter().enumerate() {
        let path = args.out.join(file);
        let title = format!(
            "{title}, relative to identity (median of {} rounds; noise floor {:.0}%)",
            args.rounds,
            100.0 * noise_floor[q]
        );
        let bars: Vec<(String, f64)> = rows
            .iter()
            .map(|r| (r.activation.clone(), r.ratios[q]))
            .collect();
        plot_bars(&title, y_label, &bars, Some((1.0, "identity")), &path)?;
        files.push(path);
    }
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
