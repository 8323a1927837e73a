//! The MLP: its parameters on the GPU, and what runs on them.

use super::arena::{ParamKind, ParamLayout};
use super::config::MlpConfig;
use super::loss::Head;
use crate::activation::Activation;
use crate::data::Standardizer;
use crate::error::Error;
use crate::gpu::norm::{NormBuffers, NormMode};
use crate::gpu::{Gpu, GpuTensor};

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
