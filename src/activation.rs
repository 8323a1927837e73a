//! The [`Activation`] enum: names, parameters and parsing, with PyTorch's
//! names and defaults. The maths lives in two places only: the CPU reference
//! (`reference::activation`) and the WGSL library (`shaders/activations.wgsl`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

pub mod exact;

/// SELU's scale, as in PyTorch (`torch.nn.SELU`).
pub const SELU_SCALE: f64 = 1.050_700_987_355_480_5;
/// SELU's alpha, as in PyTorch (`torch.nn.SELU`).
pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;

/// An elementwise activation function, with PyTorch's names, parameters,
/// defaults and derivative conventions at the kinks.
///
/// ```
/// use fusedmlp::Activation;
/// let a: Activation = "leaky_relu:0.1".parse().unwrap();
/// assert_eq!(a, Activation::LeakyRelu { negative_slope: 0.1 });
/// assert_eq!(a.to_string(), "leaky_relu:0.1");
/// assert_eq!("relu".parse::<Activation>().unwrap(), Activation::Relu);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[non_exhaustive]
pub enum Activation {
    /// `f(x) = x`.
    Identity,
    /// `max(0, x)`; `f'(0) = 0`.
    Relu,
    /// `x` for `x > 0`, else `negative_slope·x` (default 0.01); `f'(0) = negative_slope`.
    LeakyRelu {
        /// Slope for negative inputs.
        negative_slope: f32,
    },
    /// Parametric ReLU with slope `weight` (default 0.25). A fixed slope in
    /// the elementwise API; learned per layer or per unit in networks.
    Prelu {
        /// Slope for negative inputs.
        weight: f32,
    },
    /// `x` for `x > 0`, else `alpha·(exp(x) − 1)` (default alpha 1); `f'(0) = alpha`.
    Elu {
        /// Scale of the negative branch.
        alpha: f32,
    },
    /// `scale·elu(x, alpha)` with PyTorch's fixed constants.
    Selu,
    /// `max(0, x) + min(0, alpha·(exp(x/alpha) − 1))` (default alpha 1); `f'(0) = 1`.
    Celu {
        /// Scale of the negative branch (non-zero).
        alpha: f32,
    },
    /// Exact GELU, `x·Φ(x)` with the Gaussian CDF (erf).
    Gelu,
    /// GELU's tanh approximation (`approximate='tanh'`).
    GeluTanh,
    /// `1 / (1 + exp(−x))`.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// `log(1 + exp(beta·x)) / beta`, linear where `beta·x > threshold`
    /// (defaults beta 1, threshold 20).
    Softplus {
        /// Sharpness (positive).
        beta: f32,
        /// Above `beta·x > threshold` the function is `x`.
        threshold: f32,
    },
    /// `x·sigmoid(x)` (also called swish).
    Silu,
    /// `x·tanh(softplus(x))`.
    Mish,
    /// `clamp(x, min_val, max_val)` (defaults −1, 1); `f' = 0` at and beyond the bounds.
    Hardtanh {
        /// Lower bound.
        min_val: f32,
        /// Upper bound.
        max_val: f32,
    },
    /// `clamp(x, 0, 6)`; `f' = 0` at 0 and 6.
    Relu6,
    /// `relu6(x + 3) / 6`; `f' = 1/6` strictly inside (−3, 3), else 0.
    Hardsigmoid,
    /// `x·relu6(x + 3) / 6`; `f'(−3) = −0.5`, `f'(3) = 1.5` as in PyTorch.
    Hardswish,
    /// `x / (1 + |x|)`.
    Softsign,
    /// `log(sigmoid(x)) = −softplus(−x)`.
    LogSigmoid,
}

/// What the backward pass of a layer keeps from its forward pass to evaluate `f'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// `f'` is constant: nothing beyond the layer's input.
    Nothing,
    /// `f'` is a function of the output `y` (the ReLU family): the output is
    /// kept anyway as the next layer's input, so this costs no extra memory.
    Output,
    /// `f'` needs the pre-activation `z`, written by the forward kernel.
    PreActivation,
}

/// One row of the activation catalogue: its name and parameter syntax.
const CATALOGUE: &[&str] = &[
    "identity",
    "relu",
    "leaky_relu[:negative_slope]",
    "prelu[:weight]",
    "elu[:alpha]",
    "selu",
    "celu[:alpha]",
    "gelu",
    "gelu_tanh",
    "sigmoid",
    "tanh",
    "softplus[:beta[,threshold]]",
    "silu",
    "mish",
    "hardtanh[:min_val,max_val]",
    "relu6",
    "hardsigmoid",
    "hardswish",
    "softsign",
    "log_sigmoid",
];

impl Activation {
    /// Every activation with its default parameters, in catalogue order.
    pub const ALL: [Activation; 20] = [
        Activation::Identity,
        Activation::Relu,
        Activation::LeakyRelu {
            negative_slope: 0.01,
        },
        Activation::Prelu { weight: 0.25 },
        Activation::Elu { alpha: 1.0 },
        Activation::Selu,
        Activation::Celu { alpha: 1.0 },
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Softplus {
            beta: 1.0,
            threshold: 20.0,
        },
        Activation::Silu,
        Activation::Mish,
        Activation::Hardtanh {
            min_val: -1.0,
            max_val: 1.0,
        },
        Activation::Relu6,
        Activation::Hardsigmoid,
        Activation::Hardswish,
        Activation::Softsign,
        Activation::LogSigmoid,
    ];

    /// The name without parameters, as PyTorch's functional API spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Prelu { .. } => "prelu",
            Activation::Elu { .. } => "elu",
            Activation::Selu => "selu",
            Activation::Celu { .. } => "celu",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Softplus { .. } => "softplus",
            Activation::Silu => "silu",
            Activation::Mish => "mish",
            Activation::Hardtanh { .. } => "hardtanh",
            Activation::Relu6 => "relu6",
            Activation::Hardsigmoid => "hardsigmoid",
            Activation::Hardswish => "hardswish",
            Activation::Softsign => "softsign",
            Activation::LogSigmoid => "log_sigmoid",
        }
    }

    /// The parameters in the order the string form lists them.
    pub fn params(&self) -> Vec<f32> {
        match *self {
            Activation::LeakyRelu { negative_slope } => vec![negative_slope],
            Activation::Prelu { weight } => vec![weight],
            Activation::Elu { alpha } | Activation::Celu { alpha } => vec![alpha],
            Activation::Softplus { beta, threshold } => vec![beta, threshold],
            Activation::Hardtanh { min_val, max_val } => vec![min_val, max_val],
            _ => vec![],
        }
    }

    fn default_for(name: &str) -> Option<Activation> {
        Activation::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// A comma-separated list of every valid name with its parameter syntax.
    pub fn valid_names() -> String {
        CATALOGUE.join(", ")
    }

    /// The ReLU family: activations whose units can die (output exactly 0
    /// for every input of a batch).
    pub fn can_die(&self) -> bool {
        matches!(
            self,
            Activation::Relu | Activation::Relu6 | Activation::Hardsigmoid | Activation::Hardswish
        ) || matches!(*self, Activation::LeakyRelu { negative_slope } if negative_slope == 0.0)
            || matches!(*self, Activation::Prelu { weight } if weight == 0.0)
            || matches!(*self, Activation::Hardtanh { min_val, max_val } if min_val == 0.0 || max_val == 0.0)
    }

    /// Activations that saturate at both ends (derivative to 0 as |x| grows).
    pub fn saturates(&self) -> bool {
        matches!(
            self,
            Activation::Sigmoid
                | Activation::Tanh
                | Activation::Hardtanh { .. }
                | Activation::Hardsigmoid
                | Activation::Softsign
                | Activation::Relu6
        )
    }

    /// What the backward pass needs saved from the forward pass.
    pub fn saved(&self) -> Saved {
        match *self {
            Activation::Identity => Saved::Nothing,
            Activation::Relu | Activation::Relu6 => Saved::Output,
            // y > 0 iff z > 0 only for a positive slope.
            Activation::LeakyRelu { negative_slope: s } | Activation::Prelu { weight: s }
                if s > 0.0 =>
            {
                Saved::Output
            }
            // y strictly inside the bounds iff z is (a non-empty interval).
            Activation::Hardtanh { min_val, max_val } if min_val < max_val => Saved::Output,
            _ => Saved::PreActivation,
        }
    }

    /// Checks the parameters: finite, and in the domain PyTorch accepts.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |reason: String| Error::InvalidActivation {
            input: self.to_string(),
            reason,
            valid: Activation::valid_names(),
        };
        if let Some(p) = self.params().iter().find(|p| !p.is_finite()) {
            return Err(bad(format!("parameter {p} is not finite")));
        }
        match *self {
            Activation::Celu { alpha: 0.0 } => Err(bad("celu's alpha must be non-zero".into())),
            Activation::Softplus { beta, .. } if beta <= 0.0 => {
                Err(bad(format!("softplus's beta must be positive, got {beta}")))
            }
            Activation::Hardtanh { min_val, max_val } if min_val > max_val => Err(bad(format!(
                "hardtanh's min_val ({min_val}) must not exceed max_val ({max_val})"
            ))),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        let params = self.params();
        let default = Activation::default_for(self.name()).map(|a| a.params());
        if !params.is_empty() && Some(&params) != default.as_ref() {
            let text: Vec<String> = params.iter().map(|p| p.to_string()).collect();
            write!(f, ":{}", text.join(","))?;
        }
        Ok(())
    }
}

impl FromStr for Activation {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| Error::InvalidActivation {
            input: input.to_string(),
            reason,
            valid: Activation::valid_names(),
        };
        let trimmed = input.trim();
        let (name, args) = match trimmed.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a)),
            None => (trimmed, None),
        };
        let name = name.to_ascii_lowercase().replace('-', "_");
        // Accept the spellings PyTorch and Hugging Face users type.
        let name = match name.as_str() {
            "linear" | "none" => "identity",
            "leakyrelu" => "leaky_relu",
            "gelu_pytorch_tanh" | "gelu_new" => "gelu_tanh",
            "swish" => "silu",
            "logsigmoid" => "log_sigmoid",
            other => other,
        };
        let default = Activation::default_for(name)
            .ok_or_else(|| bad(format!("unknown activation name '{name}'")))?;
        let defaults = default.params();
        let values: Vec<f32> = match args {
            None => defaults.clone(),
            Some(text) => {
                let mut values = Vec::new();
                for part in text.split(',') {
                    let part = part.trim();
                    let v: f32 = part
                        .parse()
                        .map_err(|_| bad(format!("parameter '{part}' is not a number")))?;
                    values.push(v);
                }
                if values.len() > defaults.len() {
                    return Err(bad(format!(
                        "{name} takes {} parameter(s), got {}",
                        defaults.len(),
                        values.len()
                    )));
                }
                // Missing trailing parameters keep their defaults (softplus:2 = softplus:2,20).
                values.extend_from_slice(&defaults[values.len()..]);
                values
            }
        };
        let act = match default {
            Activation::LeakyRelu { .. } => Activation::LeakyRelu {
                negative_slope: values[0],
            },
            Activation::Prelu { .. } => Activation::Prelu { weight: values[0] },
            Activation::Elu { .. } => Activation::Elu { alpha: values[0] },
            Activation::Celu { .. } => Activation::Celu { alpha: values[0] },
            Activation::Softplus { .. } => Activation::Softplus {
                beta: values[0],
                threshold: values[1],
            },
            Activation::Hardtanh { .. } => {
                if args.is_some() && text_param_count(args) == 1 {
                    return Err(bad("hardtanh takes both min_val and max_val".into()));
                }
                Activation::Hardtanh {
                    min_val: values[0],
                    max_val: values[1],
                }
            }
            other => other,
        };
        act.validate().map_err(|e| match e {
            Error::InvalidActivation { reason, .. } => bad(reason),
            other => other,
        })?;
        Ok(act)
    }
}

fn text_param_count(args: Option<&str>) -> usize {
    args.map(|a| a.split(',').count()).unwrap_or(0)
}

impl TryFrom<String> for Activation {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Activation> for String {
    fn from(value: Activation) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_activation_round_trips_through_its_string() {
        for act in Activation::ALL {
            let text = act.to_string();
            assert_eq!(text.parse::<Activation>().unwrap(), act, "{text}");
        }
        for text in [
            "leaky_relu:0.1",
            "softplus:2,20",
            "softplus:0.5,3",
            "hardtanh:-2,2",
            "elu:0.3",
            "celu:2",
            "prelu:0.1",
        ] {
            let act: Activation = text.parse().unwrap();
            assert_eq!(act.to_string(), text);
            assert_eq!(act.to_string().parse::<Activation>().unwrap(), act);
        }
    }

    #[test]
    fn parameters_parse_with_defaults_and_errors_list_names() {
        assert_eq!(
            "softplus:2".parse::<Activation>().unwrap(),
            Activation::Softplus {
                beta: 2.0,
                threshold: 20.0
            }
        );
        let err = "reluu".parse::<Activation>().unwrap_err().to_string();
        assert!(err.contains("unknown activation name 'reluu'"), "{err}");
        assert!(
            err.contains("log_sigmoid") && err.contains("hardtanh"),
            "{err}"
        );
        for bad in [
            "leaky_relu:abc",
            "relu:1",
            "celu:0",
            "softplus:-1",
            "hardtanh:2,-2",
            "hardtanh:1",
            "elu:inf",
            "elu:NaN",
        ] {
            let err = bad.parse::<Activation>().unwrap_err().to_string();
            assert!(err.contains("Valid names"), "{bad}: {err}");
        }
    }

    #[test]
    fn serde_uses_the_string_form() {
        let json = serde_json::to_string(&Activation::LeakyRelu {
            negative_slope: 0.2,
        })
        .unwrap();
        assert_eq!(json, "\"leaky_relu:0.2\"");
        let back: Activation = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back,
            Activation::LeakyRelu {
                negative_slope: 0.2
            }
        );
        assert!(serde_json::from_str::<Activation>("\"nope\"").is_err());
    }
}
