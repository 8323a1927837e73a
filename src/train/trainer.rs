//! The training loop on the GPU. Each optimizer step is one command
//! submission with no readback: the batch is gathered on the device from
//! the resident data set, the loss and its gradient are fused, clipping
//! scales come from a GPU norm, and the diagnostics of logged steps are
//! reductions in the same submission, copied to a staging buffer and read
//! back asynchronously.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use wgpu::util::DeviceExt;

use super::report::{
    thin_logged_steps, EpochLog, LayerDiagnostics, RunReport, StepLog, DEFAULT_MAX_LOGGED_STEPS,
    HIST_BINS, HIST_MAX, HIST_MIN,
};
use crate::activation::{Activation, Saved};
use crate::data::Dataset;
use crate::error::Error;
use crate::gpu::elementwise::{grid_1d, record_pass, RegParams};
use crate::gpu::linear::LinearScratch;
use crate::gpu::{shader, Gpu, GpuTensor};
use crate::nn::{Mlp, Optimizer, Schedule};

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training split.
    pub epochs: usize,
    /// Examples per step (the last partial batch of an epoch is dropped).
    pub batch_size: usize,
    /// Base learning rate.
    pub learning_rate: f32,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// The learning-rate schedule.
    pub schedule: Schedule,
    /// Steps of linear warmup.
    pub warmup_steps: u64,
    /// Clip gradients to this global L2 norm.
    pub clip_norm: Option<f32>,
    /// Log diagnostics every this many steps (and at the first step).
    pub log_every: u64,
    /// The most logged steps kept in memory and in the report; past it,
    /// older entries are thinned (see [`thin_logged_steps`]).
    #[serde(default = "default_max_logged_steps")]
    pub max_logged_steps: usize,
    /// Seed of the shuffling.
    pub seed: u64,
}

fn default_max_logged_steps() -> usize {
    DEFAULT_MAX_LOGGED_STEPS
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 64,
            learning_rate: 0.05,
            optimizer: Optimizer::sgd(),
            schedule: Schedule::Constant,
            warmup_steps: 0,
            clip_norm: None,
            log_every: 50,
            max_logged_steps: DEFAULT_MAX_LOGGED_STEPS,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// Checks every field against the training data size.
    pub fn validate(&self, train_rows: usize) -> Result<(), Error> {
        if self.epochs == 0 {
            return Err(Error::Config("epochs must be at least 1".into()));
        }
        if self.batch_size == 0 {
            return Err(Error::Config("the batch size must be at least 1".into()));
        }
        if self.batch_size > train_rows {
            return Err(Error::Config(format!(
                "the batch size ({}) is larger than the training split ({train_rows} rows); \
                 use --batch-size {train_rows} or less",
                self.batch_size
            )));
        }
        if !self.learning_rate.is_finite() || self.learning_rate <= 0.0 {
            return Err(Error::Config(format!(
                "the learning rate must be positive and finite, got {}",
                self.learning_rate
            )));
        }
        if let Some(c) = self.clip_norm {
            if !c.is_finite() || c <= 0.0 {
                return Err(Error::Config(format!(
                    "the clipping norm must be positive and finite, got {c}"
                )));
            }
        }
        if self.log_every == 0 {
            return Err(Error::Config("log_every must be at least 1".into()));
        }
        if self.max_logged_steps < 2 {
            return Err(Error::Config(format!(
                "max_logged_steps must be at least 2 (the first and the last logged step), \
                 got {}",
                self.max_logged_steps
            )));
        }
        self.optimizer.validate()
    }
}

/// The order in which epoch `epoch` visits `n` rows.
pub fn shuffle_order(seed: u64, epoch: usize, n: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut rng =
        StdRng::seed_from_u64(seed ^ (epoch as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    order.shuffle(&mut rng);
    order
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct U4 {
    a: u32,
    b: u32,
    c: u32,
    d: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LossParams {
    rows: u32,
    classes: u32,
    kind: u32,
    grad_scale: f32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct OptimParams {
    len: u32,
    row_stride: u32,
    nesterov: u32,
    decoupled: u32,
    momentum: f32,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    alpha: f32,
    pad: [f32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ClipParams {
    first: u32,
    count: u32,
    out_slot: u32,
    max_norm: f32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ColumnParams {
    rows: u32,
    cols: u32,
    saturation_threshold: f32,
    hist_offset: u32,
    hist_min: f32,
    hist_max: f32,
    hist_bins: u32,
    summary_offset: u32,
}

/// Per-layer device state of a training run.
struct LayerState {
    act: Activation,
    /// The layer's output `[batch, out]`.
    y: GpuTensor,
    /// The pre-activation `[batch, out]` (written when f' needs it, and on logged steps).
    z: GpuTensor,
    /// dL/dy `[batch, out]`.
    dy: GpuTensor,
    dw: GpuTensor,
    db: GpuTensor,
    w_state: (GpuTensor, GpuTensor),
    b_state: (GpuTensor, GpuTensor),
    w_prev: GpuTensor,
    columns: GpuTensor,
    /// The diagnostics kernels' parameters for a training batch, made
    /// once: a logged step allocates nothing of its own.
    diag_params: wgpu::Buffer,
    scratch: LinearScratch,
    /// `skip + drop(y)`, the next layer's input, when the layer has
    /// dropout or a residual connection.
    out: Option<GpuTensor>,
    /// dL/dy after the dropout backward (`dy` then holds dL/dout).
    d_dropped: Option<GpuTensor>,
    residual: bool,
    dropout: bool,
    mask_seed: u32,
    slopes: Option<SlopeState>,
    norm: Option<NormState>,
}

/// Slots of the `norms` buffer.
struct Slots {
    layers: usize,
}

impl Slots {
    fn grad_w(&self, l: usize) -> u32 {
        (2 * l) as u32
    }
    fn grad_b(&self, l: usize) -> u32 {
        (2 * l + 1) as u32
    }
    /// Learned PReLU slopes' gradient (0 where a layer has none): inside the
    /// range the clipping norm sums.
    fn grad_slope(&self, l: usize) -> u32 {
        (2 * self.layers + l) as u32
    }
    /// LayerNorm scale and shift gradients (0 where a layer has none).
    fn grad_norm(&self, l: usize) -> (u32, u32) {
        ((3 * self.layers + l) as u32, (4 * self.layers + l) as u32)
    }
    fn gradients(&self) -> u32 {
        (5 * self.layers) as u32
    }
    fn weight(&self, l: usize) -> u32 {
        (5 * self.layers + l) as u32
    }
    fn update(&self, l: usize) -> u32 {
        (6 * self.layers + l) as u32
    }
    fn global(&self) -> u32 {
        (7 * self.layers) as u32
    }
    fn count(&self) -> usize {
        7 * self.layers + 1
    }
}

/// Device state of a layer's normalisation.
struct NormState {
    before: bool,
    buffers: crate::gpu::norm::NormBuffers,
    dgamma: GpuTensor,
    dbeta: GpuTensor,
    gamma_state: (GpuTensor, GpuTensor),
    beta_state: (GpuTensor, GpuTensor),
}

/// Device state of a layer's learned PReLU slopes.
struct SlopeState {
    /// dL/da.
    grad: GpuTensor,
    /// Per-unit partial sums of dL/da.
    units: GpuTensor,
    /// Optimizer state.
    state: (GpuTensor, GpuTensor),
    /// dL/dz, the linear part's upstream gradient.
    dz: GpuTensor,
}

/// Bytes one logged step copies back: the step's loss and accuracy, the
/// norms, the per-layer summaries and the histograms.
fn log_bytes(slots: &Slots, layers: usize) -> u64 {
    ((2 + slots.count() + 4 * layers + layers * (HIST_BINS + 2)) * 4) as u64
}

/// Staging buffers for logged steps' diagnostics, made once and reused: a
/// logged step waits (for every copy in flight) only when all are in use.
const LOG_SLOTS: usize = 4;

struct PendingLog {
    /// Index into the trainer's `log_slots`.
    slot: usize,
    ready: Arc<AtomicBool>,
    step: u64,
    epoch: usize,
    learning_rate: f32,
}

/// A training run in progress: the model, the resident data and every
/// buffer a step needs.
pub struct Trainer {
    gpu: Gpu,
    /// The model being trained.
    pub model: Mlp,
    config: TrainConfig,
    train_x: GpuTensor,
    train_y: GpuTensor,
    train_rows: usize,
    val_x: GpuTensor,
    val_y: GpuTensor,
    val_rows: usize,
    perm: wgpu::Buffer,
    identity_perm: wgpu::Buffer,
    x_batch: GpuTensor,
    y_batch: GpuTensor,
    layers: Vec<LayerState>,
    row_stats: GpuTensor,
    step_stats: GpuTensor,
    train_totals: GpuTensor,
    val_totals: GpuTensor,
    norms: GpuTensor,
    summary: GpuTensor,
    hist: wgpu::Buffer,
    step_state: wgpu::Buffer,
    slots: Slots,
    step: u64,
    log_slots: Vec<wgpu::Buffer>,
    pending: Vec<PendingLog>,
    logs: Vec<StepLog>,
    logs_dropped: u64,
    readbacks: u64,
    last_record_seconds: f64,
    /// The epoch in progress and the steps already taken in it.
    epoch: usize,
    step_in_epoch: usize,
    /// Per (layer, tensor) slot: the first step that produced a non-finite value.
    first_bad: wgpu::Buffer,
    data_fingerprint: u64,
    checkpointing: Option<(PathBuf, u64)>,
    last_checkpoint: Option<(PathBuf, u64)>,
    standardizer: Option<crate::data::Standardizer>,
    stop_at: Option<u64>,
}

/// Where a non-finite value first appeared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    /// The optimizer step (0-based).
    pub step: u64,
    /// The layer (0 = first hidden layer), or `None` for the loss.
    pub layer: Option<usize>,
    /// `activation`, `gradient`, `weight` or `loss`.
    pub tensor: String,
    /// The last checkpoint written before it, if any.
    pub last_good_checkpoint: Option<PathBuf>,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = match self.layer {
            Some(l) => format!("in the {} of layer {l}", self.tensor),
            None => "in the loss".to_string(),
        };
        write!(
            f,
            "training diverged: the first NaN or infinity appeared at step {} {at}. \
             Lower the learning rate, clip gradients (--clip-norm), or use a better-scaled \
             initialisation",
            self.step
        )?;
        match &self.last_good_checkpoint {
            Some(p) => write!(f, "; the last good checkpoint is {}", p.display()),
            None => write!(f, "; no checkpoint was written (use --checkpoint-every)"),
        }
    }
}

/// Slots per layer in the non-finite flags: activation, gradient, weight.
const FINITE_KINDS: [&str; 3] = ["activation", "gradient", "weight"];

/// A fingerprint of a data set's contents.
pub fn data_fingerprint(d: &Dataset) -> u64 {
    let mut bytes = Vec::with_capacity(16 + d.features.len() * 4 + d.labels.len() * 4);
    bytes.extend_from_slice(&(d.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&(d.n_features as u64).to_le_bytes());
    bytes.extend_from_slice(bytemuck::cast_slice(&d.features));
    bytes.extend_from_slice(bytemuck::cast_slice(&d.labels));
    super::checkpoint::fnv1a64(&bytes)
}

fn max_abs_derivative(act: Activation) -> f64 {
    (-4000..=4000)
        .map(|i| crate::reference::activation::derivative_f64(act, i as f64 * 0.005).abs())
        .fold(0.0, f64::max)
}

impl Trainer {
    /// Uploads the data and allocates every buffer for `model` and `config`.
    pub fn new(
        model: Mlp,
        config: TrainConfig,
        train: &Dataset,
        validation: &Dataset,
    ) -> Result<Trainer, Error> {
        let gpu = model.gpu.clone();
        let mc = &model.config;
        config.validate(train.len())?;
        for (name, d) in [("training", train), ("validation", validation)] {
            if d.n_features != mc.input {
                return Err(Error::Config(format!(
                    "the {name} data has {} features but the model's input size is {}",
                    d.n_features, mc.input
                )));
            }
            let needed = if mc.output == 1 { 2 } else { mc.output };
            if d.n_classes > needed {
                return Err(Error::Config(format!(
                    "the {name} data has {} classes but the model has {} outputs; set the output size to {}",
                    d.n_classes,
                    mc.output,
                    d.n_classes
                )));
            }
        }
        if matches!(mc.norm(), Some((crate::nn::NormKind::Batch, _))) && config.batch_size < 2 {
            return Err(Error::Config(format!(
                "BatchNorm needs at least 2 rows per batch to estimate a variance, got a batch \
                 size of {}; raise --batch-size or use --layer-norm",
                config.batch_size
            )));
        }
        let b = config.batch_size;
        let labels = |d: &Dataset| d.labels.iter().map(|&l| l as f32).collect::<Vec<f32>>();
        let train_x = gpu.upload(&train.features, train.len(), train.n_features)?;
        let train_y = gpu.upload(&labels(train), train.len(), 1)?;
        let val_rows = validation.len();
        let val_x = gpu.upload(&validation.features, val_rows, validation.n_features)?;
        let val_y = gpu.upload(&labels(validation), val_rows, 1)?;
        let make_u32 = |data: &[u32]| {
            gpu.device()
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("fusedmlp permutation"),
                    contents: bytemuck::cast_slice(if data.is_empty() { &[0u32] } else { data }),
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                })
        };
        let perm = gpu.scoped("uploading the order", || {
            make_u32(&shuffle_order(config.seed, 0, train.len()))
        })?;
        let identity: Vec<u32> = (0..val_rows.max(b) as u32).collect();
        let identity_perm = gpu.scoped("uploading the order", || make_u32(&identity))?;
        // Evaluation reuses the batch buffers, so they hold max(batch, chunk) rows.
        let rows = b;
        let x_batch = gpu.zeros(rows, mc.input)?;
        let y_batch = gpu.zeros(rows, 1)?;
        let shapes = mc.layer_shapes();
        let mut layers = Vec::new();
        for (l, &(fan_in, fan_out)) in shapes.iter().enumerate() {
            let act = mc.layer_activation(l);
            let shape = crate::LinearShape::new(rows, fan_in, fan_out);
            let saturation_threshold = if act.saturates() {
                (0.01 * max_abs_derivative(act)) as f32
            } else {
                0.0
            };
            let pair = |r, c| -> Result<(GpuTensor, GpuTensor), Error> {
                Ok((gpu.zeros(r, c)?, gpu.zeros(r, c)?))
            };
            layers.push(LayerState {
                act,
                y: gpu.zeros(rows, fan_out)?,
                z: gpu.zeros(rows, fan_out)?,
                dy: gpu.zeros(rows, fan_out)?,
                dw: gpu.zeros(fan_out, fan_in)?,
                db: gpu.zeros(1, fan_out)?,
                w_state: pair(fan_out, fan_in)?,
                b_state: pair(1, fan_out)?,
                w_prev: gpu.zeros(fan_out, fan_in)?,
                columns: gpu.zeros(fan_out, 5)?,
                diag_params: gpu.params(&ColumnParams {
                    rows: rows as u32,
                    cols: fan_out as u32,
                    saturation_threshold,
                    hist_offset: (l * (HIST_BINS + 2)) as u32,
                    hist_min: HIST_MIN,
                    hist_max: HIST_MAX,
                    hist_bins: HIST_BINS as u32,
                    summary_offset: (4 * l) as u32,
                })?,
                scratch: gpu.linear_scratch(shape)?,
                out: if mc.is_residual(l) || mc.has_dropout(l) {
                    Some(gpu.zeros(rows, fan_out)?)
                } else {
                    None
                },
                d_dropped: if mc.has_dropout(l) {
                    Some(gpu.zeros(rows, fan_out)?)
                } else {
                    None
                },
                residual: mc.is_residual(l),
                dropout: mc.has_dropout(l),
                mask_seed: mc.mask_seed(l),
                norm: match mc.norm() {
                    Some((kind, _)) if mc.has_norm(l) => Some(NormState {
                        before: mc.norm_before(),
                        buffers: gpu.norm_buffers(kind, rows, fan_out)?,
                        dgamma: gpu.zeros(1, fan_out)?,
                        dbeta: gpu.zeros(1, fan_out)?,
                        gamma_state: pair(1, fan_out)?,
                        beta_state: pair(1, fan_out)?,
                    }),
                    _ => None,
                },
                slopes: match mc.slope_count(l) {
                    0 => None,
                    k => Some(SlopeState {
                        grad: gpu.zeros(1, k)?,
                        units: gpu.zeros(1, fan_out)?,
                        state: pair(1, k)?,
                        dz: gpu.zeros(rows, fan_out)?,
                    }),
                },
            });
        }
        let n_layers = layers.len();
        let slots = Slots { layers: n_layers };
        let hist = gpu.scoped("allocating histograms", || {
            gpu.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("fusedmlp histograms"),
                size: (n_layers * (HIST_BINS + 2) * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        let first_bad = gpu.scoped("allocating divergence flags", || {
            gpu.device()
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("fusedmlp divergence flags"),
                    contents: bytemuck::cast_slice(&vec![u32::MAX; 3 * n_layers + 1]),
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                })
        })?;
        let step_state = gpu.scoped("allocating the step state", || {
            gpu.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("fusedmlp step state"),
                size: 16,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        let log_size = log_bytes(&slots, n_layers);
        let log_slots = (0..LOG_SLOTS)
            .map(|_| {
                gpu.scoped("allocating a log buffer", || {
                    gpu.device().create_buffer(&wgpu::BufferDescriptor {
                        label: Some("fusedmlp log"),
                        size: log_size,
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    })
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Trainer {
            row_stats: gpu.zeros(rows, 2)?,
            step_stats: gpu.zeros(1, 2)?,
            train_totals: gpu.zeros(1, 3)?,
            val_totals: gpu.zeros(1, 3)?,
            norms: gpu.zeros(1, slots.count())?,
            summary: gpu.zeros(n_layers, 4)?,
            gpu,
            model,
            config,
            train_x,
            train_y,
            train_rows: train.len(),
            val_x,
            val_y,
            val_rows,
            perm,
            identity_perm,
            x_batch,
            y_batch,
            layers,
            hist,
            step_state,
            slots,
            step: 0,
            log_slots,
            pending: Vec::new(),
            logs: Vec::new(),
            logs_dropped: 0,
            readbacks: 0,
            last_record_seconds: 0.0,
            epoch: 0,
            step_in_epoch: 0,
            first_bad,
            data_fingerprint: data_fingerprint(train),
            checkpointing: None,
            last_checkpoint: None,
            standardizer: None,
            stop_at: None,
        })
    }

    /// Optimizer steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// Steps per epoch (full batches only).
    pub fn steps_per_epoch(&self) -> usize {
        self.train_rows / self.config.batch_size
    }

    fn total_steps(&self) -> u64 {
        (self.steps_per_epoch() * self.config.epochs) as u64
    }

    fn record_gather(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        (x, y): (&GpuTensor, &GpuTensor),
        perm: &wgpu::Buffer,
        offset: usize,
        rows: usize,
    ) -> Result<(), Error> {
        let gpu = &self.gpu;
        let pipeline = gpu.pipeline(
            "gather",
            "gather",
            || shader::GATHER_WGSL.to_string(),
            false,
        )?;
        let cols = x.cols();
        let params = gpu.params(&U4 {
            a: rows as u32,
            b: cols as u32,
            c: offset as u32,
            d: 0,
        })?;
        gpu.scoped("recording gather", || {
            record_pass(
                gpu,
                encoder,
                "gather",
                &pipeline,
                &[
                    (0, &params),
                    (1, x.buffer()),
                    (2, y.buffer()),
                    (3, perm),
                    (4, self.x_batch.buffer()),
                    (5, self.y_batch.buffer()),
                ],
                ((cols as u32).div_ceil(64), rows as u32, 1),
            )
        })
    }

    /// Records the forward pass of `rows` batch rows (training buffers),
    /// keeping z for every layer when `keep_all_z`; dropout only when `training`.
    fn record_forward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        rows: usize,
        keep_all_z: bool,
        training: bool,
    ) -> Result<(), Error> {
        let mut input = self.x_batch.prefix_rows(rows)?;
        for (l, layer) in self.layers.iter().enumerate() {
            let keep = keep_all_z || layer.act.saved() == Saved::PreActivation;
            let y = layer.y.prefix_rows(rows)?;
            let z = layer.z.prefix_rows(rows)?;
            let bufs = match &layer.norm {
                Some(st) => Some(st.buffers.prefix_rows(rows)?),
                None => None,
            };
            let y = self.model.record_layer_forward(
                encoder,
                l,
                &input,
                (&y, &z, keep),
                bufs.as_ref(),
                training,
            )?;
            let dropout = layer.dropout && training;
            input = match &layer.out {
                Some(out) if dropout || layer.residual => {
                    let out = out.prefix_rows(rows)?;
                    self.record_regularize(
                        encoder,
                        "regularize_forward",
                        layer,
                        dropout,
                        &[(1, y.buffer()), (2, input.buffer()), (3, out.buffer())],
                        y.len(),
                    )?;
                    out
                }
                _ => y,
            };
        }
        Ok(())
    }

    /// Records one of the dropout/residual kernels over `len` elements.
    fn record_regularize(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        entry: &str,
        layer: &LayerState,
        dropout: bool,
        buffers: &[(u32, &wgpu::Buffer)],
        len: usize,
    ) -> Result<(), Error> {
        let gpu = &self.gpu;
        let mc = &self.model.config;
        let pipeline = gpu.pipeline(
            "regularize",
            entry,
            || shader::REGULARIZE_WGSL.to_string(),
            false,
        )?;
        let (x, y, row_stride) = grid_1d(gpu, len as u64, 256)?;
        let (scale, alpha_prime, a, b) = mc.dropout_constants();
        let params = gpu.params(&RegParams {
            len: len as u32,
            row_stride,
            seed: layer.mask_seed,
            step: self.step as u32,
            drop_threshold: if dropout {
                mc.drop_threshold().max(1)
            } else {
                0
            },
            residual: layer.residual as u32,
            alpha: mc.alpha_dropout as u32,
            pad: 0,
            scale: scale as f32,
            alpha_prime: alpha_prime as f32,
            affine_a: a as f32,
            affine_b: b as f32,
        })?;
        let mut bindings = vec![(0, &params)];
        bindings.extend_from_slice(buffers);
        gpu.scoped("recording dropout or a residual", || {
            record_pass(gpu, encoder, entry, &pipeline, &bindings, (x, y, 1))
        })
    }

    fn record_loss(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        rows: usize,
        totals: &GpuTensor,
    ) -> Result<(), Error> {
        let gpu = &self.gpu;
        let head = self.model.config.head;
        let classes = self.model.config.output;
        let last = self.layers.last().expect("at least one layer");
        let loss_src = || format!("{}\n{}", shader::ACTIVATIONS_WGSL, shader::LOSS_WGSL);
        let fwd = gpu.pipeline("loss", "loss_forward_backward", loss_src, false)?;
        let params = gpu.params(&LossParams {
            rows: rows as u32,
            classes: classes as u32,
            kind: head.kind(),
            grad_scale: head.grad_scale(rows, classes),
        })?;
        let reduce = gpu.pipeline("loss", "loss_reduce", loss_src, false)?;
        let rparams = gpu.params(&U4 {
            a: rows as u32,
            b: 0,
            c: 0,
            d: 0,
        })?;
        gpu.scoped("recording the loss", || {
            record_pass(
                gpu,
                encoder,
                "loss",
                &fwd,
                &[
                    (0, &params),
                    (1, last.y.buffer()),
                    (2, self.y_batch.buffer()),
                    (3, last.dy.buffer()),
                    (4, self.row_stats.buffer()),
                ],
                ((rows as u32).div_ceil(64), 1, 1),
            );
            record_pass(
                gpu,
                encoder,
                "loss_reduce",
                &reduce,
                &[
                    (8, &rparams),
                    (5, self.row_stats.buffer()),
                    (6, self.step_stats.buffer()),
                    (7, totals.buffer()),
                ],
                (1, 1, 1),
            );
        })
    }

    fn record_sumsq(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        a: &GpuTensor,
        b: Option<&GpuTensor>,
        slot: u32,
    ) -> Result<(), Error> {
        let gpu = &self.gpu;
        let pipeline = gpu.pipeline("stats", "sumsq", || shader::STATS_WGSL.to_string(), false)?;
        let params = gpu.params(&U4 {
            a: a.len() as u32,
            b: slot,
            c: b.is_some() as u32,
            d: 0,
        })?;
        let other = b.unwrap_or(a);
        gpu.scoped("recording a norm", || {
            record_pass(
                gpu,
                encoder,
                "sumsq",
                &pipeline,
                &[
                    (0, &params),
                    (1, a.buffer()),
                    (2, other.buffer()),
                    (3, self.norms.buffer()),
                ],
                (1, 1, 1),
            )
        })
    }

    fn record_check_finite(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        values: &GpuTensor,
        slot: usize,
    ) -> Result<(), Error> {
        let gpu = &self.gpu;
        let pipeline = gpu.pipeline(
            "stats",
            "check_finite",
            || shader::STATS_WGSL.to_string(),
            false,
        )?;
        // Enough workgroups to use every core; each invocation strides.
        let groups = (values.len() as u32).div_ceil(256).clamp(1, 64);
        let params = gpu.params(&U4 {
            a: values.len() as u32,
            b: slot as u32,
            c: self.step.min(u32::MAX as u64 - 1) as u32,
            d: groups * 256,
        })?;
        gpu.scoped("recording a finiteness check", || {
            record_pass(
                gpu,
                encoder,
                "check_finite",
                &pipeline,
                &[(7, &params), (8, values.buffer()), (9, &self.first_bad)],
                (groups, 1, 1),
            )
        })
    }

    fn record_optimizer(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        param: &GpuTensor,
        grad: &GpuTensor,
        state: &(GpuTensor, GpuTensor),
    ) -> Result<(), Error> {
        let gpu = &self.gpu;
        let (entry, mut p) = match self.config.optimizer {
            Optimizer::Sgd {
                momentum,
                nesterov,
                weight_decay,
            } => (
                "sgd",
                OptimParams {
                    nesterov: nesterov as u32,
                    momentum,
                    weight_decay,
                    ..bytemuck::Zeroable::zeroed()
                },
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
            } => (
                "adam",
                OptimParams {
                    decoupled: matches!(self.config.optimizer, Optimizer::AdamW { .. }) as u32,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                    ..bytemuck::Zeroable::zeroed()
                },
            ),
            Optimizer::RmsProp {
                alpha,
                eps,
                momentum,
                weight_decay,
            } => (
                "rmsprop",
                OptimParams {
                    alpha,
                    eps,
                    momentum,
                    weight_decay,
                    ..bytemuck::Zeroable::zeroed()
                },
            ),
        };
        let (x, y, row_stride) = grid_1d(gpu, param.len() as u64, 256)?;
        p.len = param.len() as u32;
        p.row_stride = row_stride;
        let pipeline = gpu.pipeline(
            "optimizer",
            entry,
            || shader::OPTIMIZER_WGSL.to_string(),
            false,
        )?;
        let params = gpu.params(&p)?;
        let mut bindings: Vec<(u32, &wgpu::Buffer)> = vec![
            (0, &params),
            (1, &self.step_state),
            (2, param.buffer()),
            (3, grad.buffer()),
        ];
        match entry {
            "sgd" => bindings.push((4, state.0.buffer())),
            "adam" => {
                bindings.push((4, state.0.buffer()));
                bindings.push((5, state.1.buffer()));
            }
            _ => {
                bindings.push((4, state.0.buffer()));
                bindings.push((5, state.1.buffer()));
            }
        }
        gpu.scoped("recording an optimizer step", || {
            record_pass(gpu, encoder, entry, &pipeline, &bindings, (x, y, 1))
        })
    }

    fn record_diagnostics(&self, encoder: &mut wgpu::CommandEncoder) -> Result<(), Error> {
        let gpu = &self.gpu;
        gpu.scoped("clearing histograms", || {
            encoder.clear_buffer(&self.hist, 0, None)
        })?;
        for layer in &self.layers {
            let src = || shader::assemble(shader::DIAGNOSTICS_WGSL, Some(layer.act));
            let key = format!("diagnostics[{}]", layer.act);
            let columns = gpu.pipeline(&key, "column_stats", src, false)?;
            let summarize = gpu.pipeline(&key, "summarize", src, false)?;
            let cols = layer.y.cols();
            let params = &layer.diag_params;
            gpu.scoped("recording diagnostics", || {
                record_pass(
                    gpu,
                    encoder,
                    "column_stats",
                    &columns,
                    &[
                        (0, params),
                        (1, layer.z.buffer()),
                        (2, layer.y.buffer()),
                        (3, layer.columns.buffer()),
                        (4, &self.hist),
                    ],
                    ((cols as u32).div_ceil(64), 1, 1),
                );
                record_pass(
                    gpu,
                    encoder,
                    "summarize",
                    &summarize,
                    &[
                        (0, params),
                        (5, layer.columns.buffer()),
                        (6, self.summary.buffer()),
                    ],
                    (1, 1, 1),
                );
            })?;
        }
        Ok(())
    }

    /// Records and submits one optimizer step on the batch starting at
    /// `offset` of the current epoch's order. No readback.
    fn submit_step(&mut self, epoch: usize, offset: usize) -> Result<(), Error> {
        let gpu = self.gpu.clone();
        let b = self.config.batch_size;
        let log = self.step.is_multiple_of(self.config.log_every);
        let lr = self.config.schedule.rate(
            self.config.learning_rate,
            self.step,
            self.total_steps(),
            self.config.warmup_steps,
        );
        let t = (self.step + 1) as i32;
        let (bc1, bc2) = match self.config.optimizer {
            Optimizer::Adam { beta1, beta2, .. } | Optimizer::AdamW { beta1, beta2, .. } => (
                (1.0 - (beta1 as f64).powi(t)) as f32,
                (1.0 - (beta2 as f64).powi(t)) as f32,
            ),
            _ => (1.0, 1.0),
        };
        gpu.scoped("writing the step state", || {
            gpu.queue().write_buffer(
                &self.step_state,
                0,
                bytemuck::cast_slice(&[lr, bc1, bc2, 1.0f32]),
            )
        })?;
        let self_start = std::time::Instant::now();
        let mut encoder = gpu.device().create_command_encoder(&Default::default());
        self.record_gather(
            &mut encoder,
            (&self.train_x, &self.train_y),
            &self.perm,
            offset,
            b,
        )?;
        self.record_forward(&mut encoder, b, log, true)?;
        self.record_loss(&mut encoder, b, &self.train_totals)?;
        // Backward, last layer first. Each layer's `dy` holds dL/d(its
        // output as the next layer sees it).
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let params = &self.model.layers[l];
            let input = if l == 0 {
                &self.x_batch
            } else {
                self.layer_output(l - 1)
            };
            let saved = if layer.act.saved() == Saved::PreActivation {
                &layer.z
            } else {
                &layer.y
            };
            let dy = match &layer.d_dropped {
                Some(dd) if layer.dropout => {
                    self.record_regularize(
                        &mut encoder,
                        "dropout_backward",
                        layer,
                        true,
                        &[(4, layer.dy.buffer()), (5, dd.buffer())],
                        layer.dy.len(),
                    )?;
                    dd
                }
                _ => &layer.dy,
            };
            let dx = if l == 0 {
                None
            } else {
                Some(&self.layers[l - 1].dy)
            };
            // LayerNorm: its backward gives dL/d(its input) and the scale and
            // shift gradients; before the activation, the linear part then
            // runs as identity.
            let (act, dy) = match (&layer.norm, self.model.norms[l].as_ref()) {
                (Some(st), Some((g, _))) => {
                    gpu.record_norm_backward(
                        &mut encoder,
                        layer.act,
                        st.before,
                        g,
                        dy,
                        &st.buffers,
                        (&st.dgamma, &st.dbeta),
                    )?;
                    let act = if st.before {
                        Activation::Identity
                    } else {
                        layer.act
                    };
                    (act, &st.buffers.d_in)
                }
                _ => (layer.act, dy),
            };
            // Learned PReLU: its backward gives dz and the slopes' gradient;
            // the linear part then runs as identity.
            let (act, dy) = match (&layer.slopes, self.model.slopes[l].as_ref()) {
                (Some(st), Some(slopes)) => {
                    gpu.record_prelu_backward(
                        &mut encoder,
                        slopes,
                        &layer.z,
                        dy,
                        &st.dz,
                        &st.units,
                        &st.grad,
                    )?;
                    (Activation::Identity, &st.dz)
                }
                _ => (act, dy),
            };
            gpu.record_linear_backward(
                &mut encoder,
                act,
                input,
                &params.weight,
                saved,
                dy,
                &layer.scratch,
                dx,
                &layer.dw,
                &layer.db,
                None,
            )?;
            if layer.residual {
                let prev = &self.layers[l - 1];
                self.record_regularize(
                    &mut encoder,
                    "residual_backward",
                    layer,
                    false,
                    &[(6, layer.dy.buffer()), (7, prev.dy.buffer())],
                    layer.dy.len(),
                )?;
            }
        }
        let n = self.layers.len();
        if log || self.config.clip_norm.is_some() {
            for (l, layer) in self.layers.iter().enumerate() {
                self.record_sumsq(&mut encoder, &layer.dw, None, self.slots.grad_w(l))?;
                self.record_sumsq(&mut encoder, &layer.db, None, self.slots.grad_b(l))?;
                if let Some(st) = &layer.slopes {
                    self.record_sumsq(&mut encoder, &st.grad, None, self.slots.grad_slope(l))?;
                }
                if let Some(st) = &layer.norm {
                    let (sg, sb) = self.slots.grad_norm(l);
                    self.record_sumsq(&mut encoder, &st.dgamma, None, sg)?;
                    self.record_sumsq(&mut encoder, &st.dbeta, None, sb)?;
                }
            }
            let pipeline = gpu.pipeline(
                "stats",
                "clip_scale",
                || shader::STATS_WGSL.to_string(),
                false,
            )?;
            let params = gpu.params(&ClipParams {
                first: 0,
                count: self.slots.gradients(),
                out_slot: self.slots.global(),
                max_norm: self.config.clip_norm.unwrap_or(0.0),
            })?;
            gpu.scoped("recording clipping", || {
                record_pass(
                    &gpu,
                    &mut encoder,
                    "clip_scale",
                    &pipeline,
                    &[
                        (4, &params),
                        (5, self.norms.buffer()),
                        (6, &self.step_state),
                    ],
                    (1, 1, 1),
                )
            })?;
        }
        if log {
            for (l, params) in self.model.layers.iter().enumerate() {
                self.record_sumsq(&mut encoder, &params.weight, None, self.slots.weight(l))?;
                let prev = &self.layers[l].w_prev;
                gpu.scoped("saving weights", || {
                    encoder.copy_buffer_to_buffer(
                        params.weight.buffer(),
                        0,
                        prev.buffer(),
                        0,
                        (params.weight.len() * 4) as u64,
                    )
                })?;
            }
        }
        for (l, (layer, params)) in self.layers.iter().zip(&self.model.layers).enumerate() {
            self.record_optimizer(&mut encoder, &params.weight, &layer.dw, &layer.w_state)?;
            self.record_optimizer(&mut encoder, &params.bias, &layer.db, &layer.b_state)?;
            if let (Some(st), Some(slopes)) = (&layer.slopes, &self.model.slopes[l]) {
                self.record_optimizer(&mut encoder, slopes, &st.grad, &st.state)?;
            }
            if let (Some(st), Some((g, b))) = (&layer.norm, &self.model.norms[l]) {
                self.record_optimizer(&mut encoder, g, &st.dgamma, &st.gamma_state)?;
                self.record_optimizer(&mut encoder, b, &st.dbeta, &st.beta_state)?;
            }
        }
        // Divergence detection: where a NaN or infinity first appears.
        for (l, (layer, params)) in self.layers.iter().zip(&self.model.layers).enumerate() {
            self.record_check_finite(&mut encoder, &layer.y, 3 * l)?;
            self.record_check_finite(&mut encoder, &layer.dw, 3 * l + 1)?;
            self.record_check_finite(&mut encoder, &params.weight, 3 * l + 2)?;
        }
        self.record_check_finite(&mut encoder, &self.row_stats, 3 * n)?;
        let mut pending = None;
        if log {
            for (l, params) in self.model.layers.iter().enumerate() {
                self.record_sumsq(
                    &mut encoder,
                    &params.weight,
                    Some(&self.layers[l].w_prev),
                    self.slots.update(l),
                )?;
            }
            self.record_diagnostics(&mut encoder)?;
            let slot = self.free_log_slot()?;
            self.record_log_copy(&mut encoder, &self.log_slots[slot])?;
            pending = Some(slot);
        }
        let commands = encoder.finish();
        self.last_record_seconds = self_start.elapsed().as_secs_f64();
        gpu.submit("a training step", vec![commands])?;
        if let Some(slot) = pending {
            let ready = Arc::new(AtomicBool::new(false));
            let flag = ready.clone();
            self.log_slots[slot]
                .slice(..)
                .map_async(wgpu::MapMode::Read, move |r| {
                    if r.is_ok() {
                        flag.store(true, Ordering::Release);
                    }
                });
            self.pending.push(PendingLog {
                slot,
                ready,
                step: self.step,
                epoch,
                learning_rate: lr,
            });
        }
        self.step += 1;
        Ok(())
    }

    /// Copies step stats, norms, summaries and histograms into one staging buffer.
    fn record_log_copy(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        staging: &wgpu::Buffer,
    ) -> Result<(), Error> {
        let n = self.layers.len();
        let sizes = [
            (self.step_stats.buffer(), 8u64),
            (self.norms.buffer(), (self.slots.count() * 4) as u64),
            (self.summary.buffer(), (n * 16) as u64),
            (&self.hist, (n * (HIST_BINS + 2) * 4) as u64),
        ];
        debug_assert_eq!(
            sizes.iter().map(|s| s.1).sum::<u64>(),
            log_bytes(&self.slots, n)
        );
        let mut offset = 0;
        self.gpu.scoped("copying diagnostics", || {
            for (buf, size) in sizes {
                encoder.copy_buffer_to_buffer(buf, 0, staging, offset, size);
                offset += size;
            }
        })
    }

    /// A log staging buffer no logged step is using; when all are in
    /// flight, waits for them (a logged step never allocates its own).
    fn free_log_slot(&mut self) -> Result<usize, Error> {
        if self.pending.len() >= self.log_slots.len() {
            self.collect_logs(true)?;
        }
        (0..self.log_slots.len())
            .find(|i| self.pending.iter().all(|p| p.slot != *i))
            .ok_or_else(|| Error::GpuWait {
                context: "collecting diagnostics".into(),
                message: "every log buffer is still in flight after waiting".into(),
            })
    }

    /// Collects logged steps whose copies have arrived; with `wait`, all of them.
    fn collect_logs(&mut self, wait: bool) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if wait {
            self.gpu.wait("collecting diagnostics", None)?;
        } else {
            let _ = self.gpu.device().poll(wgpu::PollType::Poll);
        }
        let n = self.layers.len();
        let mut still = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            if !p.ready.load(Ordering::Acquire) {
                if wait {
                    self.gpu.wait_for_flag("collecting diagnostics", &p.ready)?;
                } else {
                    still.push(p);
                    continue;
                }
            }
            let buffer = &self.log_slots[p.slot];
            let bytes = buffer
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::GpuWait {
                    context: "reading diagnostics".into(),
                    message: e.to_string(),
                })?
                .to_vec();
            buffer.unmap();
            self.readbacks += 1;
            self.gpu.count_readback();
            let floats: &[f32] =
                bytemuck::cast_slice(&bytes[..(2 + self.slots.count() + 4 * n) * 4]);
            let hist: &[u32] = bytemuck::cast_slice(&bytes[(2 + self.slots.count() + 4 * n) * 4..]);
            let norms = &floats[2..2 + self.slots.count()];
            let summary = &floats[2 + self.slots.count()..];
            let layers = (0..n)
                .map(|l| {
                    let wn = norms[self.slots.weight(l) as usize].sqrt();
                    LayerDiagnostics {
                        layer: l,
                        weight_grad_norm: norms[self.slots.grad_w(l) as usize].sqrt(),
                        bias_grad_norm: norms[self.slots.grad_b(l) as usize].sqrt(),
                        weight_norm: wn,
                        update_ratio: norms[self.slots.update(l) as usize].sqrt()
                            / wn.max(f32::MIN_POSITIVE),
                        activation_mean: summary[4 * l],
                        activation_std: summary[4 * l + 1],
                        dead_fraction: summary[4 * l + 2],
                        saturated_fraction: summary[4 * l + 3],
                        histogram: hist[l * (HIST_BINS + 2)..(l + 1) * (HIST_BINS + 2)].to_vec(),
                    }
                })
                .collect();
            self.logs.push(StepLog {
                step: p.step,
                epoch: p.epoch,
                loss: floats[0],
                accuracy: floats[1],
                learning_rate: p.learning_rate,
                grad_global_norm: norms[self.slots.global() as usize],
                layers,
            });
        }
        self.pending = still;
        self.logs.sort_by_key(|l| l.step);
        self.logs_dropped += thin_logged_steps(&mut self.logs, self.config.max_logged_steps) as u64;
        Ok(())
    }

    /// Reads the divergence flags (one readback): the earliest non-finite
    /// value, if any.
    pub fn divergence(&mut self) -> Result<Option<Divergence>, Error> {
        let n = self.layers.len();
        let bytes = self
            .gpu
            .read_bytes(&self.first_bad, 0, ((3 * n + 1) * 4) as u64)?;
        self.readbacks += 1;
        let flags: &[u32] = bytemuck::cast_slice(&bytes);
        // Within one step, order the slots as the step computes them:
        // activations first to last layer, the loss, gradients last to
        // first layer, then the updated weights.
        let causal = |slot: usize| -> usize {
            if slot == 3 * n {
                return n;
            }
            let (l, kind) = (slot / 3, slot % 3);
            match kind {
                0 => l,
                1 => n + 1 + (n - 1 - l),
                _ => 2 * n + 1 + l,
            }
        };
        let Some((slot, &step)) = flags
            .iter()
            .enumerate()
            .filter(|(_, &s)| s != u32::MAX)
            .min_by_key(|(slot, &s)| (s, causal(*slot)))
        else {
            return Ok(None);
        };
        let (layer, tensor) = if slot == 3 * n {
            (None, "loss".to_string())
        } else {
            (Some(slot / 3), FINITE_KINDS[slot % 3].to_string())
        };
        Ok(Some(Divergence {
            step: step as u64,
            layer,
            tensor,
            last_good_checkpoint: self
                .last_checkpoint
                .as_ref()
                .filter(|(_, s)| *s <= step as u64)
                .map(|(p, _)| p.clone()),
        }))
    }

    /// Makes [`Trainer::train`] return once `step` steps have been taken
    /// (mid-epoch if need be, with the outcome saying so), as an interrupted
    /// run would; [`Trainer::save_checkpoint`] and [`Trainer::resume`] then
    /// continue it.
    pub fn stop_after(&mut self, step: u64) {
        self.stop_at = Some(step);
    }

    /// Records the feature standardisation applied to the data, so that
    /// checkpoints carry it to evaluation and prediction.
    pub fn set_standardizer(&mut self, standardizer: Option<crate::data::Standardizer>) {
        self.standardizer = standardizer;
    }

    /// Every optimizer state pair in checkpoint order: (weight, bias) of each
    /// layer, then the learned slopes of the layers that have them.
    fn optimizer_tensors(&self) -> Vec<&(GpuTensor, GpuTensor)> {
        let mut v: Vec<&(GpuTensor, GpuTensor)> = self
            .layers
            .iter()
            .flat_map(|l| [&l.w_state, &l.b_state])
            .collect();
        v.extend(
            self.layers
                .iter()
                .filter_map(|l| l.slopes.as_ref().map(|s| &s.state)),
        );
        for n in self.layers.iter().filter_map(|l| l.norm.as_ref()) {
            v.push(&n.gamma_state);
            v.push(&n.beta_state);
        }
        v
    }

    /// The tensor layer `l` hands to the next layer in training.
    fn layer_output(&self, l: usize) -> &GpuTensor {
        let layer = &self.layers[l];
        match (&layer.out, &layer.norm) {
            (Some(out), _) if layer.residual || layer.dropout => out,
            (_, Some(n)) if !n.before => &n.buffers.n,
            _ => &layer.y,
        }
    }

    /// Saves a checkpoint every `every` steps (and at the end) to `path`.
    pub fn set_checkpointing(&mut self, path: impl Into<PathBuf>, every: u64) {
        self.checkpointing = Some((path.into(), every.max(1)));
    }

    /// The model and the full training state, read back from the device.
    pub fn checkpoint(&mut self) -> Result<super::checkpoint::Checkpoint, Error> {
        let params = self.model.parameters()?;
        let slopes = self.model.slope_values()?;
        let norms = self.model.norm_values()?;
        let running = self.model.running_stat_values()?;
        let mut optimizer_state = Vec::new();
        for (a, b) in self.optimizer_tensors() {
            optimizer_state.push((self.gpu.download(a)?, self.gpu.download(b)?));
        }
        let totals = self.gpu.download(&self.train_totals)?;
        self.readbacks += 2 + 2 * optimizer_state.len() as u64 + 1;
        Ok(super::checkpoint::Checkpoint {
            model: self.model.config.clone(),
            params,
            training: Some(super::checkpoint::TrainingState {
                step: self.step,
                epoch: self.epoch,
                step_in_epoch: self.step_in_epoch,
                train_config: self.config.clone(),
                data_fingerprint: self.data_fingerprint,
                epoch_totals: [totals[0], totals[1], totals[2]],
                optimizer_state,
            }),
            standardizer: self.standardizer.clone(),
            slopes,
            norms,
            running,
        })
    }

    /// Saves a checkpoint to `path` now.
    pub fn save_checkpoint(&mut self, path: &Path) -> Result<(), Error> {
        let c = self.checkpoint()?;
        c.save(path)?;
        self.last_checkpoint = Some((path.to_path_buf(), self.step));
        Ok(())
    }

    /// Rebuilds a run from a checkpoint written by [`Trainer::save_checkpoint`]:
    /// the same parameters, optimizer state, step and place in the data
    /// order, so training on continues exactly as if never interrupted.
    /// `epochs` (if given) replaces the saved epoch count.
    pub fn resume(
        gpu: &Gpu,
        checkpoint: &super::checkpoint::Checkpoint,
        train: &Dataset,
        validation: &Dataset,
        epochs: Option<usize>,
    ) -> Result<Trainer, Error> {
        let state = checkpoint.training.as_ref().ok_or_else(|| {
            Error::Config("this checkpoint holds only a model, no training state to resume".into())
        })?;
        if data_fingerprint(train) != state.data_fingerprint {
            return Err(Error::Config(
                "the training data differs from the data the checkpoint was trained on; \
                 resume with the same data, split and seed"
                    .into(),
            ));
        }
        let mut config = state.train_config.clone();
        if let Some(e) = epochs {
            config.epochs = e;
        }
        let model = Mlp::from_parameters_and_slopes(
            gpu,
            checkpoint.model.clone(),
            &checkpoint.params,
            &checkpoint.slopes,
        )?;
        model.set_norms(&checkpoint.norms)?;
        model.set_running_stats(&checkpoint.running)?;
        let mut t = Trainer::new(model, config, train, validation)?;
        let tensors = t.optimizer_tensors();
        if tensors.len() != state.optimizer_state.len() {
            return Err(Error::Config(
                "the checkpoint's optimizer state does not match the model".into(),
            ));
        }
        for ((a, b), (sa, sb)) in tensors.into_iter().zip(&state.optimizer_state) {
            gpu.write(a, sa)?;
            gpu.write(b, sb)?;
        }
        gpu.write(&t.train_totals, &state.epoch_totals)?;
        t.standardizer = checkpoint.standardizer.clone();
        t.step = state.step;
        t.epoch = state.epoch;
        t.step_in_epoch = state.step_in_epoch;
        Ok(t)
    }

    /// Loss and accuracy on the validation split (evaluation mode), as
    /// (loss, accuracy); one readback, together with the training totals.
    fn evaluate_and_read_totals(&mut self) -> Result<([f32; 3], [f32; 3]), Error> {
        let gpu = self.gpu.clone();
        let mut encoder = gpu.device().create_command_encoder(&Default::default());
        gpu.scoped("clearing totals", || {
            encoder.clear_buffer(self.val_totals.buffer(), 0, None)
        })?;
        let chunk = self.config.batch_size;
        let mut start = 0;
        while start < self.val_rows {
            let rows = chunk.min(self.val_rows - start);
            self.record_gather(
                &mut encoder,
                (&self.val_x, &self.val_y),
                &self.identity_perm,
                start,
                rows,
            )?;
            self.record_forward(&mut encoder, rows, false, false)?;
            self.record_loss(&mut encoder, rows, &self.val_totals)?;
            start += rows;
        }
        gpu.submit("evaluation", vec![encoder.finish()])?;
        let t = gpu.download(&self.train_totals)?;
        let v = gpu.download(&self.val_totals)?;
        self.readbacks += 2;
        Ok(([t[0], t[1], t[2]], [v[0], v[1], v[2]]))
    }

    /// Trains for the configured epochs. `on_step` is called after every
    /// submitted step with (steps taken, total steps); `on_epoch` after every
    /// epoch. Stops early (with the outcome saying why) if the loss becomes
    /// non-finite.
    pub fn train(
        &mut self,
        label: &str,
        mut on_step: impl FnMut(u64, u64),
        mut on_epoch: impl FnMut(&EpochLog),
    ) -> Result<RunReport, Error> {
        let start = Instant::now();
        let steps_per_epoch = self.steps_per_epoch();
        let total = self.total_steps();
        let mut epochs = Vec::new();
        let mut outcome = "completed".to_string();
        let mut divergence = None;
        'epochs: while self.epoch < self.config.epochs {
            let epoch = self.epoch;
            let order = shuffle_order(self.config.seed, epoch, self.train_rows);
            self.gpu.scoped("writing the epoch order", || {
                self.gpu
                    .queue()
                    .write_buffer(&self.perm, 0, bytemuck::cast_slice(&order))
            })?;
            if self.step_in_epoch == 0 {
                let gpu = self.gpu.clone();
                let mut clear = gpu.device().create_command_encoder(&Default::default());
                gpu.scoped("clearing totals", || {
                    clear.clear_buffer(self.train_totals.buffer(), 0, None)
                })?;
                gpu.submit("clearing totals", vec![clear.finish()])?;
            }
            while self.step_in_epoch < steps_per_epoch {
                let logged = self.step.is_multiple_of(self.config.log_every);
                self.submit_step(epoch, self.step_in_epoch * self.config.batch_size)?;
                self.step_in_epoch += 1;
                self.collect_logs(false)?;
                on_step(self.step, total);
                if logged {
                    // The flags ride on logged steps' readbacks: stop early.
                    if let Some(d) = self.divergence()? {
                        divergence = Some(d);
                        break 'epochs;
                    }
                }
                if self.stop_at == Some(self.step) {
                    outcome = format!("stopped after step {}", self.step);
                    break 'epochs;
                }
                if let Some((path, every)) = self.checkpointing.clone() {
                    if self.step.is_multiple_of(every) {
                        if let Some(d) = self.divergence()? {
                            divergence = Some(d);
                            break 'epochs;
                        }
                        self.save_checkpoint(&path)?;
                    }
                }
            }
            let (t, v) = self.evaluate_and_read_totals()?;
            self.collect_logs(true)?;
            let log = EpochLog {
                epoch,
                train_loss: t[0] / t[2].max(1.0),
                train_accuracy: t[1] / t[2].max(1.0),
                val_loss: v[0] / v[2].max(1.0),
                val_accuracy: v[1] / v[2].max(1.0),
                elapsed_seconds: start.elapsed().as_secs_f64(),
            };
            on_epoch(&log);
            epochs.push(log);
            if let Some(d) = self.divergence()? {
                divergence = Some(d);
                break;
            }
            self.epoch += 1;
            self.step_in_epoch = 0;
        }
        self.collect_logs(true)?;
        if let Some(d) = &divergence {
            outcome = d.to_string();
            // Diagnostics logged once values were non-finite describe the
            // blow-up, not the net: the report keeps the steps before it.
            self.logs.retain(|l| l.step < d.step);
        } else if let (Some((path, _)), None) = (self.checkpointing.clone(), self.stop_at) {
            self.save_checkpoint(&path)?;
        }
        let wall = start.elapsed().as_secs_f64();
        Ok(RunReport {
            label: label.to_string(),
            config: serde_json::json!({
                "model": self.model.config,
                "init": self.model.config.init().to_string(),
                "train": self.config,
            }),
            adapter: self.gpu.describe(),
            seed: self.config.seed,
            epochs,
            steps: std::mem::take(&mut self.logs),
            logged_steps_rule: format!(
                "diagnostics logged at the first step and every {} steps; the report keeps at \
                 most {} logged steps: past that, every second entry is dropped (older entries \
                 grow sparser), always keeping the first and the last, the one with the largest \
                 global gradient norm and any with a non-finite loss or gradient norm",
                self.config.log_every, self.config.max_logged_steps
            ),
            logged_steps_dropped: self.logs_dropped,
            wall_seconds: wall,
            samples_per_second: (self.step as f64 * self.config.batch_size as f64) / wall.max(1e-9),
            total_steps: self.step,
            readbacks: self.readbacks,
            outcome,
            divergence,
        })
    }

    /// Runs `steps` optimizer steps over the epoch-0 order (wrapping), with
    /// no evaluation: for tests and benchmarks. Waits for the GPU at the end.
    pub fn run_steps(&mut self, steps: usize) -> Result<(), Error> {
        let per_epoch = self.steps_per_epoch().max(1);
        for s in 0..steps {
            self.submit_step(0, (s % per_epoch) * self.config.batch_size)?;
            self.collect_logs(false)?;
        }
        self.gpu.wait("finishing steps", None)?;
        self.collect_logs(true)
    }

    /// The logged steps collected so far.
    pub fn logs(&self) -> &[StepLog] {
        &self.logs
    }

    /// Readbacks made by this trainer.
    pub fn readbacks(&self) -> u64 {
        self.readbacks
    }

    /// Times the host's recording of one step (building the command buffer,
    /// before the submit) and the whole step: returns (median host seconds to
    /// record a step, mean seconds per step) over `steps` non-logged steps.
    /// For benchmarks: it takes real optimizer steps (the model changes) and
    /// leaves the step counter where they end.
    pub fn time_steps(&mut self, steps: usize) -> Result<(f64, f64), Error> {
        let saved_log_every = self.config.log_every;
        self.config.log_every = u64::MAX;
        self.step = 1;
        let result = (|| {
            self.run_steps(2)?; // warm-up (pipelines compiled, autotune done)
            let mut host = Vec::new();
            let start = Instant::now();
            for s in 0..steps {
                let per_epoch = self.steps_per_epoch().max(1);
                self.submit_step(0, (s % per_epoch) * self.config.batch_size)?;
                host.push(self.last_record_seconds);
            }
            self.gpu.wait("timing steps", None)?;
            let per_step = start.elapsed().as_secs_f64() / steps.max(1) as f64;
            Ok((crate::gpu::timing::median(&host), per_step))
        })();
        self.config.log_every = saved_log_every;
        result
    }
}
