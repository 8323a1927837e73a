//! Weight initialisers, seeded and reproducible, with PyTorch's gains
//! (`torch.nn.init.calculate_gain`).

use std::fmt;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::error::Error;

/// How a layer's weights are drawn. Biases start at 0, except under
/// [`Init::TorchDefault`] (PyTorch's `nn.Linear` default draws them too).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[non_exhaustive]
pub enum Init {
    /// Kaiming normal, fan_in: std = gain / sqrt(fan_in).
    HeNormal,
    /// Kaiming uniform, fan_in: bound = gain·sqrt(3 / fan_in).
    HeUniform,
    /// Glorot normal: std = gain·sqrt(2 / (fan_in + fan_out)).
    XavierNormal,
    /// Glorot uniform: bound = gain·sqrt(6 / (fan_in + fan_out)).
    XavierUniform,
    /// LeCun normal: std = 1 / sqrt(fan_in) (for SELU).
    LecunNormal,
    /// A (semi-)orthogonal matrix times the gain.
    Orthogonal,
    /// PyTorch's `nn.Linear` default: U(−1/sqrt(fan_in), 1/sqrt(fan_in)) for
    /// weights and biases.
    TorchDefault,
    /// N(0, std²), whatever the layer size (the naive choice; `normal:0.01`).
    Normal {
        /// Standard deviation.
        std: f32,
    },
}

impl Init {
    /// Every named scheme (with `normal` at std 1).
    pub const ALL: [Init; 8] = [
        Init::HeNormal,
        Init::HeUniform,
        Init::XavierNormal,
        Init::XavierUniform,
        Init::LecunNormal,
        Init::Orthogonal,
        Init::TorchDefault,
        Init::Normal { std: 1.0 },
    ];

    /// The scheme practitioners use with `act`: He for the ReLU family,
    /// Xavier for sigmoid, tanh and the other saturating ones, LeCun for SELU.
    pub fn default_for(act: Activation) -> Init {
        match act {
            Activation::Selu => Init::LecunNormal,
            Activation::Sigmoid
            | Activation::Tanh
            | Activation::Softsign
            | Activation::Hardtanh { .. }
            | Activation::Hardsigmoid
            | Activation::LogSigmoid
            | Activation::Identity => Init::XavierNormal,
            _ => Init::HeNormal,
        }
    }

    /// Fills a `[fan_out, fan_in]` weight and `[fan_out]` bias.
    pub fn fill(
        &self,
        act: Activation,
        fan_in: usize,
        fan_out: usize,
        rng: &mut StdRng,
    ) -> (Vec<f32>, Vec<f32>) {
        let n = fan_in * fan_out;
        let (fi, fo) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
        let normal = |std: f64, rng: &mut StdRng| -> Vec<f32> {
            match Normal::new(0.0, std.max(0.0)) {
                Ok(d) => (0..n).map(|_| d.sample(rng) as f32).collect(),
                Err(_) => vec![0.0; n],
            }
        };
        let uniform = |bound: f64, count: usize, rng: &mut StdRng| -> Vec<f32> {
            if bound <= 0.0 {
                return vec![0.0; count];
            }
            (0..count)
                .map(|_| rng.random_range(-bound..bound) as f32)
                .collect()
        };
        let zeros = vec![0.0f32; fan_out];
        match *self {
            Init::HeNormal => (normal(he_gain(act) / fi.sqrt(), rng), zeros),
            Init::HeUniform => (uniform(he_gain(act) * (3.0 / fi).sqrt(), n, rng), zeros),
            Init::XavierNormal => (normal(gain(act) * (2.0 / (fi + fo)).sqrt(), rng), zeros),
            Init::XavierUniform => (uniform(gain(act) * (6.0 / (fi + fo)).sqrt(), n, rng), zeros),
            Init::LecunNormal => (normal(1.0 / fi.sqrt(), rng), zeros),
            Init::Orthogonal => (orthogonal(fan_out, fan_in, gain(act), rng), zeros),
            Init::TorchDefault => {
                let bound = 1.0 / fi.sqrt();
                let w = uniform(bound, n, rng);
                (w, uniform(bound, fan_out, rng))
            }
            Init::Normal { std } => (normal(std as f64, rng), zeros),
        }
    }
}

/// PyTorch's `calculate_gain` for the activation (1 where PyTorch has none).
pub fn gain(act: Activation) -> f64 {
    match act {
        Activation::Relu => 2f64.sqrt(),
        Activation::LeakyRelu { negative_slope: s } | Activation::Prelu { weight: s } => {
            (2.0 / (1.0 + (s as f64) * (s as f64))).sqrt()
        }
        Activation::Tanh => 5.0 / 3.0,
        Activation::Selu => 0.75,
        _ => 1.0,
    }
}

/// Kaiming's gain: the leaky-ReLU formula for the leaky family, sqrt(2) otherwise.
fn he_gain(act: Activation) -> f64 {
    match act {
        Activation::LeakyRelu { .. } | Activation::Prelu { .. } => gain(act),
        _ => 2f64.sqrt(),
    }
}

/// A `[rows, cols]` matrix with orthonormal rows (rows <= cols) or columns,
/// times `gain`: Gram–Schmidt (twice, for stability) on a Gaussian matrix.
fn orthogonal(rows: usize, cols: usize, gain: f64, rng: &mut StdRng) -> Vec<f32> {
    let (r, c) = if rows <= cols {
        (rows, cols)
    } else {
        (cols, rows)
    };
    let normal = Normal::new(0.0, 1.0).expect("unit normal");
    let mut m: Vec<Vec<f64>> = (0..r)
        .map(|_| (0..c).map(|_| normal.sample(rng)).collect())
        .collect();
    for i in 0..r {
        for _ in 0..2 {
            for j in 0..i {
                let (done, rest) = m.split_at_mut(i);
                let (row, basis) = (&mut rest[0], &done[j]);
                let dot: f64 = row.iter().zip(basis).map(|(a, b)| a * b).sum();
                for (a, b) in row.iter_mut().zip(basis) {
                    *a -= dot * b;
                }
            }
        }
        let norm = m[i].iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        for v in m[i].iter_mut() {
            *v /= norm;
        }
    }
    let mut out = vec![0.0f32; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            let v = if rows <= cols { m[i][j] } else { m[j][i] };
            out[i * cols + j] = (gain * v) as f32;
        }
    }
    out
}

/// A deterministic per-layer generator derived from the model seed.
pub fn layer_rng(seed: u64, layer: usize) -> StdRng {
    StdRng::seed_from_u64(seed ^ (layer as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Init::HeNormal => f.write_str("he_normal"),
            Init::HeUniform => f.write_str("he_uniform"),
            Init::XavierNormal => f.write_str("xavier_normal"),
            Init::XavierUniform => f.write_str("xavier_uniform"),
            Init::LecunNormal => f.write_str("lecun_normal"),
            Init::Orthogonal => f.write_str("orthogonal"),
            Init::TorchDefault => f.write_str("torch_default"),
            Init::Normal { std } => write!(f, "normal:{std}"),
        }
    }
}

const INIT_NAMES: &str = "he_normal, he_uniform, xavier_normal, xavier_uniform, lecun_normal, \
                          orthogonal, torch_default, normal:STD";

impl FromStr for Init {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "he_normal" | "kaiming_normal" | "he" => Init::HeNormal,
            "he_uniform" | "kaiming_uniform" => Init::HeUniform,
            "xavier_normal" | "glorot_normal" | "xavier" => Init::XavierNormal,
            "xavier_uniform" | "glorot_uniform" => Init::XavierUniform,
            "lecun_normal" | "lecun" => Init::LecunNormal,
            "orthogonal" => Init::Orthogonal,
            "torch_default" | "default" | "pytorch" => Init::TorchDefault,
            other => {
                let std = other
                    .strip_prefix("normal:")
                    .and_then(|v| v.parse::<f32>().ok())
                    .filter(|v| v.is_finite() && *v >= 0.0);
                match std {
                    Some(std) => Init::Normal { std },
                    None => {
                        return Err(Error::Config(format!(
                            "unknown initialiser '{s}'; valid: {INIT_NAMES}"
                        )))
                    }
                }
            }
        })
    }
}

impl TryFrom<String> for Init {
    type Error = Error;
    fn try_from(v: String) -> Result<Self, Error> {
        v.parse()
    }
}

impl From<Init> for String {
    fn from(v: Init) -> String {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn std_of(v: &[f32]) -> f64 {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
    }

    #[test]
    fn scales_follow_pytorch() {
        let mut rng = layer_rng(1, 0);
        let (w, b) = Init::HeNormal.fill(Activation::Relu, 256, 512, &mut rng);
        assert!((std_of(&w) - (2.0f64 / 256.0).sqrt()).abs() < 0.003);
        assert!(b.iter().all(|&v| v == 0.0));
        let (w, _) = Init::XavierNormal.fill(Activation::Tanh, 256, 512, &mut rng);
        let want = 5.0 / 3.0 * (2.0f64 / 768.0).sqrt();
        assert!(
            (std_of(&w) - want).abs() < 0.003,
            "{} vs {want}",
            std_of(&w)
        );
        let (w, _) = Init::HeUniform.fill(Activation::Relu, 100, 300, &mut rng);
        let bound = 2f64.sqrt() * (3.0f64 / 100.0).sqrt();
        assert!(w.iter().all(|&v| (v as f64).abs() <= bound));
        let (w, b) = Init::TorchDefault.fill(Activation::Relu, 64, 32, &mut rng);
        assert!(w.iter().chain(&b).all(|&v| v.abs() <= 0.125));
        assert!(b.iter().any(|&v| v != 0.0));
    }

    #[test]
    fn orthogonal_rows_are_orthonormal() {
        let mut rng = layer_rng(2, 0);
        for (rows, cols) in [(8, 16), (16, 8), (12, 12)] {
            let (w, _) = Init::Orthogonal.fill(Activation::Identity, cols, rows, &mut rng);
            let (r, c, tr) = if rows <= cols {
                (rows, cols, false)
            } else {
                (cols, rows, true)
            };
            let at = |i: usize, k: usize| if tr { w[k * cols + i] } else { w[i * cols + k] } as f64;
            for i in 0..r {
                for j in 0..r {
                    let dot: f64 = (0..c).map(|k| at(i, k) * at(j, k)).sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-5, "{rows}x{cols} ({i},{j}) {dot}");
                }
            }
        }
    }

    #[test]
    fn same_seed_same_weights_and_names_round_trip() {
        let a = Init::XavierUniform.fill(Activation::Sigmoid, 10, 7, &mut layer_rng(5, 3));
        let b = Init::XavierUniform.fill(Activation::Sigmoid, 10, 7, &mut layer_rng(5, 3));
        assert_eq!(a, b);
        for init in Init::ALL {
            assert_eq!(init.to_string().parse::<Init>().unwrap(), init);
        }
        assert_eq!(
            "normal:0.01".parse::<Init>().unwrap(),
            Init::Normal { std: 0.01 }
        );
        assert!("nope"
            .parse::<Init>()
            .unwrap_err()
            .to_string()
            .contains("xavier_normal"));
        assert_eq!(Init::default_for(Activation::Relu), Init::HeNormal);
        assert_eq!(Init::default_for(Activation::Sigmoid), Init::XavierNormal);
        assert_eq!(Init::default_for(Activation::Selu), Init::LecunNormal);
    }
}
