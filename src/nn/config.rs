//! A net's architecture: [`MlpConfig`] and the choices it names.

use serde::{Deserialize, Serialize};

use super::init::{layer_rng, Init};
use super::loss::Head;
use crate::activation::Activation;
use crate::error::Error;
pub use crate::gpu::norm::NormKind;

/// The architecture of a multilayer perceptron: hidden layers of fused
/// linear+activation kernels and a linear output layer feeding the head.
///
/// ```
/// use fusedmlp::{Activation, MlpConfig};
/// let config = MlpConfig::deep(64, 20, 64, 10, Activation::Relu);
/// assert_eq!(config.hidden.len(), 20);
/// assert_eq!(config.init().to_string(), "he_normal");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MlpConfig {
    /// Input features.
    pub input: usize,
    /// Width of each hidden layer, first to last.
    pub hidden: Vec<usize>,
    /// Outputs (classes for the softmax head).
    pub output: usize,
    /// The hidden layers' activation.
    pub activation: Activation,
    /// The output head and loss.
    pub head: Head,
    /// The initialiser; `None` picks [`Init::default_for`] the activation.
    pub init: Option<Init>,
    /// Seed of the initial weights (and of the dropout masks).
    pub seed: u64,
    /// Residual connections: every hidden layer after the first whose input
    /// and output widths match computes `x + f(x)` (see [`MlpConfig::is_residual`]).
    #[serde(default)]
    pub residual: bool,
    /// With `residual`: scale the initial weights and biases of every
    /// residual block's branch by 1/√(number of residual blocks), so that the
    /// sum `x + f(x)` keeps its input's variance within a constant factor
    /// over any depth instead of doubling it at every block (the idea behind
    /// Fixup and GPT-2's scaled residual initialisation).
    #[serde(default)]
    pub scale_residual_init: bool,
    /// Dropout probability after each hidden activation, in training only
    /// (inverted dropout: kept units are scaled by 1/(1−p)).
    #[serde(default)]
    pub dropout: f32,
    /// Alpha dropout (for self-normalising SELU nets) instead of inverted dropout.
    #[serde(default)]
    pub alpha_dropout: bool,
    /// Learn PReLU slopes (the activation must be `prelu`, whose weight is
    /// the initial slope): one per hidden layer or one per unit.
    #[serde(default)]
    pub learn_prelu: Option<PreluMode>,
    /// LayerNorm in every hidden layer (eps 1e-5, learnable scale and
    /// shift), before or after the activation.
    #[serde(default)]
    pub layer_norm: Option<NormPlacement>,
    /// BatchNorm1d in every hidden layer (batch statistics in training,
    /// running mean and variance with momentum 0.1 in evaluation, eps 1e-5,
    /// learnable scale and shift), before or after the activation.
    #[serde(default)]
    pub batch_norm: Option<NormPlacement>,
}

/// Where a hidden layer's normalisation sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormPlacement {
    /// `f(norm(x·Wᵀ + b))`.
    Before,
    /// `norm(f(x·Wᵀ + b))`.
    After,
}

impl std::str::FromStr for NormPlacement {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "before" => Ok(NormPlacement::Before),
            "after" => Ok(NormPlacement::After),
            _ => Err(Error::Config(format!(
                "unknown normalisation placement '{s}'; valid: before, after"
            ))),
        }
    }
}

/// How many slopes a learned PReLU has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreluMode {
    /// One slope shared by the layer's units (`nn.PReLU()`).
    PerLayer,
    /// One slope per unit (`nn.PReLU(num_parameters=width)`).
    PerUnit,
}

impl std::str::FromStr for PreluMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "per_layer" | "layer" => Ok(PreluMode::PerLayer),
            "per_unit" | "unit" => Ok(PreluMode::PerUnit),
            _ => Err(Error::Config(format!(
                "unknown PReLU mode '{s}'; valid: per_layer, per_unit"
            ))),
        }
    }
}

/// SELU's saturation value −λα, what alpha dropout sets dropped units to.
pub const ALPHA_DROPOUT_PRIME: f64 = -crate::activation::SELU_SCALE * crate::activation::SELU_ALPHA;

impl MlpConfig {
    /// A net with the given hidden widths, softmax head, default init, seed 0.
    pub fn new(input: usize, hidden: Vec<usize>, output: usize, activation: Activation) -> Self {
        MlpConfig {
            input,
            hidden,
            output,
            activation,
            head: Head::Softmax,
            init: None,
            seed: 0,
            residual: false,
            scale_residual_init: false,
            dropout: 0.0,
            alpha_dropout: false,
            learn_prelu: None,
            layer_norm: None,
            batch_norm: None,
        }
    }

    /// Sets [`MlpConfig::head`] (the output head and loss).
    pub fn with_head(mut self, head: Head) -> Self {
        self.head = head;
        self
    }

    /// Sets [`MlpConfig::init`] (the initialiser; `None` picks the activation's default); `None` clears it.
    pub fn with_init(mut self, init: impl Into<Option<Init>>) -> Self {
        self.init = init.into();
        self
    }

    /// Sets [`MlpConfig::seed`] (the seed of the initial weights and dropout masks).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets [`MlpConfig::residual`] (residual connections).
    pub fn with_residual(mut self, residual: bool) -> Self {
        self.residual = residual;
        self
    }

    /// Sets [`MlpConfig::scale_residual_init`] (residual branches initialised scaled down).
    pub fn with_scale_residual_init(mut self, scale_residual_init: bool) -> Self {
        self.scale_residual_init = scale_residual_init;
        self
    }

    /// Sets [`MlpConfig::dropout`] (the dropout probability).
    pub fn with_dropout(mut self, dropout: f32) -> Self {
        self.dropout = dropout;
        self
    }

    /// Sets [`MlpConfig::alpha_dropout`] (alpha dropout instead of inverted dropout).
    pub fn with_alpha_dropout(mut self, alpha_dropout: bool) -> Self {
        self.alpha_dropout = alpha_dropout;
        self
    }

    /// Sets [`MlpConfig::learn_prelu`] (learned PReLU slopes); `None` clears it.
    pub fn with_learn_prelu(mut self, learn_prelu: impl Into<Option<PreluMode>>) -> Self {
        self.learn_prelu = learn_prelu.into();
        self
    }

    /// Sets [`MlpConfig::layer_norm`] (LayerNorm and where it sits); `None` clears it.
    pub fn with_layer_norm(mut self, layer_norm: impl Into<Option<NormPlacement>>) -> Self {
        self.layer_norm = layer_norm.into();
        self
    }

    /// Sets [`MlpConfig::batch_norm`] (BatchNorm and where it sits); `None` clears it.
    pub fn with_batch_norm(mut self, batch_norm: impl Into<Option<NormPlacement>>) -> Self {
        self.batch_norm = batch_norm.into();
        self
    }

    /// The hidden layers' normalisation and where it sits (`None`: none).
    pub fn norm(&self) -> Option<(NormKind, NormPlacement)> {
        match (self.layer_norm, self.batch_norm) {
            (Some(p), _) => Some((NormKind::Layer, p)),
            (None, Some(p)) => Some((NormKind::Batch, p)),
            (None, None) => None,
        }
    }

    /// Whether the normalisation sits before the activation.
    pub fn norm_before(&self) -> bool {
        matches!(self.norm(), Some((_, NormPlacement::Before)))
    }

    /// Whether linear layer `l` is followed by a normalisation layer
    /// (hidden layers only).
    pub fn has_norm(&self, l: usize) -> bool {
        self.norm().is_some() && l < self.hidden.len()
    }

    /// Whether linear layer `l` is followed by BatchNorm1d (with running
    /// statistics).
    pub fn has_batch_norm(&self, l: usize) -> bool {
        self.has_norm(l) && matches!(self.norm(), Some((NormKind::Batch, _)))
    }

    /// Whether layer `l` writes its pre-activation z on every forward (for
    /// the step after the linear part: learned PReLU, or a normalisation
    /// before the activation), not only when the backward asks for it.
    pub fn layer_needs_z(&self, l: usize) -> bool {
        self.slope_count(l) > 0 || (self.has_norm(l) && self.norm_before())
    }

    /// How many learned slopes layer `l` has (0: none).
    pub fn slope_count(&self, l: usize) -> usize {
        match self.learn_prelu {
            Some(_) if l >= self.hidden.len() => 0,
            Some(PreluMode::PerLayer) => 1,
            Some(PreluMode::PerUnit) => self.hidden[l],
            None => 0,
        }
    }

    /// The initial learned slopes of every layer (empty where none).
    pub fn initial_slopes(&self) -> Vec<Vec<f32>> {
        let a = match self.activation {
            Activation::Prelu { weight } => weight,
            _ => 0.25,
        };
        (0..self.layer_shapes().len())
            .map(|l| vec![a; self.slope_count(l)])
            .collect()
    }

    /// The self-normalising preset: SELU, LeCun normal initialisation and
    /// alpha dropout with probability `p` (0 for none), no normalisation layer.
    pub fn self_normalising(
        input: usize,
        depth: usize,
        width: usize,
        output: usize,
        p: f32,
    ) -> Self {
        let mut c = Self::deep(input, depth, width, output, Activation::Selu);
        c.init = Some(Init::LecunNormal);
        c.dropout = p;
        c.alpha_dropout = true;
        c
    }

    /// Whether linear layer `l` adds its input to its output.
    pub fn is_residual(&self, l: usize) -> bool {
        let shapes = self.layer_shapes();
        self.residual && l >= 1 && l < self.hidden.len() && shapes[l].0 == shapes[l].1
    }

    /// Whether dropout follows linear layer `l` (in training).
    pub fn has_dropout(&self, l: usize) -> bool {
        self.dropout > 0.0 && l < self.hidden.len()
    }

    /// The seed of layer `l`'s dropout masks.
    pub fn mask_seed(&self, l: usize) -> u32 {
        let h = self.seed ^ (l as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h ^ (h >> 32)) as u32
    }

    /// Dropout's integer threshold: an element is kept when its 24-bit hash
    /// is at least this (p·2^24, rounded).
    pub fn drop_threshold(&self) -> u32 {
        (self.dropout as f64 * (1u64 << 24) as f64).round() as u32
    }

    /// (scale of kept units, value of dropped units, affine a, affine b):
    /// inverted dropout keeps y/(1−p) and drops to 0; alpha dropout maps kept
    /// y and dropped units (set to −λα) through a·v + b so that mean and
    /// variance are preserved, as `torch.nn.AlphaDropout`.
    pub fn dropout_constants(&self) -> (f64, f64, f64, f64) {
        let p = self.dropout as f64;
        if self.alpha_dropout {
            let ap = ALPHA_DROPOUT_PRIME;
            let a = ((1.0 - p) * (1.0 + p * ap * ap)).powf(-0.5);
            (1.0, ap, a, -a * ap * p)
        } else {
            (1.0 / (1.0 - p), 0.0, 1.0, 0.0)
        }
    }

    /// `depth` hidden layers of `width` units.
    pub fn deep(
        input: usize,
        depth: usize,
        width: usize,
        output: usize,
        activation: Activation,
    ) -> Self {
        Self::new(input, vec![width; depth], output, activation)
    }

    /// The initialiser in effect.
    pub fn init(&self) -> Init {
        self.init
            .unwrap_or_else(|| Init::default_for(self.activation))
    }

    /// (in_features, out_features) of every linear layer, output layer last.
    pub fn layer_shapes(&self) -> Vec<(usize, usize)> {
        let mut dims = vec![self.input];
        dims.extend(&self.hidden);
        dims.push(self.output);
        dims.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// The activation applied after linear layer `l` (identity for the output layer).
    pub fn layer_activation(&self, l: usize) -> Activation {
        if l < self.hidden.len() {
            self.activation
        } else {
            Activation::Identity
        }
    }

    /// Checks sizes and the activation.
    pub fn validate(&self) -> Result<(), Error> {
        if self.input == 0 {
            return Err(Error::setting("MlpConfig::input", 0, "at least 1"));
        }
        if self.output == 0 {
            return Err(Error::setting("MlpConfig::output", 0, "at least 1"));
        }
        if self.hidden.is_empty() {
            return Err(Error::setting(
                "MlpConfig::hidden",
                "empty (depth 0)",
                "at least one hidden layer",
            ));
        }
        if let Some(l) = self.hidden.iter().position(|&w| w == 0) {
            return Err(Error::setting(
                format!("MlpConfig::hidden[{l}]"),
                0,
                "at least 1 unit",
            ));
        }
        // A weight's element count must be countable in a u32 (the kernels'
        // index type) and on this platform (usize is 32 bits in the browser).
        for (l, (fan_in, fan_out)) in self.layer_shapes().into_iter().enumerate() {
            let count = fan_in
                .checked_mul(fan_out)
                .filter(|&n| n <= u32::MAX as usize);
            if count.is_none() {
                let field = if l < self.hidden.len() {
                    format!("MlpConfig::hidden[{l}]")
                } else {
                    "MlpConfig::output".to_string()
                };
                return Err(Error::setting(
                    field,
                    fan_out,
                    format!(
                        "small enough for layer {l}'s weight [{fan_out}, {fan_in}] to have fewer \
                         than 2^32 values"
                    ),
                ));
            }
        }
        if self.scale_residual_init && !self.residual {
            return Err(Error::setting(
                "MlpConfig::scale_residual_init",
                true,
                "false unless MlpConfig::residual is true (it scales the residual blocks)",
            ));
        }
        if self.layer_norm.is_some() && self.batch_norm.is_some() {
            return Err(Error::setting(
                "MlpConfig::batch_norm",
                "set together with MlpConfig::layer_norm",
                "None when layer_norm is set: a layer takes one normalisation",
            ));
        }
        if self.learn_prelu.is_some() && self.norm().is_some() {
            return Err(Error::setting(
                "MlpConfig::learn_prelu",
                "set with a normalisation",
                "None when layer_norm or batch_norm is set (the two cannot be combined yet)",
            ));
        }
        if self.learn_prelu.is_some() && !matches!(self.activation, Activation::Prelu { .. }) {
            return Err(Error::setting(
                "MlpConfig::learn_prelu",
                format!("set with the {} activation", self.activation),
                "None unless the activation is prelu",
            ));
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return Err(Error::setting(
                "MlpConfig::dropout",
                self.dropout,
                "in [0, 1)",
            ));
        }
        if self.head == Head::Softmax && self.output < 2 {
            return Err(Error::setting(
                "MlpConfig::output",
                self.output,
                "at least 2 for a softmax head (Head::Sigmoid takes one output)",
            ));
        }
        self.activation.validate()
    }

    /// The initial (weight `[out, in]`, bias `[out]`) of every layer, drawn
    /// on the host from the seed: the same on every adapter. Hidden layers
    /// use the configured initialiser with the activation's gain; the output
    /// layer uses it with the identity's gain (Xavier for He-initialised nets,
    /// whose gain assumes a rectifier after the layer).
    pub fn initial_parameters(&self) -> Vec<(Vec<f32>, Vec<f32>)> {
        let init = self.init();
        let shapes = self.layer_shapes();
        let last = shapes.len() - 1;
        let residual_scale = 1.0 / (self.residual_blocks().max(1) as f32).sqrt();
        shapes
            .iter()
            .enumerate()
            .map(|(l, &(fan_in, fan_out))| {
                let mut rng = layer_rng(self.seed, l);
                let scheme = match (l == last, init) {
                    (true, Init::HeNormal) => Init::XavierNormal,
                    (true, Init::HeUniform) => Init::XavierUniform,
                    (_, other) => other,
                };
                let (mut w, mut b) =
                    scheme.fill(self.layer_activation(l), fan_in, fan_out, &mut rng);
                if self.scale_residual_init && self.is_residual(l) {
                    w.iter_mut()
                        .chain(b.iter_mut())
                        .for_each(|v| *v *= residual_scale);
                }
                (w, b)
            })
            .collect()
    }

    /// How many hidden layers are residual blocks `x + f(x)`.
    pub fn residual_blocks(&self) -> usize {
        (0..self.layer_shapes().len())
            .filter(|&l| self.is_residual(l))
            .count()
    }

    /// Total parameter count (saturating: absurd sizes from a corrupted
    /// file cannot overflow).
    pub fn parameter_count(&self) -> usize {
        self.layer_shapes()
            .iter()
            .map(|(i, o)| i.saturating_mul(*o).saturating_add(*o))
            .fold(0usize, usize::saturating_add)
    }
}
