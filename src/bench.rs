//! The kernel benchmark behind `fusedmlp bench`: fused linear forward and
//! backward against the unfused path, as GFLOP/s and as a fraction of the
//! adapter's peak measured in the same run.

use serde::Serialize;

use crate::activation::{Activation, Saved};
use crate::error::Error;
use crate::gpu::autotune::TuningRecord;
use crate::gpu::gemm::Epilogue;
use crate::gpu::linear::GemmDims;
use crate::gpu::timing::TimeSource;
use crate::gpu::Gpu;
use crate::LinearShape;

/// One row of the kernel benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// (batch, in, out).
    pub shape: LinearShape,
    /// The activation.
    pub activation: String,
    /// The GEMM variant the forward pass used.
    pub forward_variant: String,
    /// Fused forward (training mode: keeps what the backward needs), GFLOP/s at 2·b·i·o.
    pub forward_gflops: f64,
    /// Full backward (dZ and db, dX, dW), GFLOP/s at 4·b·i·o.
    pub backward_gflops: f64,
    /// Unfused forward: GEMM with bias, then a separate activation pass.
    pub unfused_forward_gflops: f64,
    /// Forward as a fraction of the measured peak.
    pub forward_fraction_of_peak: f64,
    /// Backward as a fraction of the measured peak.
    pub backward_fraction_of_peak: f64,
    /// Median forward time, milliseconds.
    pub forward_ms: f64,
    /// Median backward time, milliseconds.
    pub backward_ms: f64,
}

/// The whole benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The adapter, in words.
    pub adapter: String,
    /// How kernel times were measured.
    pub time_source: TimeSource,
    /// Peak GFLOP/s (the faster of the two forms).
    pub peak_gflops: f64,
    /// Peak with `fma()`.
    pub peak_fma_gflops: f64,
    /// Peak with `a * b + c`.
    pub peak_mul_add_gflops: f64,
    /// Repeats per median.
    pub repeats: usize,
    /// One row per (shape, activation).
    pub rows: Vec<BenchRow>,
    /// The autotuner's decisions made during the run.
    pub tuning: Vec<TuningRecord>,
}

/// The shapes `fusedmlp bench` measures: (batch, in, out).
pub fn default_shapes(large: bool) -> Vec<LinearShape> {
    let mut s = vec![
        LinearShape::new(256, 256, 256),
        LinearShape::new(1024, 1024, 1024),
        LinearShape::new(4096, 512, 512),
    ];
    if large {
        s.push(LinearShape::new(2048, 2048, 2048));
        s.push(LinearShape::new(4096, 4096, 4096));
    }
    s
}

/// The activations `fusedmlp bench` measures.
pub const BENCH_ACTIVATIONS: [Activation; 5] = [
    Activation::Identity,
    Activation::Relu,
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::Gelu,
];

fn fill(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16) as f32 / 65536.0 - 0.5
        })
        .collect()
}

/// Runs the benchmark over `shapes` × `activations`, calling `progress`
/// after each row.
pub fn run(
    gpu: &Gpu,
    shapes: &[LinearShape],
    activations: &[Activation],
    repeats: usize,
    mut progress: impl FnMut(&BenchRow),
) -> Result<BenchReport, Error> {
    let (peak, peak_fma, peak_mul_add) = gpu.measure_peak_gflops()?;
    let mut rows = Vec::new();
    let mut source = TimeSource::Wall;
    for &shape in shapes {
        let LinearShape {
            batch,
            in_features: i,
            out_features: o,
        } = shape;
        let x = gpu.upload(&fill(batch * i, 1), batch, i)?;
        let w = gpu.upload(&fill(o * i, 2), o, i)?;
        let b = gpu.upload(&fill(o, 3), 1, o)?;
        let dy = gpu.upload(&fill(batch * o, 4), batch, o)?;
        let y = gpu.zeros(batch, o)?;
        let z = gpu.zeros(batch, o)?;
        let dx = gpu.zeros(batch, i)?;
        let dw = gpu.zeros(o, i)?;
        let db = gpu.zeros(1, o)?;
        let scratch = gpu.linear_scratch(shape)?;
        let flops = shape.forward_flops();
        // Repeat small problems inside one submission so launch overhead
        // does not dominate.
        let reps = ((2e8 / flops).ceil() as usize).clamp(1, 16);
        for &act in activations {
            let keep_z = act.saved() == Saved::PreActivation;
            let fwd = gpu.time_recorded(reps, repeats, |e| {
                gpu.record_linear_forward(e, act, &x, &w, &b, &y, keep_z.then_some(&z))
            })?;
            source = fwd.source;
            let saved = if keep_z { &z } else { &y };
            let bwd = gpu.time_recorded(reps, repeats, |e| {
                gpu.record_linear_backward(
                    e,
                    act,
                    &x,
                    &w,
                    saved,
                    &dy,
                    &scratch,
                    Some(&dx),
                    &dw,
                    &db,
                )
            })?;
            let unfused = gpu.time_recorded(reps, repeats, |e| {
                gpu.record_gemm(
                    e,
                    Epilogue::BiasActivation {
                        act: Activation::Identity,
                        save_z: false,
                    },
                    GemmDims::dense(batch, o, i),
                    x.buffer(),
                    w.buffer(),
                    Some(b.buffer()),
                    z.buffer(),
                    None,
                )?;
                gpu.record_activation_forward(e, act, &z, &y)
            })?;
            let variant = gpu.gemm_variant(GemmDims::dense(batch, o, i))?;
            let row = BenchRow {
                shape,
                activation: act.to_string(),
                forward_variant: variant.name(),
                forward_gflops: flops / fwd.seconds / 1e9,
                backward_gflops: 2.0 * flops / bwd.seconds / 1e9,
                unfused_forward_gflops: flops / unfused.seconds / 1e9,
                forward_fraction_of_peak: flops / fwd.seconds / 1e9 / peak,
                backward_fraction_of_peak: 2.0 * flops / bwd.seconds / 1e9 / peak,
                forward_ms: fwd.seconds * 1e3,
                backward_ms: bwd.seconds * 1e3,
            };
            progress(&row);
            rows.push(row);
        }
    }
    Ok(BenchReport {
        adapter: gpu.describe(),
        time_source: source,
        peak_gflops: peak,
        peak_fma_gflops: peak_fma,
        peak_mul_add_gflops: peak_mul_add,
        repeats,
        rows,
        tuning: gpu.tuning_records(),
    })
}
