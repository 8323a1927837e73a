//! Output heads and their losses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The output head: how logits become predictions, and the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Head {
    /// Softmax + cross-entropy over the classes (multi-class).
    #[default]
    Softmax,
    /// Sigmoid + binary cross-entropy with logits: one output with labels
    /// 0/1, or one output per class against the one-hot label.
    Sigmoid,
    /// Identity + mean squared error against the label (one output) or its
    /// one-hot (several outputs).
    Mse,
}

impl Head {
    /// The kernel's `kind` code (shaders/loss.wgsl).
    pub(crate) fn kind(&self) -> u32 {
        match self {
            Head::Softmax => 0,
            Head::Sigmoid => 1,
            Head::Mse => 2,
        }
    }

    /// The scale of the logits' gradient for a batch of `rows`.
    pub(crate) fn grad_scale(&self, rows: usize, classes: usize) -> f32 {
        match self {
            Head::Softmax => 1.0 / rows.max(1) as f32,
            _ => 1.0 / (rows.max(1) * classes.max(1)) as f32,
        }
    }
}

impl Head {
    /// What the head makes of one row of logits: softmax probabilities,
    /// per-output sigmoid probabilities, or (mse) the outputs themselves,
    /// in f64.
    pub fn outputs_of(&self, row: &[f32]) -> Vec<f64> {
        match self {
            Head::Softmax => {
                let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
                let e: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
                let s: f64 = e.iter().sum();
                e.iter().map(|v| v / s).collect()
            }
            Head::Sigmoid => row
                .iter()
                .map(|&v| 1.0 / (1.0 + (-(v as f64)).exp()))
                .collect(),
            Head::Mse => row.iter().map(|&v| v as f64).collect(),
        }
    }

    /// The class one row of logits predicts, as training counts accuracy:
    /// the largest output (the first on ties); with one output, whether
    /// the logit is positive (sigmoid) or the output rounded to the
    /// nearest class (mse).
    pub fn class_of(&self, row: &[f32]) -> u32 {
        match (self, row) {
            (Head::Sigmoid, [v]) => u32::from(*v > 0.0),
            (Head::Mse, [v]) => v.round().max(0.0) as u32,
            _ => {
                let mut best = 0;
                for (j, &v) in row.iter().enumerate().skip(1) {
                    if v > row[best] {
                        best = j;
                    }
                }
                best as u32
            }
        }
    }
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Head::Softmax => "softmax",
            Head::Sigmoid => "sigmoid",
            Head::Mse => "mse",
        })
    }
}

impl FromStr for Head {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "softmax" | "cross_entropy" | "ce" => Ok(Head::Softmax),
            "sigmoid" | "bce" | "binary_cross_entropy" => Ok(Head::Sigmoid),
            "mse" | "identity" | "linear" => Ok(Head::Mse),
            _ => Err(Error::Config(format!(
                "unknown output head or loss '{s}'; valid: softmax (cross-entropy), sigmoid (binary cross-entropy), mse"
            ))),
        }
    }
}

/// The mean loss, the number of correct predictions and dL/dlogits for a
/// batch (PyTorch's mean reductions), in f64.
pub fn loss_and_grad(
    head: Head,
    logits: &[f32],
    labels: &[u32],
    classes: usize,
) -> (f64, usize, Vec<f64>) {
    let rows = labels.len();
    let mut loss = 0.0;
    let mut correct = 0;
    let mut grad = vec![0.0f64; rows * classes];
    for (r, &label) in labels.iter().enumerate() {
        let l = &logits[r * classes..(r + 1) * classes];
        let target = |j: usize| -> f64 {
            if classes == 1 {
                label as f64
            } else if j == label as usize {
                1.0
            } else {
                0.0
            }
        };
        let best = (0..classes).fold(0, |b, j| if l[j] > l[b] { j } else { b });
        let mut ok = best == label as usize;
        match head {
            Head::Softmax => {
                let m = l[best] as f64;
                let sum: f64 = l.iter().map(|&v| (v as f64 - m).exp()).sum();
                loss += m + sum.ln() - l[label as usize] as f64;
                for j in 0..classes {
                    let p = (l[j] as f64 - m).exp() / sum;
                    grad[r * classes + j] = (p - target(j)) / rows as f64;
                }
            }
            Head::Sigmoid => {
                for j in 0..classes {
                    let (x, t) = (l[j] as f64, target(j));
                    loss += (x.max(0.0) - x * t + (-x.abs()).exp().ln_1p()) / classes as f64;
                    let s = 1.0 / (1.0 + (-x).exp());
                    grad[r * classes + j] = (s - t) / (rows * classes) as f64;
                }
                if classes == 1 {
                    ok = (l[0] > 0.0) == (label == 1);
                }
            }
            Head::Mse => {
                for j in 0..classes {
                    let d = l[j] as f64 - target(j);
                    loss += d * d / classes as f64;
                    grad[r * classes + j] = 2.0 * d / (rows * classes) as f64;
                }
                if classes == 1 {
                    ok = (l[0] as f64 - label as f64).abs() < 0.5;
                }
            }
        }
        correct += ok as usize;
    }
    (loss / rows.max(1) as f64, correct, grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_the_largest_output_or_the_single_output_s_side() {
        assert_eq!(
            Head::Softmax.class_of(&[0.1, 2.0, 2.0, -1.0]),
            1,
            "first of a tie"
        );
        assert_eq!(
            Head::Softmax.class_of(&[f32::NAN, 1.0]),
            0,
            "NaN is never larger"
        );
        assert_eq!(Head::Sigmoid.class_of(&[0.3]), 1);
        assert_eq!(Head::Sigmoid.class_of(&[-0.3]), 0);
        assert_eq!(Head::Sigmoid.class_of(&[0.0, 0.5]), 1);
        assert_eq!(Head::Mse.class_of(&[2.4]), 2);
        assert_eq!(Head::Mse.class_of(&[-3.0]), 0);
        let p = Head::Softmax.outputs_of(&[1000.0, 0.0, -1000.0]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12 && p[0] > 0.999);
        assert_eq!(Head::Mse.outputs_of(&[1.5]), vec![1.5]);
    }

    /// The heads' gradients against finite differences of their losses.
    #[test]
    fn loss_gradients_match_finite_differences() {
        let logits = [0.3f32, -1.2, 2.0, 0.7, 0.1, -0.4];
        for (head, classes, labels) in [
            (Head::Softmax, 3, vec![2u32, 0]),
            (Head::Sigmoid, 3, vec![1, 2]),
            (Head::Sigmoid, 1, vec![1, 0, 1, 1, 0, 0]),
            (Head::Mse, 3, vec![0, 1]),
            (Head::Mse, 1, vec![1, 0, 2, 1, 0, 3]),
        ] {
            let (_, _, g) = loss_and_grad(head, &logits, &labels, classes);
            for i in 0..logits.len() {
                let h = 1e-3f32;
                let mut p = logits;
                let mut m = logits;
                p[i] += h;
                m[i] -= h;
                let fd = (loss_and_grad(head, &p, &labels, classes).0
                    - loss_and_grad(head, &m, &labels, classes).0)
                    / (p[i] as f64 - m[i] as f64);
                assert!(
                    (fd - g[i]).abs() < 1e-4,
                    "{head} classes {classes}: d/dlogit[{i}] {} vs {fd}",
                    g[i]
                );
            }
        }
    }
}
