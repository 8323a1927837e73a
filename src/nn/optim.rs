//! Optimizers (their hyper-parameters; the updates run on the GPU in
//! shaders/optimizer.wgsl) and learning-rate schedules.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// An optimizer and its hyper-parameters, with PyTorch's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Optimizer {
    /// `torch.optim.SGD`.
    Sgd {
        /// Momentum (0 = plain SGD).
        momentum: f32,
        /// Nesterov momentum.
        nesterov: bool,
        /// L2 weight decay added to the gradient.
        weight_decay: f32,
    },
    /// `torch.optim.Adam` (L2 weight decay added to the gradient).
    Adam {
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// Denominator epsilon.
        eps: f32,
        /// L2 weight decay.
        weight_decay: f32,
    },
    /// `torch.optim.AdamW` (decoupled weight decay, default 0.01).
    AdamW {
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// Denominator epsilon.
        eps: f32,
        /// Decoupled weight decay.
        weight_decay: f32,
    },
    /// `torch.optim.RMSprop` (not centred).
    RmsProp {
        /// Smoothing constant.
        alpha: f32,
        /// Denominator epsilon.
        eps: f32,
        /// Momentum.
        momentum: f32,
        /// L2 weight decay.
        weight_decay: f32,
    },
}

impl Default for Optimizer {
    fn default() -> Self {
        Optimizer::sgd()
    }
}

impl Optimizer {
    /// Plain SGD.
    pub fn sgd() -> Self {
        Optimizer::Sgd {
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
    /// Adam with PyTorch's defaults.
    pub fn adam() -> Self {
        Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
    /// AdamW with PyTorch's defaults.
    pub fn adamw() -> Self {
        Optimizer::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
    /// RMSprop with PyTorch's defaults.
    pub fn rmsprop() -> Self {
        Optimizer::RmsProp {
            alpha: 0.99,
            eps: 1e-8,
            momentum: 0.0,
            weight_decay: 0.0,
        }
    }

    /// Checks every hyper-parameter.
    pub fn validate(&self) -> Result<(), Error> {
        let variant = match self {
            Optimizer::Sgd { .. } => "Sgd",
            Optimizer::Adam { .. } => "Adam",
            Optimizer::AdamW { .. } => "AdamW",
            Optimizer::RmsProp { .. } => "RmsProp",
        };
        let check = |name: &str, v: f32, lo: f32, hi: f32| {
            if v.is_finite() && v >= lo && v <= hi {
                Ok(())
            } else {
                let range = if hi == f32::MAX {
                    format!("finite and at least {lo}")
                } else {
                    format!("in [{lo}, {hi}]")
                };
                Err(Error::setting(
                    format!("Optimizer::{variant}::{name}"),
                    v,
                    range,
                ))
            }
        };
        match *self {
            Optimizer::Sgd {
                momentum,
                weight_decay,
                nesterov,
            } => {
                check("momentum", momentum, 0.0, 1.0)?;
                check("weight_decay", weight_decay, 0.0, f32::MAX)?;
                if nesterov && momentum == 0.0 {
                    return Err(Error::setting(
                        "Optimizer::Sgd::momentum",
                        momentum,
                        "above 0 for Nesterov momentum",
                    ));
                }
                Ok(())
            }
            Optimizer::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            }
            | Optimizer::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                check("beta1", beta1, 0.0, 0.999_999)?;
                check("beta2", beta2, 0.0, 0.999_999_9)?;
                check("eps", eps, f32::MIN_POSITIVE, 1.0)?;
                check("weight_decay", weight_decay, 0.0, f32::MAX)
            }
            Optimizer::RmsProp {
                alpha,
                eps,
                momentum,
                weight_decay,
            } => {
                check("alpha", alpha, 0.0, 0.999_999_9)?;
                check("eps", eps, f32::MIN_POSITIVE, 1.0)?;
                check("momentum", momentum, 0.0, 1.0)?;
                check("weight_decay", weight_decay, 0.0, f32::MAX)
            }
        }
    }

    /// The learning rate PyTorch's optimizer takes by default: 1e-3 for
    /// `SGD`, `Adam` and `AdamW`, 1e-2 for `RMSprop`. A
    /// [`crate::TrainConfig`] without a learning rate uses it.
    pub fn default_learning_rate(&self) -> f32 {
        match self {
            Optimizer::Sgd { .. } | Optimizer::Adam { .. } | Optimizer::AdamW { .. } => 1e-3,
            Optimizer::RmsProp { .. } => 1e-2,
        }
    }

    /// The name alone.
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd { .. } => "sgd",
            Optimizer::Adam { .. } => "adam",
            Optimizer::AdamW { .. } => "adamw",
            Optimizer::RmsProp { .. } => "rmsprop",
        }
    }
}

impl fmt::Display for Optimizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Optimizer::Sgd {
                momentum,
                nesterov,
                weight_decay,
            } => write!(
                f,
                "sgd(momentum={momentum}{}, weight_decay={weight_decay})",
                if nesterov { ", nesterov" } else { "" }
            ),
            Optimizer::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            }
            | Optimizer::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => write!(
                f,
                "{}(betas=({beta1}, {beta2}), eps={eps}, weight_decay={weight_decay})",
                self.name()
            ),
            Optimizer::RmsProp {
                alpha,
                eps,
                momentum,
                weight_decay,
            } => write!(
                f,
                "rmsprop(alpha={alpha}, eps={eps}, momentum={momentum}, weight_decay={weight_decay})"
            ),
        }
    }
}

impl FromStr for Optimizer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sgd" => Ok(Optimizer::sgd()),
            "adam" => Ok(Optimizer::adam()),
            "adamw" => Ok(Optimizer::adamw()),
            "rmsprop" => Ok(Optimizer::rmsprop()),
            _ => Err(Error::Config(format!(
                "unknown optimizer '{s}'; valid: sgd, adam, adamw, rmsprop"
            ))),
        }
    }
}

/// A learning-rate schedule over optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "name", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Schedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// Multiply by `gamma` every `step_size` steps (`StepLR`).
    Step {
        /// Steps between decays.
        step_size: u64,
        /// Decay factor.
        gamma: f32,
    },
    /// Cosine annealing from the base rate to `min_lr` over the run.
    Cosine {
        /// The final rate.
        min_lr: f32,
    },
}

impl Schedule {
    /// The rate at `step` (0-based) of `total` steps, with a linear warmup
    /// over the first `warmup` steps.
    pub fn rate(&self, base: f32, step: u64, total: u64, warmup: u64) -> f32 {
        let scheduled = match *self {
            Schedule::Constant => base as f64,
            Schedule::Step { step_size, gamma } => {
                base as f64 * (gamma as f64).powi((step / step_size.max(1)) as i32)
            }
            Schedule::Cosine { min_lr } => {
                let t = (step as f64 / total.max(1) as f64).min(1.0);
                min_lr as f64
                    + 0.5 * (base as f64 - min_lr as f64) * (1.0 + (std::f64::consts::PI * t).cos())
            }
        };
        let warm = if warmup > 0 && step < warmup {
            (step + 1) as f64 / warmup as f64
        } else {
            1.0
        };
        (scheduled * warm) as f32
    }
}

impl FromStr for Schedule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let t = s.trim().to_ascii_lowercase();
        let bad = || {
            Error::Config(format!(
                "unknown schedule '{s}'; valid: constant, step:STEP_SIZE,GAMMA, cosine[:MIN_LR]"
            ))
        };
        let (name, args) = t.split_once(':').unwrap_or((t.as_str(), ""));
        match name {
            "constant" => Ok(Schedule::Constant),
            "cosine" => Ok(Schedule::Cosine {
                min_lr: if args.is_empty() {
                    0.0
                } else {
                    args.parse().map_err(|_| bad())?
                },
            }),
            "step" => {
                let (a, b) = args.split_once(',').ok_or_else(bad)?;
                let step_size: u64 = a.trim().parse().map_err(|_| bad())?;
                let gamma: f32 = b.trim().parse().map_err(|_| bad())?;
                if step_size == 0 || !gamma.is_finite() || gamma <= 0.0 {
                    return Err(bad());
                }
                Ok(Schedule::Step { step_size, gamma })
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert_eq!(Schedule::Constant.rate(0.1, 50, 100, 0), 0.1);
        let s = Schedule::Step {
            step_size: 10,
            gamma: 0.5,
        };
        assert!((s.rate(0.1, 25, 100, 0) - 0.025).abs() < 1e-7);
        let c = Schedule::Cosine { min_lr: 0.0 };
        assert!((c.rate(0.1, 0, 100, 0) - 0.1).abs() < 1e-7);
        assert!((c.rate(0.1, 50, 100, 0) - 0.05).abs() < 1e-6);
        assert!(c.rate(0.1, 100, 100, 0).abs() < 1e-7);
        assert!((Schedule::Constant.rate(0.1, 0, 100, 10) - 0.01).abs() < 1e-7);
        assert_eq!("step:10,0.5".parse::<Schedule>().unwrap(), s);
        assert!("step:0,0.5".parse::<Schedule>().is_err());
    }

    #[test]
    fn optimizer_validation() {
        assert!(Optimizer::adam().validate().is_ok());
        let bad = Optimizer::Sgd {
            momentum: 0.0,
            nesterov: true,
            weight_decay: 0.0,
        };
        assert!(bad.validate().is_err());
        assert!("lbfgs"
            .parse::<Optimizer>()
            .unwrap_err()
            .to_string()
            .contains("adamw"));
    }
}
