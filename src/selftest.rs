//! The self-test a user runs first on a new machine or driver: every
//! activation on the GPU against the CPU reference, with throughput.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde::Serialize;

use crate::activation::Activation;
use crate::error::Error;
use crate::gpu::Gpu;
use crate::reference;

/// Absolute part of the elementwise tolerance: `|gpu − ref| <= ABS + REL·|ref|`.
pub const ELEMENTWISE_ABS_TOL: f64 = 2e-6;
/// Relative part of the elementwise tolerance.
pub const ELEMENTWISE_REL_TOL: f64 = 2e-5;

/// At least `n` finite inputs spanning [−1e4, 1e4]: normals at scales from
/// 1e-3 to 1e3, uniform values over the whole range, and the special points
/// (0, ±1e-7, ±88, ±1e4) and the activation's kinks with their neighbours.
pub fn activation_inputs(act: Activation, n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut z: Vec<f32> = vec![
        0.0, -0.0, 1e-7, -1e-7, 1e-30, -1e-30, 88.0, -88.0, 1e4, -1e4, 20.0, -20.0, 87.5, 89.0,
        -89.0, 1.0, -1.0,
    ];
    let mut kinks = vec![0.0f32, 3.0, -3.0, 6.0, -1.0, 1.0];
    match act {
        Activation::Hardtanh { min_val, max_val } => kinks.extend([min_val, max_val]),
        Activation::Softplus { beta, threshold } => kinks.push(threshold / beta),
        _ => {}
    }
    for k in kinks {
        z.extend([k, next_up(k), next_down(k)]);
    }
    let scales = [1e-3f32, 1e-1, 1.0, 3.0, 10.0, 100.0, 1e3];
    let per_scale = n / (scales.len() + 1) + 1;
    for s in scales {
        let normal = Normal::new(0.0f32, s).expect("positive scale");
        for _ in 0..per_scale {
            z.push(normal.sample(&mut rng).clamp(-1e4, 1e4));
        }
    }
    while z.len() < n {
        z.push(rng.random_range(-1e4f32..=1e4));
    }
    z
}

fn next_up(x: f32) -> f32 {
    if x == 0.0 {
        f32::from_bits(1)
    } else if x > 0.0 {
        f32::from_bits(x.to_bits() + 1)
    } else {
        f32::from_bits(x.to_bits() - 1)
    }
}

fn next_down(x: f32) -> f32 {
    -next_up(-x)
}

/// `z` with every subnormal replaced by a zero of its sign: the inputs an
/// adapter that flushes subnormals actually computes on (see
/// [`Agreement::measure_flushed`]).
pub fn flush_subnormals(z: &[f32]) -> Vec<f32> {
    z.iter()
        .map(|&v| {
            if v.is_subnormal() {
                0.0f32.copysign(v)
            } else {
                v
            }
        })
        .collect()
}

/// The worst disagreement between GPU and reference values.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Agreement {
    /// Largest |gpu − ref|.
    pub max_abs_error: f64,
    /// Largest |gpu − ref| / |ref| over elements where |ref| > 1e-6.
    pub max_rel_error: f64,
    /// Largest |gpu − ref| / (ABS + REL·|ref|): at most 1 means within tolerance.
    pub worst_tolerance_ratio: f64,
    /// The input where the worst ratio occurred.
    pub worst_input: f32,
    /// Elements where exactly one side is NaN or infinite, or the infinities differ.
    pub non_finite_mismatches: usize,
}

impl Agreement {
    /// Compares `gpu` to `reference` elementwise; `inputs` names the points.
    pub fn measure(gpu: &[f32], reference: &[f32], inputs: &[f32]) -> Agreement {
        let mut a = Agreement::default();
        for ((&g, &r), &x) in gpu.iter().zip(reference).zip(inputs) {
            if !g.is_finite() || !r.is_finite() {
                let same = (g.is_nan() && r.is_nan()) || g == r;
                if !same {
                    a.non_finite_mismatches += 1;
                }
                continue;
            }
            let err = (g as f64 - r as f64).abs();
            let ratio = err / (ELEMENTWISE_ABS_TOL + ELEMENTWISE_REL_TOL * (r as f64).abs());
            a.max_abs_error = a.max_abs_error.max(err);
            if (r as f64).abs() > 1e-6 {
                a.max_rel_error = a.max_rel_error.max(err / (r as f64).abs());
            }
            if ratio > a.worst_tolerance_ratio {
                a.worst_tolerance_ratio = ratio;
                a.worst_input = x;
            }
        }
        a
    }

    /// [`Agreement::measure`], where each element may match either
    /// `reference` or `flushed` (the reference at the inputs with
    /// subnormals flushed to zero): WGSL lets an implementation flush
    /// subnormal values (SwiftShader, the browsers' software WebGPU, does;
    /// lavapipe does not), so a kink's subnormal neighbour may be taken as
    /// the kink itself.
    pub fn measure_flushed(
        gpu: &[f32],
        reference: &[f32],
        flushed: &[f32],
        inputs: &[f32],
    ) -> Agreement {
        let pick: Vec<f32> = gpu
            .iter()
            .zip(reference.iter().zip(flushed))
            .map(|(&g, (&r, &f))| {
                let off = |v: f32| {
                    if g.is_finite() && v.is_finite() {
                        (g as f64 - v as f64).abs()
                    } else if (g.is_nan() && v.is_nan()) || g == v {
                        0.0
                    } else {
                        f64::INFINITY
                    }
                };
                if off(f) < off(r) {
                    f
                } else {
                    r
                }
            })
            .collect();
        Agreement::measure(gpu, &pick, inputs)
    }

    /// Within tolerance and no non-finite mismatch.
    pub fn passes(&self) -> bool {
        self.worst_tolerance_ratio <= 1.0 && self.non_finite_mismatches == 0
    }
}

/// One activation's self-test result.
#[derive(Debug, Clone, Serialize)]
pub struct SelfTestRow {
    /// The activation (string form).
    pub activation: String,
    /// Forward agreement.
    pub forward: Agreement,
    /// Backward (dy ⊙ f') agreement.
    pub backward: Agreement,
    /// NaN in gives NaN out and ±infinity gives the reference's limit.
    pub special_values_ok: bool,
    /// Elementwise forward throughput, GB/s.
    pub throughput_gb_s: f64,
}

impl SelfTestRow {
    /// Whether every check passed.
    pub fn passes(&self) -> bool {
        self.forward.passes() && self.backward.passes() && self.special_values_ok
    }
}

/// Runs every activation on `n` inputs through the GPU and the reference.
pub fn run(gpu: &Gpu, n: usize, throughput_len: usize) -> Result<Vec<SelfTestRow>, Error> {
    let mut rows = pollster::block_on(run_async(gpu, n))?;
    if throughput_len > 0 {
        for (row, act) in rows.iter_mut().zip(Activation::ALL) {
            row.throughput_gb_s = gpu.elementwise_throughput(act, throughput_len, 5)?;
        }
    }
    Ok(rows)
}

/// [`run`] without blocking and without the throughput measurement (every
/// row's `throughput_gb_s` is 0): what the browser playground's self-test
/// runs, since nothing may block there.
pub async fn run_async(gpu: &Gpu, n: usize) -> Result<Vec<SelfTestRow>, Error> {
    let mut rows = Vec::new();
    for act in Activation::ALL {
        let z = activation_inputs(act, n, 0x5e1f_7e57);
        let mut rng = StdRng::seed_from_u64(7);
        let dy: Vec<f32> = z.iter().map(|_| rng.random_range(-2.0f32..2.0)).collect();
        let flushed = flush_subnormals(&z);
        let forward = Agreement::measure_flushed(
            &gpu.activation_forward_async(act, &z).await?,
            &reference::activation_forward(act, &z),
            &reference::activation_forward(act, &flushed),
            &z,
        );
        let backward = Agreement::measure_flushed(
            &gpu.activation_backward_async(act, &z, &dy).await?,
            &reference::activation_backward(act, &z, &dy)?,
            &reference::activation_backward(act, &flushed, &dy)?,
            &z,
        );
        let special = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        let ones = [1.0f32; 3];
        let gf = gpu.activation_forward_async(act, &special).await?;
        let rf = reference::activation_forward(act, &special);
        let gb = gpu.activation_backward_async(act, &special, &ones).await?;
        let rb = reference::activation_backward(act, &special, &ones)?;
        let same = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .all(|(x, y)| (x.is_nan() && y.is_nan()) || x == y)
        };
        rows.push(SelfTestRow {
            activation: act.to_string(),
            forward,
            backward,
            special_values_ok: same(&gf, &rf) && same(&gb, &rb),
            throughput_gb_s: 0.0,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An adapter that flushes subnormals (SwiftShader) computes relu′ at
    /// the smallest subnormal as relu′(0) = 0; the reference says 1. That
    /// passes with `measure_flushed` and fails with `measure`; a plainly
    /// wrong value fails both.
    #[test]
    fn flushed_subnormal_inputs_are_accepted_and_wrong_values_are_not() {
        let act = Activation::Relu;
        let z = [f32::from_bits(1), -f32::from_bits(1), 0.5, -0.5];
        let dy = [1.0f32; 4];
        let exact = reference::activation_backward(act, &z, &dy).unwrap();
        let flushed_inputs = flush_subnormals(&z);
        let flushed = reference::activation_backward(act, &flushed_inputs, &dy).unwrap();
        assert_ne!(exact[0], flushed[0], "the case must tell the two apart");
        let gpu = flushed.clone();
        assert!(!Agreement::measure(&gpu, &exact, &z).passes());
        assert!(Agreement::measure_flushed(&gpu, &exact, &flushed, &z).passes());
        let mut wrong = gpu;
        wrong[2] = 0.0; // relu′(0.5) is 1 either way
        assert!(!Agreement::measure_flushed(&wrong, &exact, &flushed, &z).passes());
    }
}
