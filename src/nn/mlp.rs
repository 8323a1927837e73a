//! The MLP: its configuration, and its parameters on the GPU.

use serde::{Deserialize, Serialize};

use super::arena::{ParamKind, ParamLayout};
use super::init::{layer_rng, Init};
use super::loss::Head;
use crate::activation::Activation;
use crate::data::Standardizer;
use crate::error::Error;
use crate::gpu::norm::{NormBuffers, NormMode};
use crate::gpu::{Gpu, GpuTensor};

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

/// Which normalisation a hidden layer has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NormKind {
    /// `nn.LayerNorm(width)`: statistics over each row's features.
    Layer,
    /// `nn.BatchNorm1d(width)`: statistics over the batch, per feature, with
    /// running estimates for evaluation.
    Batch,
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

    /// Checks that every layer's weight, and all the parameters together
    /// (they share one arena buffer), fit one buffer of `gpu` (its
    /// `max_buffer_size` and `max_storage_buffer_binding_size`), without
    /// allocating anything.
    pub fn check_fits(&self, gpu: &Gpu) -> Result<(), Error> {
        for (l, (fan_in, fan_out)) in self.layer_shapes().into_iter().enumerate() {
            let what = format!("layer {l}'s weight [{fan_out}, {fan_in}]");
            let floats = fan_in.checked_mul(fan_out).ok_or_else(|| {
                Error::Config(format!(
                    "{what} has more values than this platform can count"
                ))
            })?;
            gpu.check_tensor_size(&what, floats)?;
        }
        // Every tensor lives in one arena buffer (and so do the gradients
        // and each optimizer state): the whole net must fit one buffer too.
        let layout = crate::nn::arena::ParamLayout::of(self)?;
        gpu.check_tensor_size(
            &format!(
                "the net's {} parameters (one buffer for all layers)",
                self.parameter_count()
            ),
            layout.len(),
        )?;
        Ok(())
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

/// The most floats one layer's activations take in one chunk of a
/// prediction (64 MiB): [`Mlp::predict_logits`] splits larger inputs.
pub const PREDICT_CHUNK_FLOATS: usize = 1 << 24;

/// A named parameter on the host: (name, values, shape).
pub type NamedParameter = (String, Vec<f32>, Vec<usize>);
/// One layer's (weight `[out, in]`, bias `[out]`) on the host.
pub type LayerValues = (Vec<f32>, Vec<f32>);

/// One linear layer's parameters on the device.
#[derive(Debug, Clone)]
pub(crate) struct LayerParams {
    /// `[out, in]`.
    pub(crate) weight: GpuTensor,
    /// `[1, out]`.
    pub(crate) bias: GpuTensor,
}

/// An MLP whose parameters live on the GPU.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// The device.
    pub(crate) gpu: Gpu,
    /// The architecture.
    pub(crate) config: MlpConfig,
    /// Linear layers, output layer last (views into [`Mlp::arena`]).
    pub(crate) layers: Vec<LayerParams>,
    /// Learned PReLU slopes per layer (`None` where the layer has none).
    pub(crate) slopes: Vec<Option<GpuTensor>>,
    /// Normalisation (scale `[1, width]`, shift `[1, width]`) per layer (`None` where none).
    pub(crate) norms: Vec<Option<(GpuTensor, GpuTensor)>>,
    /// BatchNorm1d's running (mean `[1, width]`, variance `[1, width]`) per
    /// layer (`None` where none).
    pub(crate) running: Vec<Option<(GpuTensor, GpuTensor)>>,
    /// Every trained tensor in one buffer (the fields above are views).
    arena: GpuTensor,
    layout: ParamLayout,
    /// The feature scaling the net's inputs were trained with, applied by
    /// the `predict_*` calls to rows as they come.
    standardizer: Option<Standardizer>,
}

impl Mlp {
    /// The device the parameters live on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The architecture.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// Linear layer `l`'s weight `[out, in]` on the device (0 = first
    /// hidden layer, the output layer last), a view into [`Mlp::arena`];
    /// `None` past the last layer.
    pub fn weight(&self, l: usize) -> Option<&GpuTensor> {
        self.layers.get(l).map(|p| &p.weight)
    }

    /// Linear layer `l`'s bias `[1, out]` on the device, as [`Mlp::weight`].
    pub fn bias(&self, l: usize) -> Option<&GpuTensor> {
        self.layers.get(l).map(|p| &p.bias)
    }

    /// Builds the net with its seeded initial parameters.
    pub fn new(gpu: &Gpu, config: MlpConfig) -> Result<Mlp, Error> {
        config.validate()?;
        // Before a single host value is drawn: a net too large for the
        // device is an error, not a multi-terabyte allocation that aborts.
        config.check_fits(gpu)?;
        let params = config.initial_parameters();
        let slopes = config.initial_slopes();
        Self::from_parameters_and_slopes(gpu, config, &params, &slopes)
    }

    /// Builds the net from (weight, bias) pairs and learned slopes (one
    /// vector per layer, empty where the layer has none).
    pub fn from_parameters_and_slopes(
        gpu: &Gpu,
        config: MlpConfig,
        params: &[LayerValues],
        slopes: &[Vec<f32>],
    ) -> Result<Mlp, Error> {
        let mlp = Self::from_parameters(gpu, config, params)?;
        if slopes.len() != mlp.layers.len() {
            return Err(Error::shape("PReLU slopes", mlp.layers.len(), slopes.len()));
        }
        for (l, s) in slopes.iter().enumerate() {
            let want = mlp.config.slope_count(l);
            if s.len() != want {
                return Err(Error::shape(
                    format!("activations.{l}.weight"),
                    want,
                    s.len(),
                ));
            }
            if let Some(view) = &mlp.slopes[l] {
                gpu.write(view, s)?;
            }
        }
        Ok(mlp)
    }

    /// Sets every normalisation layer's (scale, shift) from host values
    /// (empty where none).
    pub fn set_norms(&self, norms: &[(Vec<f32>, Vec<f32>)]) -> Result<(), Error> {
        write_pairs(
            &self.gpu,
            "normalisation parameters",
            "norms.{l}",
            &self.norms,
            norms,
        )
    }

    /// Every normalisation layer's (scale, shift), copied to the host (empty where none).
    pub fn norm_values(&self) -> Result<Vec<LayerValues>, Error> {
        pollster::block_on(self.norm_values_async())
    }

    /// [`Mlp::norm_values`] without blocking.
    pub async fn norm_values_async(&self) -> Result<Vec<LayerValues>, Error> {
        read_pairs(&self.gpu, &self.norms).await
    }

    /// Sets every BatchNorm1d's running (mean, variance) from host values
    /// (empty where none).
    pub fn set_running_stats(&self, running: &[(Vec<f32>, Vec<f32>)]) -> Result<(), Error> {
        write_pairs(
            &self.gpu,
            "BatchNorm running statistics",
            "norms.{l}.running_mean/running_var",
            &self.running,
            running,
        )
    }

    /// Every BatchNorm1d's running (mean, variance), copied to the host
    /// (empty where none).
    pub fn running_stat_values(&self) -> Result<Vec<LayerValues>, Error> {
        pollster::block_on(self.running_stat_values_async())
    }

    /// [`Mlp::running_stat_values`] without blocking.
    pub async fn running_stat_values_async(&self) -> Result<Vec<LayerValues>, Error> {
        read_pairs(&self.gpu, &self.running).await
    }

    /// The learned slopes of every layer, copied to the host (empty where none).
    pub fn slope_values(&self) -> Result<Vec<Vec<f32>>, Error> {
        pollster::block_on(self.slope_values_async())
    }

    /// [`Mlp::slope_values`] without blocking.
    pub async fn slope_values_async(&self) -> Result<Vec<Vec<f32>>, Error> {
        let mut out = Vec::with_capacity(self.slopes.len());
        for s in &self.slopes {
            out.push(match s {
                Some(t) => self.gpu.download_async(t).await?,
                None => Vec::new(),
            });
        }
        Ok(out)
    }

    /// Builds the net from given (weight, bias) pairs, checking every shape.
    pub fn from_parameters(
        gpu: &Gpu,
        config: MlpConfig,
        params: &[(Vec<f32>, Vec<f32>)],
    ) -> Result<Mlp, Error> {
        config.validate()?;
        let shapes = config.layer_shapes();
        if params.len() != shapes.len() {
            return Err(Error::shape(
                "Mlp parameters",
                format!("{} layers", shapes.len()),
                format!("{} layers", params.len()),
            ));
        }
        for (l, ((w, b), &(fan_in, fan_out))) in params.iter().zip(&shapes).enumerate() {
            if w.len() != fan_in * fan_out || b.len() != fan_out {
                return Err(Error::shape(
                    format!("layers.{l}"),
                    format!("weight [{fan_out}, {fan_in}] and bias [{fan_out}]"),
                    format!("{} weight values and {} bias values", w.len(), b.len()),
                ));
            }
        }
        config.check_fits(gpu)?;
        // Every trained tensor in one buffer: weights and biases as given,
        // learned slopes at the prelu weight (from_parameters_and_slopes
        // overrides), normalisation scale 1 and shift 0 (as PyTorch).
        let layout = ParamLayout::of(&config)?;
        gpu.check_tensor_size("the net's parameters", layout.len())?;
        let initial_slopes = config.initial_slopes();
        let mut host = vec![0.0f32; layout.len()];
        for e in layout.entries() {
            let (w, b) = &params[e.layer];
            let slot = &mut host[e.offset..e.offset + e.len()];
            match e.kind {
                ParamKind::Weight => slot.copy_from_slice(w),
                ParamKind::Bias => slot.copy_from_slice(b),
                ParamKind::Slopes => slot.copy_from_slice(&initial_slopes[e.layer]),
                ParamKind::NormScale => slot.fill(1.0),
                ParamKind::NormShift => slot.fill(0.0),
            }
        }
        let arena = gpu.upload(&host, 1, layout.len())?;
        drop(host);
        let mut layers = Vec::with_capacity(shapes.len());
        let mut slopes = Vec::with_capacity(shapes.len());
        let mut norms = Vec::with_capacity(shapes.len());
        for l in 0..shapes.len() {
            layers.push(LayerParams {
                weight: layout.view_of(&arena, l, ParamKind::Weight)?,
                bias: layout.view_of(&arena, l, ParamKind::Bias)?,
            });
            slopes.push(layout.maybe_view(&arena, l, ParamKind::Slopes)?);
            norms.push(
                match (
                    layout.maybe_view(&arena, l, ParamKind::NormScale)?,
                    layout.maybe_view(&arena, l, ParamKind::NormShift)?,
                ) {
                    (Some(g), Some(b)) => Some((g, b)),
                    _ => None,
                },
            );
        }
        // BatchNorm's running mean 0 and variance 1 (as PyTorch): not
        // trained, so outside the arena.
        let running = layers
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                let w = layer.weight.rows();
                if !config.has_batch_norm(l) {
                    return Ok(None);
                }
                Ok(Some((
                    gpu.upload(&vec![0.0; w], 1, w)?,
                    gpu.upload(&vec![1.0; w], 1, w)?,
                )))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Mlp {
            gpu: gpu.clone(),
            config,
            layers,
            slopes,
            norms,
            running,
            arena,
            layout,
            standardizer: None,
        })
    }

    /// The feature scaling the net's inputs were trained with, if it
    /// carries one: `predict_*` apply it to the rows they are given, and
    /// [`Mlp::save`] keeps it with the weights.
    pub fn standardizer(&self) -> Option<&Standardizer> {
        self.standardizer.as_ref()
    }

    /// Gives the net the feature scaling its training data went through
    /// (`None`: rows are used as given). Fails if the standardizer is
    /// inconsistent or fitted on a different feature count.
    pub fn set_standardizer(&mut self, standardizer: Option<Standardizer>) -> Result<(), Error> {
        if let Some(s) = &standardizer {
            s.check()?;
            if s.features() != self.config.input {
                return Err(Error::shape(
                    "Mlp::set_standardizer",
                    format!(
                        "a standardizer of {} features (the net's input)",
                        self.config.input
                    ),
                    format!("{} features", s.features()),
                ));
            }
        }
        self.standardizer = standardizer;
        Ok(())
    }

    /// The arena holding every trained tensor (`[1, len]`): weights, biases
    /// ([`Mlp::weight`], [`Mlp::bias`]), slopes and norms are ranges of it,
    /// where [`Mlp::layout`] says.
    pub fn arena(&self) -> &GpuTensor {
        &self.arena
    }

    /// Where each trained tensor lives in [`Mlp::arena`].
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// Every parameter, named as PyTorch names a stack of Linear layers
    /// (`layers.{i}.weight` `[out, in]`, `layers.{i}.bias` `[out]`), with its shape.
    pub fn named_parameters(&self) -> Result<Vec<NamedParameter>, Error> {
        let mut out = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            let w = self.gpu.download(&layer.weight)?;
            let b = self.gpu.download(&layer.bias)?;
            out.push((
                format!("layers.{l}.weight"),
                w,
                vec![layer.weight.rows(), layer.weight.cols()],
            ));
            out.push((format!("layers.{l}.bias"), b, vec![layer.bias.cols()]));
        }
        Ok(out)
    }

    /// Every (weight, bias) pair, copied to the host.
    pub fn parameters(&self) -> Result<Vec<LayerValues>, Error> {
        pollster::block_on(self.parameters_async())
    }

    /// [`Mlp::parameters`] without blocking.
    pub async fn parameters_async(&self) -> Result<Vec<LayerValues>, Error> {
        let mut out = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            out.push((
                self.gpu.download_async(&l.weight).await?,
                self.gpu.download_async(&l.bias).await?,
            ));
        }
        Ok(out)
    }

    /// How layer `l`'s normalisation runs: BatchNorm1d uses (and updates)
    /// batch statistics in training and its running estimates otherwise.
    fn norm_mode(&self, l: usize, training: bool) -> NormMode<'_> {
        match &self.running[l] {
            Some((m, v)) => NormMode::Batch {
                running: (m, v),
                training,
            },
            None => NormMode::Layer,
        }
    }

    /// Records layer `l`'s linear part, activation and normalisation (not
    /// its dropout or residual connection) on `input`, writing `y` (and `z`,
    /// the pre-activation, when `keep_z` or when the layer needs it: learned
    /// PReLU, normalisation before the activation). `norm` holds the
    /// normalisation's buffers where the layer has one. Returns the tensor
    /// holding the layer's output: `y`, or the normalised `y`.
    pub(crate) fn record_layer_forward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        l: usize,
        input: &GpuTensor,
        (y, z, keep_z): (&GpuTensor, &GpuTensor, bool),
        norm: Option<&NormBuffers>,
        training: bool,
    ) -> Result<GpuTensor, Error> {
        let gpu = &self.gpu;
        let layer = &self.layers[l];
        let act = self.config.layer_activation(l);
        let before = self.config.norm_before();
        let norm = match (&self.norms[l], norm) {
            (Some(gb), Some(bufs)) => Some((gb, bufs)),
            (None, _) => None,
            (Some(_), None) => {
                return Err(Error::Config(format!(
                    "layer {l} has a normalisation but no buffers were given for it"
                )))
            }
        };
        let linear = |encoder: &mut wgpu::CommandEncoder| {
            gpu.record_linear_forward(
                encoder,
                Activation::Identity,
                input,
                &layer.weight,
                &layer.bias,
                z,
                None,
            )
        };
        match (&self.slopes[l], norm) {
            // Normalisation before the activation: z, then n = norm(z), y = f(n).
            (_, Some(((g, b), bufs))) if before => {
                linear(encoder)?;
                gpu.record_norm_forward(
                    encoder,
                    act,
                    true,
                    self.norm_mode(l, training),
                    (g, b),
                    z,
                    bufs,
                    y,
                )?;
            }
            // Learned PReLU: the linear part writes z, then y = prelu(z).
            (Some(slopes), _) => {
                linear(encoder)?;
                gpu.record_prelu_forward(encoder, slopes, z, y)?;
            }
            _ => gpu.record_linear_forward(
                encoder,
                act,
                input,
                &layer.weight,
                &layer.bias,
                y,
                keep_z.then_some(z),
            )?,
        }
        // Normalisation after the activation: the layer's output is n = norm(y).
        match norm {
            Some(((g, b), bufs)) if !before => {
                gpu.record_norm_forward(
                    encoder,
                    act,
                    false,
                    self.norm_mode(l, training),
                    (g, b),
                    y,
                    bufs,
                    y,
                )?;
                Ok(bufs.n.clone())
            }
            _ => Ok(y.clone()),
        }
    }

    /// The logits for `rows` examples `x` `[rows, input]` (evaluation mode).
    /// Rows are taken as they come: a net that carries a
    /// [`Standardizer`] (see [`Mlp::set_standardizer`]; [`Mlp::load`]
    /// restores the saved one) scales them first.
    pub fn predict_logits(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, Error> {
        pollster::block_on(self.predict_logits_async(x, rows))
    }

    /// Class probabilities for `rows` examples `x` `[rows, input]`
    /// (evaluation mode), `[rows, output]`: softmax over each row for a
    /// softmax head, each output's sigmoid for a sigmoid head. An mse head
    /// predicts values, not probabilities: that is an error (use
    /// [`Mlp::predict_logits`]).
    ///
    /// ```no_run
    /// use fusedmlp::{Activation, Gpu, Mlp, MlpConfig};
    /// let gpu = Gpu::new()?;
    /// let model = Mlp::new(&gpu, MlpConfig::deep(2, 3, 16, 4, Activation::Relu))?;
    /// let p = model.predict_proba(&[0.5, -1.0, 2.0, 0.0], 2)?;
    /// assert_eq!(p.len(), 8);
    /// assert!((p[..4].iter().sum::<f32>() - 1.0).abs() < 1e-5);
    /// let classes = model.predict_classes(&[0.5, -1.0, 2.0, 0.0], 2)?;
    /// assert!(classes.iter().all(|&c| c < 4));
    /// # Ok::<(), fusedmlp::Error>(())
    /// ```
    pub fn predict_proba(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, Error> {
        pollster::block_on(self.predict_proba_async(x, rows))
    }

    /// [`Mlp::predict_proba`] without blocking.
    pub async fn predict_proba_async(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, Error> {
        let head = self.config.head;
        if head == Head::Mse {
            return Err(Error::Config(
                "predict_proba: an mse head predicts values, not probabilities; use predict_logits"
                    .into(),
            ));
        }
        let logits = self.predict_logits_async(x, rows).await?;
        Ok(logits
            .chunks(self.config.output.max(1))
            .flat_map(|row| head.outputs_of(row))
            .map(|p| p as f32)
            .collect())
    }

    /// The class each of `rows` examples `x` `[rows, input]` is predicted
    /// to be (evaluation mode), as training counts accuracy: the largest
    /// output; with one output, a positive logit (sigmoid) or the output
    /// rounded (mse). See [`Head::class_of`].
    pub fn predict_classes(&self, x: &[f32], rows: usize) -> Result<Vec<u32>, Error> {
        let logits = self.predict_logits(x, rows)?;
        let head = self.config.head;
        Ok(logits
            .chunks(self.config.output.max(1))
            .map(|row| head.class_of(row))
            .collect())
    }

    /// [`Mlp::predict_logits`] without blocking (the playground's decision
    /// surface: the model evaluated on a grid).
    /// Many rows are run in chunks that keep each layer's activations to
    /// [`PREDICT_CHUNK_FLOATS`] floats.
    pub async fn predict_logits_async(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, Error> {
        let input = self.config.input;
        if rows.checked_mul(input) != Some(x.len()) {
            return Err(Error::shape(
                "predict: x",
                format!(
                    "{} values ({rows} rows of {input})",
                    rows.saturating_mul(input),
                ),
                format!("{} values", x.len()),
            ));
        }
        if rows == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(rows.saturating_mul(self.config.output));
        for part in x.chunks(self.predict_chunk_rows() * input) {
            let logits = self.submit_predict(part, part.len() / input)?;
            out.extend(self.gpu.download_async(&logits).await?);
        }
        Ok(out)
    }

    /// Rows per chunk of a prediction: as many as keep the widest layer's
    /// activations to [`PREDICT_CHUNK_FLOATS`].
    fn predict_chunk_rows(&self) -> usize {
        let c = &self.config;
        let widest = c
            .hidden
            .iter()
            .copied()
            .chain([c.input, c.output])
            .max()
            .unwrap_or(1)
            .max(1);
        (PREDICT_CHUNK_FLOATS / widest).clamp(1, 16_384)
    }

    /// Records and submits the evaluation-mode forward pass of whole rows
    /// (checked by the caller); returns the logits tensor it writes.
    fn submit_predict(&self, x: &[f32], rows: usize) -> Result<GpuTensor, Error> {
        let scaled;
        let x = match &self.standardizer {
            Some(s) => {
                let mut copy = x.to_vec();
                s.apply_rows(&mut copy)?;
                scaled = copy;
                &scaled[..]
            }
            None => x,
        };
        let mut h = self.gpu.upload(x, rows, self.config.input)?;
        let mut encoder = self
            .gpu
            .device()
            .create_command_encoder(&Default::default());
        for (l, layer) in self.layers.iter().enumerate() {
            let width = layer.weight.rows();
            let y = self.gpu.zeros(rows, width)?;
            // Only bound where the layer writes it.
            let z = if self.config.layer_needs_z(l) {
                self.gpu.zeros(rows, width)?
            } else {
                y.clone()
            };
            let bufs = match self.config.norm() {
                Some((kind, _)) if self.norms[l].is_some() => {
                    Some(self.gpu.norm_buffers(kind, rows, width)?)
                }
                _ => None,
            };
            let y = self.record_layer_forward(
                &mut encoder,
                l,
                &h,
                (&y, &z, false),
                bufs.as_ref(),
                false,
            )?;
            // Evaluation mode: no dropout; residual layers add their input.
            h = if self.config.is_residual(l) {
                let out = self.gpu.zeros(rows, width)?;
                self.gpu.record_skip_add(&mut encoder, &y, &h, &out)?;
                out
            } else {
                y
            };
        }
        self.gpu.submit("predict", vec![encoder.finish()])?;
        Ok(h)
    }
}

/// Writes host (a, b) pairs into per-layer optional tensor pairs, checking
/// that every layer has what the model expects.
fn write_pairs(
    gpu: &Gpu,
    what: &str,
    name: &str,
    targets: &[Option<(GpuTensor, GpuTensor)>],
    values: &[(Vec<f32>, Vec<f32>)],
) -> Result<(), Error> {
    if values.len() != targets.len() {
        return Err(Error::shape(what, targets.len(), values.len()));
    }
    for (l, ((a, b), t)) in values.iter().zip(targets).enumerate() {
        let name = || name.replace("{l}", &l.to_string());
        match t {
            Some((ta, tb)) => {
                if a.len() != ta.len() || b.len() != tb.len() {
                    return Err(Error::shape(name(), ta.len(), a.len()));
                }
                gpu.write(ta, a)?;
                gpu.write(tb, b)?;
            }
            None if a.is_empty() && b.is_empty() => {}
            None => return Err(Error::shape(name(), 0, a.len())),
        }
    }
    Ok(())
}

/// Per-layer optional tensor pairs copied to the host (empty where none).
async fn read_pairs(
    gpu: &Gpu,
    pairs: &[Option<(GpuTensor, GpuTensor)>],
) -> Result<Vec<LayerValues>, Error> {
    let mut out = Vec::with_capacity(pairs.len());
    for n in pairs {
        out.push(match n {
            Some((a, b)) => (gpu.download_async(a).await?, gpu.download_async(b).await?),
            None => (Vec::new(), Vec::new()),
        });
    }
    Ok(out)
}
