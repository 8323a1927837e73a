//! The kernel benchmark behind `fusedmlp bench`: fused linear forward and
//! backward against the unfused path, as GFLOP/s and as a fraction of the
//! adapter's peak measured in the same run.

use serde::Serialize;

use crate::activation::{Activation, Saved};
use crate::error::Error;
use crate::gpu::cache::TuningRecord;
use crate::gpu::fused::{FusedBuffers, FusedKernel};
use crate::gpu::gemm::Epilogue;
use crate::gpu::linear::{BackwardGemms, DzChain, GemmDims, LinearScratch};
use crate::gpu::timing::median;
pub use crate::gpu::timing::TimeSource;
use crate::gpu::{Gpu, GpuTensor};
use crate::LinearShape;

/// One row of the kernel benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// (batch, in, out).
    pub shape: LinearShape,
    /// The activation.
    pub activation: String,
    /// The GEMM variant the forward pass used.
    pub forward_variant: String,
    /// Fused forward (training mode: keeps what the backward needs), GFLOP/s at 2·b·i·o.
    pub forward_gflops: f64,
    /// Full backward (dZ and db, dX, dW), GFLOP/s at 4·b·i·o.
    pub backward_gflops: f64,
    /// Unfused forward: GEMM with bias, then a separate activation pass.
    pub unfused_forward_gflops: f64,
    /// Forward as a fraction of the measured peak.
    pub forward_fraction_of_peak: f64,
    /// Backward as a fraction of the measured peak.
    pub backward_fraction_of_peak: f64,
    /// Median forward time, milliseconds.
    pub forward_ms: f64,
    /// Median backward time, milliseconds.
    pub backward_ms: f64,
}

/// The whole benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The adapter, in words.
    pub adapter: String,
    /// How kernel times were measured: `Timestamps` only when every
    /// measurement's GPU timestamps agreed with its wall clock, else `Wall`.
    pub time_source: TimeSource,
    /// Peak GFLOP/s (the faster of the two forms).
    pub peak_gflops: f64,
    /// Peak with `fma()`.
    pub peak_fma_gflops: f64,
    /// Peak with `a * b + c`.
    pub peak_mul_add_gflops: f64,
    /// Every peak measurement of the run (before each shape and after the
    /// last); the peak above is their median.
    pub peak_samples_gflops: Vec<f64>,
    /// Rounds per median.
    pub repeats: usize,
    /// One row per (shape, activation).
    pub rows: Vec<BenchRow>,
    /// The autotuner's decisions made during the run.
    pub tuning: Vec<TuningRecord>,
}

/// The shapes `fusedmlp bench` measures: (batch, in, out).
pub fn default_shapes(large: bool) -> Vec<LinearShape> {
    let mut s = vec![
        LinearShape::new(256, 256, 256),
        LinearShape::new(1024, 1024, 1024),
        LinearShape::new(4096, 512, 512),
    ];
    if large {
        s.push(LinearShape::new(2048, 2048, 2048));
        s.push(LinearShape::new(4096, 4096, 4096));
    }
    s
}

/// The activations `fusedmlp bench` measures.
pub const BENCH_ACTIVATIONS: [Activation; 5] = [
    Activation::Identity,
    Activation::Relu,
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::Gelu,
];

fn fill(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16) as f32 / 65536.0 - 0.5
        })
        .collect()
}

/// The device tensors of one benchmarked linear layer, filled with fixed
/// pseudo-random values in [-0.5, 0.5): what `fusedmlp bench` and the
/// criterion benches time.
pub struct LinearFixture {
    /// (batch, in, out).
    pub shape: LinearShape,
    x: GpuTensor,
    w: GpuTensor,
    b: GpuTensor,
    dy: GpuTensor,
    y: GpuTensor,
    z: GpuTensor,
    dx: GpuTensor,
    dw: GpuTensor,
    db: GpuTensor,
    scratch: LinearScratch,
}

impl LinearFixture {
    /// Allocates and fills the tensors for `shape`.
    pub fn new(gpu: &Gpu, shape: LinearShape) -> Result<LinearFixture, Error> {
        let LinearShape {
            batch,
            in_features: i,
            out_features: o,
        } = shape;
        Ok(LinearFixture {
            shape,
            x: gpu.upload(&fill(batch * i, 1), batch, i)?,
            w: gpu.upload(&fill(o * i, 2), o, i)?,
            b: gpu.upload(&fill(o, 3), 1, o)?,
            dy: gpu.upload(&fill(batch * o, 4), batch, o)?,
            y: gpu.zeros(batch, o)?,
            z: gpu.zeros(batch, o)?,
            dx: gpu.zeros(batch, i)?,
            dw: gpu.zeros(o, i)?,
            db: gpu.zeros(1, o)?,
            scratch: gpu.linear_scratch(shape)?,
        })
    }

    /// Records the fused forward in training mode (keeping z when `act`'s
    /// derivative needs it).
    pub fn record_forward(
        &self,
        gpu: &Gpu,
        e: &mut wgpu::CommandEncoder,
        act: Activation,
    ) -> Result<(), Error> {
        let keep_z = act.saved() == Saved::PreActivation;
        gpu.record_linear_forward(
            e,
            act,
            &self.x,
            &self.w,
            &self.b,
            &self.y,
            keep_z.then_some(&self.z),
        )
    }

    /// Records the full backward: dZ and db, dX, dW.
    pub fn record_backward(
        &self,
        gpu: &Gpu,
        e: &mut wgpu::CommandEncoder,
        act: Activation,
    ) -> Result<(), Error> {
        let saved = if act.saved() == Saved::PreActivation {
            &self.z
        } else {
            &self.y
        };
        gpu.record_linear_backward(
            e,
            act,
            &self.x,
            &self.w,
            saved,
            &self.dy,
            &self.scratch,
            Some(&self.dx),
            &self.dw,
            &self.db,
            BackwardGemms::Auto,
            DzChain::ALONE,
        )
    }

    /// Records the unfused forward: the GEMM with bias, then a separate
    /// activation pass.
    pub fn record_unfused(
        &self,
        gpu: &Gpu,
        e: &mut wgpu::CommandEncoder,
        act: Activation,
    ) -> Result<(), Error> {
        let LinearShape {
            batch,
            in_features: i,
            out_features: o,
        } = self.shape;
        gpu.record_gemm(
            e,
            Epilogue::BiasActivation {
                act: Activation::Identity,
                save_z: false,
            },
            GemmDims::dense(batch, o, i),
            &self.x,
            &self.w,
            Some(&self.b),
            &self.z,
            None,
        )?;
        gpu.record_activation_forward(e, act, &self.z, &self.y)
    }
}

/// Runs the benchmark over `shapes` × `activations`, calling `progress`
/// after each row.
///
/// Measurements are interleaved: for each shape, every round times each
/// activation's fused forward, backward and unfused forward once (after one
/// warm-up each), and each figure is the median over `repeats` rounds. A
/// machine that slows down part-way (another process, thermal limits) then
/// slows every kernel of a round alike instead of one row of the table. The
/// peak is measured before every shape and after the last, and the median
/// of those is the reference for the fractions.
pub fn run(
    gpu: &Gpu,
    shapes: &[LinearShape],
    activations: &[Activation],
    repeats: usize,
    mut progress: impl FnMut(&BenchRow),
) -> Result<BenchReport, Error> {
    let mut peaks = Vec::new();
    let mut rows = Vec::new();
    let mut all_stamps = true;
    for &shape in shapes {
        peaks.push(gpu.measure_peak_gflops()?);
        let fixture = LinearFixture::new(gpu, shape)?;
        let flops = shape.forward_flops();
        // Repeat small problems inside one submission so launch overhead
        // does not dominate.
        let reps = ((2e8 / flops).ceil() as usize).clamp(1, 16);
        // (forward, backward, unfused) seconds per activation, one per round.
        let mut samples = vec![[Vec::new(), Vec::new(), Vec::new()]; activations.len()];
        for round in 0..repeats.max(1) {
            let warm_up = round == 0;
            for (a, &act) in activations.iter().enumerate() {
                let fwd =
                    gpu.time_samples(reps, 1, warm_up, |e| fixture.record_forward(gpu, e, act))?;
                let bwd =
                    gpu.time_samples(reps, 1, warm_up, |e| fixture.record_backward(gpu, e, act))?;
                let unfused =
                    gpu.time_samples(reps, 1, warm_up, |e| fixture.record_unfused(gpu, e, act))?;
                for (k, (t, src)) in [fwd, bwd, unfused].into_iter().enumerate() {
                    all_stamps &= src == TimeSource::Timestamps;
                    samples[a][k].extend(t);
                }
            }
        }
        let variant = gpu.gemm_variant(GemmDims::dense(
            shape.batch,
            shape.out_features,
            shape.in_features,
        ))?;
        for (&act, [fwd, bwd, unfused]) in activations.iter().zip(&samples) {
            let (fwd, bwd, unfused) = (median(fwd), median(bwd), median(unfused));
            let row = BenchRow {
                shape,
                activation: act.to_string(),
                forward_variant: variant.name(),
                forward_gflops: flops / fwd / 1e9,
                backward_gflops: 2.0 * flops / bwd / 1e9,
                unfused_forward_gflops: flops / unfused / 1e9,
                // Filled in below, against the median peak of the run.
                forward_fraction_of_peak: 0.0,
                backward_fraction_of_peak: 0.0,
                forward_ms: fwd * 1e3,
                backward_ms: bwd * 1e3,
            };
            progress(&row);
            rows.push(row);
        }
    }
    peaks.push(gpu.measure_peak_gflops()?);
    let pick = |f: fn(&(f64, f64, f64)) -> f64| median(&peaks.iter().map(f).collect::<Vec<_>>());
    let (peak, peak_fma, peak_mul_add) = (pick(|p| p.0), pick(|p| p.1), pick(|p| p.2));
    for row in &mut rows {
        row.forward_fraction_of_peak = row.forward_gflops / peak;
        row.backward_fraction_of_peak = row.backward_gflops / peak;
    }
    Ok(BenchReport {
        adapter: gpu.describe(),
        time_source: if all_stamps && !rows.is_empty() {
            TimeSource::Timestamps
        } else {
            TimeSource::Wall
        },
        peak_gflops: peak,
        peak_fma_gflops: peak_fma,
        peak_mul_add_gflops: peak_mul_add,
        peak_samples_gflops: peaks.iter().map(|p| p.0).collect(),
        repeats,
        rows,
        tuning: gpu.tuning_records(),
    })
}

/// One row of the training-step benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct TrainBenchRow {
    /// The hidden activation.
    pub activation: String,
    /// The remedy switched on (`none`, `layer_norm`, `batch_norm`,
    /// `residual`, `dropout`), each with the normalisation before the
    /// activation and dropout p = 0.1.
    pub remedy: String,
    /// Median-free mean time per step over the timed steps, milliseconds.
    pub step_ms: f64,
    /// Training samples per second.
    pub samples_per_second: f64,
    /// Median host time to record and submit one step, milliseconds.
    pub host_record_ms: f64,
    /// Readbacks made by the timed (unlogged) steps, per step.
    pub readbacks_per_step: u64,
    /// Compute dispatches of one unlogged step (counted by the host layer).
    pub dispatches_per_step: u64,
    /// The step's FLOPs (6·batch·Σ in·out) over its time.
    pub step_gflops: f64,
    /// The fused linear benchmark at the layer's shape (forward + backward).
    pub linear_gflops: f64,
    /// Seconds from creating the model to the end of its first step.
    pub first_step_seconds: f64,
}

/// Times training steps of a 20 × 256 MLP (batch 256, input 64, 10
/// classes, plain SGD) for relu and sigmoid, and for relu with each remedy
/// that adds kernels to the step (LayerNorm, BatchNorm, residual
/// connections, dropout), so their cost shows next to the plain step.
pub fn train_step_bench(gpu: &Gpu, steps: usize) -> Result<Vec<TrainBenchRow>, Error> {
    use crate::nn::{Mlp, MlpConfig, NormPlacement};
    use crate::train::{TrainConfig, Trainer};
    let (batch, width, depth) = (256usize, 256usize, 20usize);
    let data = crate::data::blobs(batch * 4, 10, 64, 1.0, 7)?;
    let mut rows = Vec::new();
    let runs = [
        (Activation::Relu, "none"),
        (Activation::Sigmoid, "none"),
        (Activation::Relu, "layer_norm"),
        (Activation::Relu, "batch_norm"),
        (Activation::Relu, "residual"),
        (Activation::Relu, "dropout"),
    ];
    let mut linear_of: Vec<(Activation, f64)> = Vec::new();
    for (act, remedy) in runs {
        let start = web_time::Instant::now();
        let mut config = MlpConfig::deep(64, depth, width, 10, act);
        match remedy {
            "layer_norm" => config.layer_norm = Some(NormPlacement::Before),
            "batch_norm" => config.batch_norm = Some(NormPlacement::Before),
            "residual" => config.residual = true,
            "dropout" => config.dropout = 0.1,
            _ => {}
        }
        let flops_per_step = 6.0
            * batch as f64
            * config
                .layer_shapes()
                .iter()
                .map(|(i, o)| (i * o) as f64)
                .sum::<f64>();
        let tc = TrainConfig {
            epochs: 1,
            batch_size: batch,
            log_every: u64::MAX,
            ..Default::default()
        };
        let mut trainer = Trainer::new(Mlp::new(gpu, config)?, tc, &data, &data)?;
        trainer.run_steps(1)?;
        let first_step_seconds = start.elapsed().as_secs_f64();
        let dispatched = gpu.dispatch_count();
        trainer.run_steps(1)?;
        let dispatches_per_step = gpu.dispatch_count() - dispatched;
        let before = trainer.readbacks();
        let (host, per_step) = trainer.time_steps(steps)?;
        let readbacks = trainer.readbacks() - before;
        let shape = LinearShape::new(batch, width, width);
        let linear_seconds = match linear_of.iter().find(|(a, _)| *a == act) {
            Some(&(_, s)) => s,
            None => {
                let linear = run(gpu, &[shape], &[act], 3, |_| {})?;
                let r = &linear.rows[0];
                let s = r.forward_ms / 1e3 + r.backward_ms / 1e3;
                linear_of.push((act, s));
                s
            }
        };
        rows.push(TrainBenchRow {
            activation: act.to_string(),
            remedy: remedy.to_string(),
            step_ms: per_step * 1e3,
            samples_per_second: batch as f64 / per_step,
            host_record_ms: host * 1e3,
            readbacks_per_step: readbacks / steps.max(1) as u64,
            dispatches_per_step,
            step_gflops: flops_per_step / per_step / 1e9,
            linear_gflops: 3.0 * shape.forward_flops() / linear_seconds / 1e9,
            first_step_seconds,
        });
    }
    Ok(rows)
}

/// One row of [`stack_bench`]: a stack of hidden layers forward and
/// backward, through the fully fused kernels and through the layered
/// path (a fused linear kernel per layer and pass).
#[derive(Debug, Clone, Serialize)]
pub struct StackBenchRow {
    /// The stack.
    pub batch: usize,
    /// Input features of the first layer.
    pub input: usize,
    /// Units per hidden layer.
    pub width: usize,
    /// Hidden layers.
    pub layers: usize,
    /// The hidden activation.
    pub activation: String,
    /// The fused kernel design timed as `fused_ms` (the adapter's default).
    pub kernel: String,
    /// Forward + backward, fused path, milliseconds (median).
    pub fused_ms: f64,
    /// Forward + backward through the other fused design (the
    /// workgroup-memory one where the default is the subgroup design),
    /// milliseconds (median); `None` where the adapter runs only one.
    pub other_fused_ms: Option<f64>,
    /// Seconds to build the default design's buffers and compile its
    /// kernels (on a cold pipeline cache: the first stack of this width).
    pub build_s: f64,
    /// Forward + backward, layered path, milliseconds (median).
    pub layered_ms: f64,
    /// Compute dispatches of one forward + backward, fused (counted).
    pub fused_dispatches: u64,
    /// Compute dispatches of one forward + backward, layered (counted).
    pub layered_dispatches: u64,
    /// GFLOP/s of the fused path (forward + weight and input gradients).
    pub fused_gflops: f64,
    /// GFLOP/s of the layered path.
    pub layered_gflops: f64,
}

/// The stacks [`stack_bench`] measures by default: the main job's hidden
/// layers (20 × 64, batch 32, input 64), the same at batch 256, and 20 × 128
/// at batch 256.
pub fn default_stacks() -> Vec<crate::gpu::fused::FusedShape> {
    use crate::gpu::fused::FusedShape;
    let s = |batch, input, width, layers| FusedShape {
        batch,
        input,
        width,
        layers,
    };
    vec![s(32, 64, 64, 20), s(256, 64, 64, 20), s(256, 64, 128, 20)]
}

/// Times a stack of hidden layers forward and backward through the fully
/// fused kernels and through the layered path, interleaved over `repeats`
/// rounds (medians), and counts each path's dispatches.
pub fn stack_bench(
    gpu: &Gpu,
    shape: crate::gpu::fused::FusedShape,
    act: Activation,
    repeats: usize,
) -> Result<StackBenchRow, Error> {
    shape.check()?;
    let (b, i, w, l) = (shape.batch, shape.input, shape.width, shape.layers);
    // Fused: the packed stack and its buffers.
    let x = gpu.upload(&fill(b * i, 1), b, i)?;
    let weights = gpu.upload(&fill(shape.weight_len(), 2), 1, shape.weight_len())?;
    let biases = gpu.upload(&fill(shape.bias_len(), 3), 1, shape.bias_len())?;
    let dy = gpu.upload(&fill(b * w, 4), b, w)?;
    let kernel = gpu.fused_kernel();
    let started = std::time::Instant::now();
    let bufs = gpu.fused_buffers_with_kernel(act, shape, kernel)?;
    let build_s = started.elapsed().as_secs_f64();
    let other = match kernel {
        FusedKernel::Subgroup => {
            Some(gpu.fused_buffers_with_kernel(act, shape, FusedKernel::Lanes)?)
        }
        FusedKernel::Lanes => None,
    };
    let fused_with = |bufs: &FusedBuffers, e: &mut wgpu::CommandEncoder| -> Result<(), Error> {
        gpu.record_fused_mlp_forward(e, &x, &weights, &biases, bufs)?;
        gpu.record_fused_mlp_backward(e, &x, &weights, &dy, bufs)
    };
    let fused = |e: &mut wgpu::CommandEncoder| fused_with(&bufs, e);
    // Layered: one fixture per layer (the first maps input -> width).
    let fixtures = (0..l)
        .map(|k| LinearFixture::new(gpu, LinearShape::new(b, if k == 0 { i } else { w }, w)))
        .collect::<Result<Vec<_>, _>>()?;
    let layered = |e: &mut wgpu::CommandEncoder| -> Result<(), Error> {
        for f in &fixtures {
            f.record_forward(gpu, e, act)?;
        }
        for f in fixtures.iter().rev() {
            f.record_backward(gpu, e, act)?;
        }
        Ok(())
    };
    let count = |record: &dyn Fn(&mut wgpu::CommandEncoder) -> Result<(), Error>| {
        let mut e = gpu.device().create_command_encoder(&Default::default());
        let before = gpu.dispatch_count();
        record(&mut e)?;
        let n = gpu.dispatch_count() - before;
        gpu.submit("counting dispatches", vec![e.finish()])?;
        Ok::<u64, Error>(n)
    };
    let fused_dispatches = count(&fused)?;
    let layered_dispatches = count(&layered)?;
    let (mut tf, mut tl, mut to) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..repeats.max(1) {
        tf.extend(gpu.time_samples(1, 1, round == 0, fused)?.0);
        tl.extend(gpu.time_samples(1, 1, round == 0, layered)?.0);
        if let Some(o) = &other {
            to.extend(gpu.time_samples(1, 1, round == 0, |e| fused_with(o, e))?.0);
        }
    }
    let (fused_s, layered_s) = (median(&tf), median(&tl));
    let other_fused_ms = other.as_ref().map(|_| median(&to) * 1e3);
    // Forward, plus the weight and input gradients of the backward.
    let flops = 3.0 * shape.forward_flops();
    Ok(StackBenchRow {
        batch: b,
        input: i,
        width: w,
        layers: l,
        activation: act.to_string(),
        kernel: format!("{kernel:?}").to_lowercase(),
        fused_ms: fused_s * 1e3,
        other_fused_ms,
        build_s,
        layered_ms: layered_s * 1e3,
        fused_dispatches,
        layered_dispatches,
        fused_gflops: flops / fused_s / 1e9,
        layered_gflops: flops / layered_s / 1e9,
    })
}

/// A net for [`train_path_bench`]: `depth` hidden layers of `width` units
/// on `input` features, `classes` outputs, `batch` rows a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TrainNet {
    /// Input features.
    pub input: usize,
    /// Units per hidden layer.
    pub width: usize,
    /// Hidden layers.
    pub depth: usize,
    /// Rows a step.
    pub batch: usize,
    /// Classes (softmax outputs).
    pub classes: usize,
}

/// The nets `fusedmlp bench --train` measures by default: the main job's
/// (20 × 64, batch 32, 64 inputs, 10 classes) and 20 × 256 at batch 256.
pub fn default_train_nets() -> Vec<TrainNet> {
    vec![
        TrainNet {
            input: 64,
            width: 64,
            depth: 20,
            batch: 32,
            classes: 10,
        },
        TrainNet {
            input: 64,
            width: 256,
            depth: 20,
            batch: 256,
            classes: 10,
        },
    ]
}

/// One net, activation and kernel path of [`train_path_bench`].
#[derive(Debug, Clone, Serialize)]
pub struct TrainPathRow {
    /// The net.
    pub net: TrainNet,
    /// The hidden activation.
    pub activation: String,
    /// `fused` or `layered`.
    pub kernels: String,
    /// Time per unlogged step, milliseconds (median over rounds of the
    /// mean over the timed steps).
    pub step_ms: f64,
    /// Host time to record one step, milliseconds (median).
    pub host_record_ms: f64,
    /// Compute dispatches of one unlogged step (counted by the host layer).
    pub dispatches_per_step: u64,
    /// The step's FLOPs (6·batch·Σ in·out) over its time.
    pub step_gflops: f64,
    /// `step_gflops` over the adapter's peak measured in the same run.
    pub fraction_of_peak: f64,
    /// Seconds from creating the model to the end of its first step.
    pub first_step_seconds: f64,
    /// With profiling: each compute pass of a step submitted and waited on
    /// alone, (label, median milliseconds) in recording order; empty without.
    pub passes: Vec<(String, f64)>,
    /// With profiling: the median milliseconds of a whole step run that way
    /// (the passes plus the host's recording and the submissions' overhead).
    pub profiled_step_ms: Option<f64>,
    /// With profiling: [`TrainPathRow::passes`] for a step that logs its
    /// diagnostics (every step logged, each read back before the next).
    pub logged_passes: Vec<(String, f64)>,
    /// With profiling: [`TrainPathRow::profiled_step_ms`] for a logged
    /// step, its diagnostics' readback included.
    pub profiled_logged_step_ms: Option<f64>,
    /// With profiling: the unlogged step's plan as its `Debug` output
    /// prints it (every dispatch and copy in order); empty without.
    pub plan: String,
}

/// Times unlogged training steps (plain SGD) of each net and activation on
/// the fully fused path (where the net allows it) and on the layered path,
/// interleaved over `rounds` rounds of `steps` steps each; returns the
/// adapter's peak GFLOP/s (median of measurements before and after) and
/// the rows.
pub fn train_path_bench(
    gpu: &Gpu,
    nets: &[TrainNet],
    activations: &[Activation],
    steps: usize,
    rounds: usize,
    profile: bool,
) -> Result<(f64, Vec<TrainPathRow>), Error> {
    use crate::nn::{Mlp, MlpConfig};
    use crate::train::{Kernels, TrainConfig, Trainer};
    let mut peaks = vec![gpu.measure_peak_gflops()?.0];
    let mut rows = Vec::new();
    for &net in nets {
        let data = crate::data::blobs(net.batch * 4, net.classes, net.input, 1.0, 7)?;
        for &act in activations {
            let config = MlpConfig::deep(net.input, net.depth, net.width, net.classes, act);
            let flops = 6.0
                * net.batch as f64
                * config
                    .layer_shapes()
                    .iter()
                    .map(|(i, o)| (i * o) as f64)
                    .sum::<f64>();
            // (kernels, trainer, first step seconds, dispatches, samples).
            let mut paths = Vec::new();
            for kernels in [Kernels::Fused, Kernels::Layered] {
                let tc = TrainConfig {
                    epochs: 1,
                    batch_size: net.batch,
                    log_every: u64::MAX,
                    kernels,
                    ..Default::default()
                };
                let start = web_time::Instant::now();
                let mut trainer =
                    match Trainer::new(Mlp::new(gpu, config.clone())?, tc, &data, &data) {
                        Ok(t) => t,
                        Err(Error::Config(m)) if m.contains("fused kernels cannot") => continue,
                        Err(e) => return Err(e),
                    };
                trainer.run_steps(1)?;
                let first = start.elapsed().as_secs_f64();
                let before = gpu.dispatch_count();
                trainer.run_steps(1)?;
                let dispatches = gpu.dispatch_count() - before;
                paths.push((kernels, trainer, first, dispatches, Vec::new(), Vec::new()));
            }
            for _ in 0..rounds.max(1) {
                for (_, trainer, _, _, host, per) in paths.iter_mut() {
                    let (h, p) = trainer.time_steps(steps)?;
                    host.push(h);
                    per.push(p);
                }
            }
            for (kernels, mut trainer, first, dispatches, host, per) in paths {
                let per_step = median(&per);
                let (mut passes, mut logged_passes) = ((Vec::new(), None), (Vec::new(), None));
                let mut plan = String::new();
                if profile {
                    let (p, whole) = trainer.profile_steps(steps, false)?;
                    passes = (p, Some(whole));
                    plan = trainer
                        .step_plan(false)
                        .map(|p| format!("{p:?}"))
                        .unwrap_or_default();
                    let (p, whole) = trainer.profile_steps(steps, true)?;
                    logged_passes = (p, Some(whole));
                }
                rows.push(TrainPathRow {
                    net,
                    activation: act.to_string(),
                    kernels: kernels.to_string(),
                    step_ms: per_step * 1e3,
                    host_record_ms: median(&host) * 1e3,
                    dispatches_per_step: dispatches,
                    step_gflops: flops / per_step / 1e9,
                    fraction_of_peak: 0.0,
                    first_step_seconds: first,
                    passes: passes.0,
                    profiled_step_ms: passes.1,
                    logged_passes: logged_passes.0,
                    profiled_logged_step_ms: logged_passes.1,
                    plan,
                });
            }
        }
    }
    peaks.push(gpu.measure_peak_gflops()?.0);
    let peak = median(&peaks);
    for r in &mut rows {
        r.fraction_of_peak = r.step_gflops / peak;
    }
    Ok((peak, rows))
}

/// What the autotuner did in this process so far: (shape classes decided,
/// seconds spent measuring candidates).
pub fn autotune_summary(gpu: &Gpu) -> (usize, f64) {
    let tuning = gpu.tuning_records();
    (tuning.len(), tuning.iter().map(|t| t.seconds).sum())
}
