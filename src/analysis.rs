//! Measurements for experiments on trained nets, the ones the examples
//! share and a user running their own experiment would want too: units that
//! never fire over a whole data set (dying ReLU), per-layer activation
//! spread computed on the host in f64, small statistics, and the number
//! formats of the examples' tables. Reports of runs have their own helpers
//! ([`RunReport::join`], [`RunReport::end_step`], ...), and
//! [`crate::Trainer::train_in_parts`] trains with a probe between parts.
//!
//! ```
//! use fusedmlp::analysis::{never_active_units, unit_fractions};
//! use fusedmlp::{data::Dataset, Activation, MlpConfig};
//!
//! let config = MlpConfig::deep(2, 3, 8, 2, Activation::Relu);
//! let params = config.initial_parameters();
//! let data = Dataset::new("xor", vec![0., 0., 0., 1., 1., 0., 1., 1.], vec![0, 1, 1, 0], 2, 2)?;
//! let masks = never_active_units(&config, &params, &data).expect("finite weights");
//! let dead = unit_fractions(&masks); // one fraction per hidden layer
//! assert_eq!(dead.len(), 3);
//! # Ok::<(), fusedmlp::Error>(())
//! ```
//!
//! [`RunReport::join`]: crate::RunReport::join
//! [`RunReport::end_step`]: crate::RunReport::end_step

use crate::data::Dataset;
use crate::gpu::LinearShape;
use crate::nn::MlpConfig;
use crate::reference::activation::forward_f64;
use crate::reference::linear::linear_preactivation_f64;

/// Per hidden layer, per unit: a flag (for [`never_active_units`], whether
/// the unit's pre-activation is ≤ 0 for every row).
pub type UnitMasks = Vec<Vec<bool>>;

/// The mean of `v`; NaN when empty.
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

/// The largest value of `v`, ignoring NaN; NaN when empty.
pub fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

/// The population standard deviation of the values.
pub fn std_dev(v: impl Iterator<Item = f64> + Clone) -> f64 {
    let n = v.clone().count().max(1) as f64;
    let mean = v.clone().sum::<f64>() / n;
    (v.map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt()
}

/// Median and half-range of the finite values of `v` (NaN, NaN when none):
/// the figure and spread the benchmarks quote over repeats.
pub fn median_spread(v: Vec<f64>) -> (f64, f64) {
    crate::train::seeds::median_range(&v).map_or((f64::NAN, f64::NAN), |(median, lo, hi)| {
        (median, 0.5 * (hi - lo))
    })
}

/// Which hidden units have a pre-activation ≤ 0 for every row of `data`
/// (a ReLU unit there gets no gradient from any row: it is dead on this
/// data), from the weights on the host with f64 accumulation, the rows
/// split over the CPU's cores; `None` if a value is not finite.
///
/// `params` are (weight, bias) per layer as [`crate::Mlp::parameters`] gives
/// them; the output layer is not examined.
pub fn never_active_units(
    config: &MlpConfig,
    params: &[(Vec<f32>, Vec<f32>)],
    data: &Dataset,
) -> Option<UnitMasks> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = data.len().div_ceil(threads).max(1);
    let chunks: Vec<&[f32]> = data.features.chunks(per * data.n_features).collect();
    let parts: Vec<Option<UnitMasks>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|x| s.spawn(move || never_active_rows(config, params, x)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut parts = parts.into_iter();
    let mut masks = parts.next()??;
    for part in parts {
        for (a, b) in masks.iter_mut().zip(part?) {
            for (x, y) in a.iter_mut().zip(b) {
                *x &= y;
            }
        }
    }
    Some(masks)
}

fn never_active_rows(
    config: &MlpConfig,
    params: &[(Vec<f32>, Vec<f32>)],
    x: &[f32],
) -> Option<UnitMasks> {
    let rows = x.len() / config.input;
    let shapes = config.layer_shapes();
    let mut h = x.to_vec();
    let mut masks = Vec::new();
    for (l, ((w, b), &(fan_in, fan_out))) in params
        .iter()
        .zip(&shapes)
        .take(config.hidden.len())
        .enumerate()
    {
        let z = linear_preactivation_f64(&h, w, b, LinearShape::new(rows, fan_in, fan_out));
        if z.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut dead = vec![true; fan_out];
        for row in z.chunks_exact(fan_out) {
            for (d, &v) in dead.iter_mut().zip(row) {
                *d &= v <= 0.0;
            }
        }
        masks.push(dead);
        let act = config.layer_activation(l);
        h = z.iter().map(|&v| forward_f64(act, v) as f32).collect();
    }
    Some(masks)
}

/// The fraction of flagged units in each layer.
pub fn unit_fractions(masks: &UnitMasks) -> Vec<f64> {
    masks
        .iter()
        .map(|m| m.iter().filter(|&&d| d).count() as f64 / m.len().max(1) as f64)
        .collect()
}

/// Of the units flagged in `before`, the fraction still flagged in `after`
/// (for never-active units: the share that stayed dead); `None` when
/// `before` flags none.
pub fn still_flagged(before: &UnitMasks, after: &UnitMasks) -> Option<f64> {
    let (mut flagged, mut still) = (0usize, 0usize);
    for (a, b) in before.iter().zip(after) {
        for (&x, &y) in a.iter().zip(b) {
            if x {
                flagged += 1;
                if y {
                    still += 1;
                }
            }
        }
    }
    (flagged > 0).then(|| still as f64 / flagged as f64)
}

/// The standard deviation of every hidden layer's output over all rows of
/// `data`, computed on the host in f64 (a check on the GPU's per-batch
/// diagnostic, and exact where the GPU's f32 sums overflow).
pub fn activation_std_per_layer(
    config: &MlpConfig,
    params: &[(Vec<f32>, Vec<f32>)],
    data: &Dataset,
) -> Vec<f64> {
    let rows = data.len();
    let mut h = data.features.clone();
    let mut out = Vec::new();
    for (l, ((w, b), &(fan_in, fan_out))) in params
        .iter()
        .zip(&config.layer_shapes())
        .take(config.hidden.len())
        .enumerate()
    {
        let z = linear_preactivation_f64(&h, w, b, LinearShape::new(rows, fan_in, fan_out));
        let act = config.layer_activation(l);
        let y: Vec<f64> = z.iter().map(|&v| forward_f64(act, v)).collect();
        out.push(std_dev(y.iter().copied()));
        h = y.iter().map(|&v| v as f32).collect();
    }
    out
}

/// What a measurement says of a claim that one value is lower than
/// another (a remedy leaves fewer dead units, a gradient vanishes less):
/// the examples' claim-versus-measurement lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Lower by at least the margin.
    Holds,
    /// Higher by at least the margin.
    Contradicted,
    /// Within the margin either way (or a value is not finite).
    NotShown,
}

impl Verdict {
    /// Judges the claim "`claimed_lower` is lower than `other`" with a
    /// `margin` that a difference must reach to count.
    pub fn lower_by(claimed_lower: f64, other: f64, margin: f64) -> Verdict {
        if claimed_lower <= other - margin {
            Verdict::Holds
        } else if claimed_lower >= other + margin {
            Verdict::Contradicted
        } else {
            Verdict::NotShown
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Holds => "HOLDS",
            Verdict::Contradicted => "CONTRADICTED",
            Verdict::NotShown => "NOT SHOWN",
        })
    }
}

/// A gradient norm or ratio for a table: scientific (`1.23e-4`), `0`,
/// `inf` or `NaN`; `n/a` when there is no value.
pub fn fmt_sci(v: Option<f32>) -> String {
    match v {
        None => "n/a".into(),
        Some(0.0) => "0".into(),
        Some(x) if x.is_finite() => format!("{x:.2e}"),
        Some(x) => format!("{x}"),
    }
}

/// A fraction for a table, three decimals; `n/a` when missing or not finite.
pub fn fmt_frac(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.3}"),
        _ => "n/a".to_string(),
    }
}

/// A value right-aligned in `width` with `prec` decimals; `n/a` when missing.
pub fn fmt_opt(v: Option<f32>, width: usize, prec: usize) -> String {
    match v {
        Some(x) => format!("{x:>width$.prec$}"),
        None => format!("{:>width$}", "n/a"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Activation;

    #[test]
    fn statistics() {
        assert_eq!(mean(&[1.0, 2.0, 6.0]), 3.0);
        assert!(mean(&[]).is_nan());
        assert_eq!(max(&[1.0, f64::NAN, 4.0]), 4.0);
        assert_eq!(std_dev([1.0, 3.0].into_iter()), 1.0);
        assert_eq!(median_spread(vec![5.0, 1.0, f64::NAN, 3.0]), (3.0, 2.0));
        assert_eq!(median_spread(vec![1.0, 2.0]), (1.5, 0.5));
        assert!(median_spread(vec![f64::NAN]).0.is_nan());
    }

    /// A 2-layer relu net whose second hidden unit is dead on every row.
    fn net() -> (MlpConfig, Vec<crate::nn::mlp::LayerValues>, Dataset) {
        let config = MlpConfig::deep(2, 1, 2, 2, Activation::Relu);
        // Unit 0 = x0 + x1 (active on positive rows), unit 1 = -x0 - x1 - 1.
        let params = vec![
            (vec![1.0, 1.0, -1.0, -1.0], vec![0.0, -1.0]),
            (vec![1.0, 0.0, 0.0, 1.0], vec![0.0, 0.0]),
        ];
        let x = vec![0.5, 0.5, 0.0, 0.0, 2.0, 1.0, 0.1, 0.0];
        let data = Dataset::new("t", x, vec![0, 1, 0, 1], 2, 2).unwrap();
        (config, params, data)
    }

    #[test]
    fn never_active_units_follow_the_pre_activations() {
        let (config, params, data) = net();
        let masks = never_active_units(&config, &params, &data).unwrap();
        assert_eq!(masks, vec![vec![false, true]]);
        assert_eq!(unit_fractions(&masks), vec![0.5]);
        let mut bad = params.clone();
        bad[0].0[0] = f32::INFINITY;
        assert_eq!(never_active_units(&config, &bad, &data), None);
    }

    #[test]
    fn still_flagged_counts_units_that_stay() {
        let before = vec![vec![true, true, false], vec![true]];
        let after = vec![vec![true, false, true], vec![false]];
        assert_eq!(still_flagged(&before, &after), Some(1.0 / 3.0));
        assert_eq!(still_flagged(&vec![vec![false]], &vec![vec![true]]), None);
    }

    #[test]
    fn activation_std_matches_a_hand_computation() {
        let (config, params, data) = net();
        // Unit 0 outputs 1, 0, 3, 0.1; unit 1 is always 0.
        let y = [1.0f64, 0.0, 3.0, 0.1, 0.0, 0.0, 0.0, 0.0];
        let want = std_dev(y.iter().copied());
        let got = activation_std_per_layer(&config, &params, &data);
        assert_eq!(got.len(), 1);
        assert!((got[0] - want).abs() < 1e-6, "{} vs {want}", got[0]);
    }

    #[test]
    fn verdicts() {
        assert_eq!(Verdict::lower_by(0.1, 0.5, 0.1), Verdict::Holds);
        assert_eq!(Verdict::lower_by(0.5, 0.1, 0.1), Verdict::Contradicted);
        assert_eq!(Verdict::lower_by(0.45, 0.5, 0.1), Verdict::NotShown);
        assert_eq!(Verdict::lower_by(f64::NAN, 0.5, 0.1), Verdict::NotShown);
        assert_eq!(Verdict::Holds.to_string(), "HOLDS");
        assert_eq!(Verdict::NotShown.to_string(), "NOT SHOWN");
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_sci(None), "n/a");
        assert_eq!(fmt_sci(Some(0.0)), "0");
        assert_eq!(fmt_sci(Some(1.5e-7)), "1.50e-7");
        assert_eq!(fmt_sci(Some(f32::INFINITY)), "inf");
        assert_eq!(fmt_frac(Some(0.25)), "0.250");
        assert_eq!(fmt_frac(Some(f64::NAN)), "n/a");
        assert_eq!(fmt_opt(Some(1.25), 6, 1), "   1.2");
        assert_eq!(fmt_opt(None, 4, 1), " n/a");
    }
}
