//! Output heads and their losses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The output head: how logits become predictions, and the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
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
