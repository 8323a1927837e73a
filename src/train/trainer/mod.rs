//! The training loop on the GPU. Each optimizer step is one command
//! submission with no readback: the batch is gathered on the device from
//! the resident data set, the loss and its gradient are fused, clipping
//! scales come from a GPU norm, and the diagnostics of logged steps are
//! reductions in the same submission, copied to a staging buffer and read
//! back asynchronously.
//!
//! The files: this one holds the trainer's state and its construction;
//! `step.rs` records and submits one step, `record.rs` the passes a step is
//! made of, `logs.rs` collects logged steps' diagnostics and the divergence
//! flags, `state.rs` saves and resumes checkpoints, `run.rs` is the loop.

use std::path::{Path, PathBuf};
use web_time::Instant;

use wgpu::util::DeviceExt;

use super::report::{
    thin_logged_steps, Divergence, EpochLog, LayerDiagnostics, RunReport, StepLog, HIST_BINS,
    HIST_MAX, HIST_MIN,
};
use crate::activation::{Activation, Saved};
use crate::data::Dataset;
use crate::error::Error;
use crate::gpu::elementwise::{grid_1d, record_pass, RegParams};
use crate::gpu::linear::LinearScratch;
use crate::gpu::tensor::Bind;
use crate::gpu::{shader, Gpu, GpuTensor, StepPlan};
use crate::nn::{Mlp, Optimizer, ParamKind};

mod fused;
mod logs;
mod record;
mod run;
mod state;
mod step;
#[cfg(test)]
mod tests;

pub use super::config::{shuffle_order, TrainConfig};
use logs::*;
pub use state::data_fingerprint;

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
    chunks: u32,
    pad0: u32,
    nesterov: u32,
    decoupled: u32,
    momentum: f32,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    alpha: f32,
    pad1: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ClipParams {
    first: u32,
    count: u32,
    out_slot: u32,
    max_norm: f32,
}

/// A kind of step, by its plan: whether it logs, and into which staging
/// slot.
type StepKind = (bool, Option<usize>);

/// What the host writes before each step (one small write): the
/// optimizer's learning rate and bias corrections, the clipping scale (1
/// until the clipping kernel sets it), the step number (for the finite
/// check's flags and the dropout masks), where the batch starts in the
/// epoch's order (for the gather) and the training split's last row (a
/// gathering forward clamps the rows it reads to it).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct StepState {
    lr: f32,
    bias_correction1: f32,
    bias_correction2: f32,
    clip_scale: f32,
    step: u32,
    batch_offset: u32,
    last_row: u32,
    pad: u32,
}

impl StepState {
    fn new(
        lr: f32,
        bias_correction1: f32,
        bias_correction2: f32,
        step: u64,
        batch_offset: usize,
        last_row: usize,
    ) -> [StepState; 1] {
        [StepState {
            lr,
            bias_correction1,
            bias_correction2,
            clip_scale: 1.0,
            step: step.min(u32::MAX as u64 - 1) as u32,
            batch_offset: batch_offset as u32,
            last_row: last_row as u32,
            pad: 0,
        }]
    }
}

/// The diagnostics launches of `layers`: the hidden layers that share an
/// activation in one (their z and y in the arenas `zs` and `acts`, at
/// `z_starts` and `act_starts`), any other layer in one of its own; and
/// the per-column scratch they share.
fn diag_groups(
    gpu: &Gpu,
    layers: &[LayerState],
    (zs, z_starts): (&GpuTensor, &[usize]),
    (acts, act_starts): (&[GpuTensor; 2], &[(usize, usize)]),
    rows: usize,
) -> Result<(Vec<DiagGroup>, GpuTensor), Error> {
    let u32s = |v: usize| {
        u32::try_from(v).map_err(|_| {
            Error::Config("a layer is too large for the diagnostics' u32 offsets".into())
        })
    };
    let mut columns_at = 0usize;
    let mut groups: Vec<(Activation, Vec<LayerDiag>, DiagBuffers)> = Vec::new();
    for (l, layer) in layers.iter().enumerate() {
        let cols = layer.y.cols();
        let (z_offset, y_offset, y_parity, buffers) = match (z_starts.get(l), act_starts.get(l)) {
            (Some(&z), Some(&(parity, y))) => (z, y, parity, DiagBuffers::Arenas),
            _ => (0, 0, 0, DiagBuffers::Own(l)),
        };
        let entry = LayerDiag {
            rows: u32s(rows)?,
            cols: u32s(cols)?,
            saturation_threshold: if layer.act.saturates() {
                (0.01 * max_abs_derivative(layer.act)) as f32
            } else {
                0.0
            },
            hist_offset: u32s(l * (HIST_BINS + 2))?,
            hist_min: HIST_MIN,
            hist_max: HIST_MAX,
            hist_bins: HIST_BINS as u32,
            summary_offset: u32s(4 * l)?,
            z_offset: u32s(z_offset)?,
            y_offset: u32s(y_offset)?,
            y_parity: y_parity as u32,
            columns_offset: u32s(columns_at)?,
        };
        columns_at += 5 * cols;
        match groups.iter_mut().find(|g| {
            g.0 == layer.act && g.2 == DiagBuffers::Arenas && buffers == DiagBuffers::Arenas
        }) {
            Some(g) => g.1.push(entry),
            None => groups.push((layer.act, vec![entry], buffers)),
        }
    }
    let groups = groups
        .into_iter()
        .map(|(act, entries, buffers)| {
            let (z, y) = match buffers {
                DiagBuffers::Arenas => (zs.clone(), acts.clone()),
                DiagBuffers::Own(l) => {
                    let layer = &layers[l];
                    (layer.z.clone(), [layer.y.clone(), layer.y.clone()])
                }
            };
            let table = gpu.table("the diagnostics table", &entries)?;
            Ok(DiagGroup {
                act,
                table,
                layers: entries.len() as u32,
                widest: entries.iter().map(|e| e.cols).max().unwrap_or(1),
                z,
                y,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok((groups, gpu.zeros(1, columns_at.max(1))?))
}

/// Where a diagnostics group's layers keep z and y.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DiagBuffers {
    /// In the hidden layers' arenas.
    Arenas,
    /// In layer `l`'s own buffers.
    Own(usize),
}

/// An arena segment whose sum of squares the norm passes
/// (`shaders/stats.wgsl`) compute; `offset` is a multiple of 4 (the passes
/// read vec4s), as every tensor's offset in the arena is.
#[derive(Clone, Copy)]
struct NormSegment {
    offset: u32,
    len: u32,
    slot: u32,
    /// 0: the gradient; 1: the weight before the update; 2: the update.
    source: u32,
}

/// Floats one invocation of `sumsq_chunks` sums: small enough that the main
/// job's tensors split into a few hundred chunks (work for every core of a
/// software adapter), large enough that a segment's chunk sums stay few.
const NORM_CHUNK: u32 = 512;

/// The norm passes' tables, made once: every segment cut into chunks of
/// at most [`NORM_CHUNK`] floats (`[offset, len, source, 0]`), each
/// segment's run of chunks (`[first, count, slot, 0]`), and the chunks'
/// sums.
struct NormSegments {
    chunks: wgpu::Buffer,
    chunk_count: u32,
    segments: wgpu::Buffer,
    count: u32,
    chunk_sums: GpuTensor,
}

impl NormSegments {
    fn new(gpu: &Gpu, what: &str, segments: &[NormSegment]) -> Result<NormSegments, Error> {
        let mut chunks: Vec<[u32; 4]> = Vec::new();
        let mut runs: Vec<[u32; 4]> = Vec::new();
        // Chunks of one source side by side, so neighbouring invocations
        // take the same branch (a segment's chunks stay one run).
        let mut by_source = segments.to_vec();
        by_source.sort_by_key(|s| s.source);
        for s in &by_source {
            let first = chunks.len() as u32;
            for start in (0..s.len).step_by(NORM_CHUNK as usize) {
                chunks.push([s.offset + start, NORM_CHUNK.min(s.len - start), s.source, 0]);
            }
            runs.push([first, chunks.len() as u32 - first, s.slot, 0]);
        }
        // An empty table cannot be bound: one empty chunk and run.
        if chunks.is_empty() {
            chunks.push([0; 4]);
        }
        Ok(NormSegments {
            chunks: gpu.table(&format!("{what} (chunks)"), &chunks)?,
            chunk_count: chunks.len() as u32,
            segments: gpu.table(what, &runs)?,
            count: runs.len() as u32,
            chunk_sums: gpu.zeros(1, chunks.len())?,
        })
    }
}

/// The norm segments of every tensor in `layout`, each to its slot.
fn norm_segments(
    layout: &crate::nn::ParamLayout,
    slots: &Slots,
) -> Result<Vec<NormSegment>, Error> {
    let mut out = Vec::new();
    for e in layout.entries() {
        let l = e.layer;
        let grad_slot = match e.kind {
            ParamKind::Weight => slots.grad_w(l),
            ParamKind::Bias => slots.grad_b(l),
            ParamKind::Slopes => slots.grad_slope(l),
            ParamKind::NormScale => slots.grad_norm(l).0,
            ParamKind::NormShift => slots.grad_norm(l).1,
        };
        let (offset, len) = match (u32::try_from(e.offset), u32::try_from(e.len())) {
            (Ok(o), Ok(n)) => (o, n),
            _ => {
                return Err(Error::Config(
                    "the parameter arena is too large for u32 offsets".into(),
                ))
            }
        };
        let segment = |slot, source| NormSegment {
            offset,
            len,
            slot,
            source,
        };
        out.push(segment(grad_slot, 0));
        if e.kind == ParamKind::Weight {
            out.push(segment(slots.weight(l), 1));
            out.push(segment(slots.update(l), 2));
        }
    }
    Ok(out)
}

/// The finite checks' chunk tables, made once: the optimizer's over the
/// arenas (`shaders/optimizer.wgsl`, each chunk a run of one layer's
/// tensors) and the activations' (`shaders/finite.wgsl`, each chunk a run
/// of one hidden layer's output, the logits or the row losses). One
/// workgroup per chunk, so no kernel searches for a value's layer.
struct FiniteCheck {
    /// `[start, end, 3 l, 0]` in vec4s of the arena.
    arena_chunks: wgpu::Buffer,
    arena_count: u32,
    /// `[start, end, slot, buffer]` (see `shaders/finite.wgsl`).
    chunks: wgpu::Buffer,
    count: u32,
}

/// Elements one workgroup of the finite check covers (64 invocations, 4
/// elements each).
const CHUNK: usize = 256;
/// vec4s of the arena one workgroup of the optimizer updates (64
/// invocations, 16 each, `shaders/optimizer.wgsl`): fewer, longer
/// workgroups (on SwiftShader the main job's SGD dispatch took 0.97 ms
/// instead of 1.15 with 4 a piece).
const OPTIM_CHUNK: usize = 1024;

impl FiniteCheck {
    fn new(
        gpu: &Gpu,
        layout: &crate::nn::ParamLayout,
        act_starts: &[(usize, usize)],
        shapes: &[(usize, usize)],
        rows: usize,
        (logits, losses): (usize, usize),
    ) -> Result<FiniteCheck, Error> {
        let u32s = |v: usize| {
            u32::try_from(v).map_err(|_| {
                Error::Config("a tensor is too large for the finite check's u32 indices".into())
            })
        };
        // Splits [start, end) into chunks of `size`.
        let split =
            |out: &mut Vec<[u32; 4]>, (start, end): (usize, usize), slot, buffer, size: usize| {
                let mut at = start;
                while at < end {
                    let stop = (at + size).min(end);
                    out.push([u32s(at)?, u32s(stop)?, slot, buffer]);
                    at = stop;
                }
                Ok::<(), Error>(())
            };
        let starts = layout.layer_starts();
        let mut arena = Vec::new();
        for l in 0..starts.len() - 1 {
            split(
                &mut arena,
                (starts[l] / 4, starts[l + 1] / 4),
                u32s(3 * l)?,
                0,
                OPTIM_CHUNK,
            )?;
        }
        let mut chunks = Vec::new();
        for (l, &(parity, at)) in act_starts.iter().enumerate() {
            let len = rows * shapes[l].1;
            split(
                &mut chunks,
                (at / 4, (at + len).div_ceil(4)),
                u32s(3 * l)?,
                parity as u32,
                CHUNK,
            )?;
        }
        let n = shapes.len();
        split(&mut chunks, (0, logits), u32s(3 * (n - 1))?, 2, CHUNK)?;
        split(&mut chunks, (0, losses), u32s(3 * n)?, 3, CHUNK)?;
        Ok(FiniteCheck {
            arena_count: u32s(arena.len())?,
            arena_chunks: gpu.table("the optimizer's chunks", &arena)?,
            count: u32s(chunks.len())?,
            chunks: gpu.table("the finite check's chunks", &chunks)?,
        })
    }
}

/// One layer's entry in a diagnostics launch (`shaders/diagnostics.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LayerDiag {
    rows: u32,
    cols: u32,
    saturation_threshold: f32,
    hist_offset: u32,
    hist_min: f32,
    hist_max: f32,
    hist_bins: u32,
    summary_offset: u32,
    z_offset: u32,
    y_offset: u32,
    y_parity: u32,
    columns_offset: u32,
}

/// Layers whose diagnostics one launch computes (the hidden layers, which
/// share an activation and whose outputs and pre-activations lie in the
/// arenas; the output layer), made once.
struct DiagGroup {
    act: Activation,
    /// One [`LayerDiag`] per layer.
    table: wgpu::Buffer,
    layers: u32,
    widest: u32,
    /// What `z` and `y0`/`y1` bind.
    z: GpuTensor,
    y: [GpuTensor; 2],
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

impl LayerState {
    /// What the layer's backward reads `f'` from: the pre-activation, or
    /// the output for activations whose derivative follows from it.
    fn saved(&self) -> &GpuTensor {
        if self.act.saved() == Saved::PreActivation {
            &self.z
        } else {
            &self.y
        }
    }
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
    fn weight(&self, l: usize) -> u32 {
        (5 * self.layers + l) as u32
    }
    fn update(&self, l: usize) -> u32 {
        (6 * self.layers + l) as u32
    }
    fn global(&self) -> u32 {
        (7 * self.layers) as u32
    }
    /// The gradient slots, (first, count): every tensor's Σ g², whose sum
    /// in slot order is the global gradient norm's square (clipping's
    /// `clip_scale` and a logged step's report sum them the same way).
    fn grads(&self) -> (u32, u32) {
        (0, (5 * self.layers) as u32)
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
}

/// Device state of a layer's learned PReLU slopes.
struct SlopeState {
    /// dL/da.
    grad: GpuTensor,
    /// Per-unit partial sums of dL/da.
    units: GpuTensor,
    /// dL/dz, the linear part's upstream gradient.
    dz: GpuTensor,
}

/// A training run in progress: the model, the resident data and every
/// buffer a step needs.
///
/// ```no_run
/// use fusedmlp::{data, Activation, Gpu, Mlp, MlpConfig, TrainConfig, Trainer};
///
/// let gpu = Gpu::new()?;
/// let (train, val) = data::digits()?.split(0.2, 0)?;
/// let model = Mlp::new(&gpu, MlpConfig::deep(64, 20, 64, 10, Activation::Relu))?;
/// let mut trainer = Trainer::new(model, TrainConfig::default(), &train, &val)?;
/// trainer.set_checkpointing("run.safetensors", 500); // and at the end
/// let report = trainer.train("relu", |step, total| {
///     if step % 100 == 0 { println!("{step}/{total}") }
/// }, |e| println!("epoch {}: {:?}", e.epoch, e.validation()))?;
/// println!("{}: {} steps in {:.1} s", report.outcome, report.total_steps, report.wall_seconds);
/// let saved = fusedmlp::train::Checkpoint::load("run.safetensors".as_ref())?;
/// let resumed = Trainer::resume(&gpu, &saved, &train, &val, Some(20))?; // 10 more epochs
/// # let _ = resumed;
/// # Ok::<(), fusedmlp::Error>(())
/// ```
pub struct Trainer {
    gpu: Gpu,
    /// The model being trained.
    pub(crate) model: Mlp,
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
    /// The hidden layers' outputs, `[batch, width]` each at an aligned
    /// offset, even layers in the first buffer and odd in the second
    /// (their `y` are views of them).
    acts: [GpuTensor; 2],
    /// The one-dispatch check for NaN and infinity.
    finite: FiniteCheck,
    /// The parameter arena as it was before a logged step's update.
    prev_params: GpuTensor,
    /// The launches of a logged step's per-layer diagnostics.
    diag: Vec<DiagGroup>,
    /// Their per-column scratch, every layer's at its own offset.
    columns: GpuTensor,
    /// The tensors whose norms a logged step reports.
    logged_norms: NormSegments,
    /// Every gradient tensor: the sums of squares clipping adds into the
    /// global norm.
    clip_norms: NormSegments,
    /// Every gradient, laid out as the model's parameter arena
    /// ([`Mlp::layout`]); the layers' `dw`, `db`, ... are views of it.
    grads: GpuTensor,
    /// The optimizer's two state arenas, laid out likewise.
    state: (GpuTensor, GpuTensor),
    row_stats: GpuTensor,
    /// The step's `[loss, accuracy]` at 0 and the running training totals
    /// at [`VIEW_ALIGN`] (`step_stats` and `train_totals` are views of it),
    /// so the fused path's output-layer kernel binds both as one.
    stats: GpuTensor,
    step_stats: GpuTensor,
    train_totals: GpuTensor,
    val_totals: GpuTensor,
    /// Loss, correct count and rows of the whole training split evaluated
    /// after an epoch (not the running totals of its batches).
    train_eval_totals: GpuTensor,
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
    stop_at: Option<u64>,
    /// The fused stack, when this run's steps use it.
    fused: Option<fused::FusedState>,
    /// The fused path's output-layer kernel's parameters, where it runs
    /// (`shaders/head.wgsl`).
    head: Option<wgpu::Buffer>,
    /// Every bind group a step has made, reused by the steps after.
    bind_groups: crate::gpu::plan::BindGroupCache,
    /// The plan of each kind of step taken so far (unlogged, or logged into
    /// a staging slot), replayed by every later step of that kind.
    plans: Vec<(StepKind, StepPlan)>,
    /// Whether steps replay their plans (tests record every step afresh to
    /// compare).
    replay: bool,
}

/// Slots per layer in the non-finite flags: activation, gradient, weight.
const FINITE_KINDS: [&str; 3] = ["activation", "gradient", "weight"];

fn max_abs_derivative(act: Activation) -> f64 {
    (-4000..=4000)
        .map(|i| crate::activation::exact::derivative_f64(act, i as f64 * 0.005).abs())
        .fold(0.0, f64::max)
}

impl Trainer {
    /// Uploads the data and allocates every buffer for `model` and `config`.
    pub fn new<'v>(
        model: Mlp,
        config: TrainConfig,
        train: &Dataset,
        validation: impl Into<Option<&'v Dataset>>,
    ) -> Result<Trainer, Error> {
        let gpu = model.gpu.clone();
        let mc = &model.config;
        config.validate(train.len())?;
        // No validation set: an empty one, whose figures each epoch reports
        // as absent.
        let none = Dataset {
            name: "no validation set".into(),
            features: Vec::new(),
            labels: Vec::new(),
            n_features: train.n_features,
            n_classes: train.n_classes,
        };
        let validation = validation.into().unwrap_or(&none);
        let fused_shape = fused::choose(config.kernels, mc, config.batch_size)?;
        for (name, d) in [("training", train), ("validation", validation)] {
            if d.n_features != mc.input {
                return Err(Error::setting(
                    "MlpConfig::input",
                    mc.input,
                    format!(
                        "{}, the number of features in the {name} data",
                        d.n_features
                    ),
                ));
            }
            let needed = if mc.output == 1 { 2 } else { mc.output };
            if d.n_classes > needed {
                return Err(Error::setting(
                    "MlpConfig::output",
                    mc.output,
                    format!(
                        "{} for the {name} data's {} classes",
                        d.n_classes, d.n_classes
                    ),
                ));
            }
        }
        if matches!(mc.norm(), Some((crate::nn::NormKind::Batch, _))) && config.batch_size < 2 {
            return Err(Error::setting(
                "TrainConfig::batch_size",
                config.batch_size,
                "at least 2 with BatchNorm, to estimate a variance (LayerNorm takes any batch)",
            ));
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
        // One identity order serves both evaluations (validation, and the
        // training split after each epoch).
        // A batch past the end of either (evaluation's ragged last chunk
        // through a gathering forward) still reads inside it.
        let identity: Vec<u32> = (0..(val_rows.max(train.len()) + b) as u32).collect();
        let identity_perm = gpu.scoped("uploading the order", || make_u32(&identity))?;
        // Evaluation reuses the batch buffers, so they hold max(batch, chunk) rows.
        let rows = b;
        let x_batch = gpu.zeros(rows, mc.input)?;
        let y_batch = gpu.zeros(rows, 1)?;
        let shapes = mc.layer_shapes();
        // Gradients and each optimizer state in arenas laid out as the
        // parameters: one optimizer dispatch, one norm, one finite check.
        let layout = model.layout().clone();
        let grads = gpu.zeros(1, layout.len())?;
        let state = (gpu.zeros(1, layout.len())?, gpu.zeros(1, layout.len())?);
        let grad_of = |l, kind| layout.view_of(&grads, l, kind);
        let fused = match fused_shape {
            Some(shape) => Some(fused::FusedState::new(
                &gpu,
                model.config.activation,
                shape,
                &layout,
            )?),
            None => None,
        };
        // The hidden layers' outputs in two buffers (even layers, odd
        // layers; a layer's kernel reads the one and writes the other) and
        // their pre-activations in one, each at an aligned offset: on the
        // fused path the stack's own, so what its kernels write is what the
        // output layer, the checks and the diagnostics read.
        let hidden = shapes.len() - 1;
        let mut act_ends = [0usize; 2];
        let mut z_end = 0usize;
        let mut act_starts: Vec<(usize, usize)> = Vec::with_capacity(hidden);
        let mut z_starts: Vec<usize> = Vec::with_capacity(hidden);
        for (l, &(_, fan_out)) in shapes[..hidden].iter().enumerate() {
            let block = crate::gpu::tensor::align_floats(rows * fan_out);
            act_starts.push((l % 2, act_ends[l % 2]));
            act_ends[l % 2] += block;
            z_starts.push(z_end);
            z_end += block;
        }
        // The fused stack lays layer l's output at (l / 2) * act_stride of
        // its parity's buffer and its pre-activation at l * act_stride: the
        // same offsets, as its hidden layers share one width.
        if let Some(f) = &fused {
            let stride = f.shape.act_stride();
            debug_assert!(act_starts
                .iter()
                .enumerate()
                .all(|(l, &(p, at))| p == l % 2 && at == (l / 2) * stride));
            debug_assert!(z_starts.iter().enumerate().all(|(l, &at)| at == l * stride));
        }
        // At least one vec4 each: the finite check reads them as vec4s.
        let (acts, zs) = match &fused {
            Some(f) => (f.bufs.ys.clone(), f.bufs.zs.clone()),
            None => (
                [
                    gpu.zeros(1, act_ends[0].max(4))?,
                    gpu.zeros(1, act_ends[1].max(4))?,
                ],
                gpu.zeros(1, z_end.max(1))?,
            ),
        };
        let mut layers = Vec::new();
        for (l, &(fan_in, fan_out)) in shapes.iter().enumerate() {
            let act = mc.layer_activation(l);
            let shape = crate::LinearShape::new(rows, fan_in, fan_out);
            layers.push(LayerState {
                act,
                y: match act_starts.get(l) {
                    Some(&(parity, at)) => acts[parity].view(at, rows, fan_out)?,
                    None => gpu.zeros(rows, fan_out)?,
                },
                // The hidden layers' pre-activations in one buffer (on the
                // fused path the stack's own), which the diagnostics read.
                z: match z_starts.get(l) {
                    Some(&at) => zs.view(at, rows, fan_out)?,
                    None => gpu.zeros(rows, fan_out)?,
                },
                dy: gpu.zeros(rows, fan_out)?,
                dw: grad_of(l, ParamKind::Weight)?,
                db: grad_of(l, ParamKind::Bias)?,
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
                        dgamma: grad_of(l, ParamKind::NormScale)?,
                        dbeta: grad_of(l, ParamKind::NormShift)?,
                    }),
                    _ => None,
                },
                slopes: match mc.slope_count(l) {
                    0 => None,
                    _ => Some(SlopeState {
                        grad: grad_of(l, ParamKind::Slopes)?,
                        units: gpu.zeros(1, fan_out)?,
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
                size: std::mem::size_of::<StepState>() as u64,
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
        let row_stats = gpu.zeros(rows, 2)?;
        let finite = FiniteCheck::new(
            &gpu,
            &layout,
            &act_starts,
            &shapes,
            rows,
            (layers[n_layers - 1].y.len(), row_stats.len()),
        )?;
        let (diag, columns) =
            diag_groups(&gpu, &layers, (&zs, &z_starts), (&acts, &act_starts), rows)?;
        // Every tensor's Σ g² (and on logged steps Σ w² and the update's),
        // each tensor in chunks of NORM_CHUNK floats, so no invocation walks
        // a whole tensor or the arena. Clipping sums the gradients' slots.
        let segments = norm_segments(&layout, &slots)?;
        let logged_norms = NormSegments::new(&gpu, "the norm segments", &segments)?;
        let grads_only: Vec<NormSegment> =
            segments.iter().copied().filter(|s| s.source == 0).collect();
        let clip_norms = NormSegments::new(&gpu, "the gradients' norm segments", &grads_only)?;
        let stats = gpu.zeros(1, 2 * crate::gpu::VIEW_ALIGN)?;
        let head = match &fused {
            Some(_) => fused::head_params(&gpu, &model.config, &layout, rows)?,
            None => None,
        };
        Ok(Trainer {
            diag,
            columns,
            prev_params: gpu.zeros(1, layout.len())?,
            logged_norms,
            clip_norms,
            acts,
            finite,
            row_stats,
            grads,
            state,
            step_stats: stats.view(0, 1, 2)?,
            train_totals: stats.view(crate::gpu::VIEW_ALIGN, 1, 3)?,
            stats,
            head,
            bind_groups: Default::default(),
            plans: Vec::new(),
            replay: true,
            val_totals: gpu.zeros(1, 3)?,
            train_eval_totals: gpu.zeros(1, 3)?,
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
            stop_at: None,
            fused,
        })
    }

    /// The model being trained (its parameters are the trainer's, updated
    /// in place by every step).
    pub fn model(&self) -> &Mlp {
        &self.model
    }

    /// The trained model, for saving or predicting once training is done.
    pub fn into_model(self) -> Mlp {
        self.model
    }

    /// Optimizer steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// The plan every unlogged step (`logged` false) or every logged step
    /// replays, once a step of that kind has been taken: its `Debug` output
    /// lists the step's dispatches and copies in order (logged steps have
    /// one plan per staging slot; this is the first one made).
    ///
    /// ```no_run
    /// # fn demo(trainer: &mut fusedmlp::Trainer) -> Result<(), fusedmlp::Error> {
    /// trainer.run_steps(2)?; // the first step logs; the second does not
    /// if let Some(plan) = trainer.step_plan(false) {
    ///     println!("{plan:?}");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn step_plan(&self, logged: bool) -> Option<&StepPlan> {
        self.plans
            .iter()
            .find(|((log, _), _)| *log == logged)
            .map(|(_, plan)| plan)
    }

    /// Steps per epoch (full batches only).
    pub fn steps_per_epoch(&self) -> usize {
        self.train_rows / self.config.batch_size
    }

    fn total_steps(&self) -> u64 {
        (self.steps_per_epoch() * self.config.epochs) as u64
    }

    /// Makes [`Trainer::train`] return once `step` steps have been taken
    /// (mid-epoch if need be, with the outcome saying so), as an interrupted
    /// run would; [`Trainer::save_checkpoint`] and [`Trainer::resume`] then
    /// continue it.
    pub fn stop_after(&mut self, step: u64) {
        self.stop_at = Some(step);
    }

    /// Records the feature standardisation applied to the data in the
    /// model ([`Mlp::set_standardizer`]), so that checkpoints carry it to
    /// evaluation and prediction. Fails if it does not fit the model's input.
    pub fn set_standardizer(
        &mut self,
        standardizer: Option<crate::data::Standardizer>,
    ) -> Result<(), Error> {
        self.model.set_standardizer(standardizer)
    }

    /// Every optimizer state pair (views of the two state arenas) in
    /// checkpoint order, from the arena's entry table
    /// ([`ParamLayout::checkpoint_order`](crate::nn::ParamLayout)).
    fn optimizer_tensors(&self) -> Result<Vec<(GpuTensor, GpuTensor)>, Error> {
        let layout = self.model.layout();
        layout
            .checkpoint_order()
            .into_iter()
            .map(|e| {
                Ok((
                    layout.view(&self.state.0, e)?,
                    layout.view(&self.state.1, e)?,
                ))
            })
            .collect()
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
}
