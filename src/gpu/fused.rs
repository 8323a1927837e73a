//! The fully fused MLP for narrow nets (hidden width up to
//! [`MAX_FUSED_WIDTH`]): every hidden layer forward in one dispatch, the
//! activation gradients of every layer in one dispatch walking the layers
//! in reverse, and the weight and bias gradients of every layer in one
//! more (`shaders/fused_mlp.wgsl`, `shaders/fused_mlp_grads.wgsl`).
//!
//! A workgroup owns 16 batch rows and keeps them in workgroup memory from
//! layer to layer; each layer's weights stream through workgroup memory in
//! chunks, read once per row block. Narrow deep nets are bound by the
//! number of dispatches, not by FLOPs (a 20 × 64 layer stack at batch 32
//! is 5 MFLOP forward): the layered path takes a GEMM dispatch per layer
//! and pass, this one takes three for the whole stack, whatever its depth.
//! Every sum runs in a fixed order, so results are bit-identical from run
//! to run. CPU twin: [`crate::reference::fused_mlp`].

use super::elementwise::record_pass;
use super::{shader, Gpu, GpuTensor};
use crate::activation::{Activation, Saved};
use crate::error::Error;

/// The widest hidden layer the fused path takes.
pub const MAX_FUSED_WIDTH: usize = 128;
/// Batch rows a workgroup keeps on chip.
const ROWS: u32 = 16;
/// Weight columns (or rows) staged in workgroup memory at a time.
const KC: u32 = 8;
/// Invocations per workgroup of the forward and backward kernels.
const THREADS: u32 = 128;
/// Side of the square tile of one weight-gradient workgroup.
const TILE: u32 = 8;

/// The shape of a fused stack: `layers` hidden layers of `width` units on
/// an input of `input` features, for `batch` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FusedShape {
    /// Rows of the batch.
    pub batch: usize,
    /// Input features of the first layer.
    pub input: usize,
    /// Units of every hidden layer (at most [`MAX_FUSED_WIDTH`]).
    pub width: usize,
    /// Hidden layers (at least 1).
    pub layers: usize,
}

impl FusedShape {
    /// Floats in the packed weights: `[width, input]` then `layers - 1`
    /// times `[width, width]`, row-major.
    pub fn weight_len(&self) -> usize {
        self.width * self.input + self.layers.saturating_sub(1) * self.width * self.width
    }

    /// Floats in the packed biases, `[layers, width]`.
    pub fn bias_len(&self) -> usize {
        self.layers * self.width
    }

    /// Floats in the per-layer activations, `[layers, batch, width]` (the
    /// saved values and the activation gradients).
    pub fn activations_len(&self) -> usize {
        self.layers * self.batch * self.width
    }

    /// Floats in the packed gradients: per layer, dW (`[width, in_l]`) then
    /// db (`[width]`).
    pub fn grads_len(&self) -> usize {
        self.width * (self.input + 1) + self.layers.saturating_sub(1) * self.width * (self.width + 1)
    }

    /// Multiply-adds of the forward pass.
    pub fn forward_flops(&self) -> f64 {
        2.0 * self.batch as f64 * self.weight_len() as f64
    }

    /// Whether the fused path takes this shape, and if not, why.
    pub fn check(&self) -> Result<(), Error> {
        if self.width == 0 || self.width > MAX_FUSED_WIDTH {
            return Err(Error::Config(format!(
                "the fused MLP takes hidden widths from 1 to {MAX_FUSED_WIDTH}, not {}; \
                 use the layered path for wider nets",
                self.width
            )));
        }
        if self.layers == 0 || self.batch == 0 || self.input == 0 {
            return Err(Error::Config(format!(
                "the fused MLP needs at least one layer, row and input feature \
                 (got {} layers, {} rows, {} inputs)",
                self.layers, self.batch, self.input
            )));
        }
        Ok(())
    }

    /// The hidden width rounded up to the lanes a row takes: 16, 32, 64 or 128.
    fn lanes(&self) -> u32 {
        (self.width as u32).next_power_of_two().max(16)
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct FusedParams {
    batch: u32,
    input: u32,
    width: u32,
    layers: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GradParams {
    batch: u32,
    input: u32,
    width: u32,
    layers: u32,
    first_tiles: u32,
    hidden_tiles: u32,
    tiles_k0: u32,
    tiles_k: u32,
}

/// The WGSL constants that size a fused kernel.
fn constants(act: Activation, lanes: u32) -> String {
    format!(
        "const WP: u32 = {lanes}u;\nconst ROWS: u32 = {ROWS}u;\nconst ACC: u32 = {acc}u;\n\
         const KC: u32 = {KC}u;\nconst SAVES_Z: bool = {saves_z};\n",
        acc = ROWS * lanes / THREADS,
        saves_z = act.saved() == Saved::PreActivation,
    )
}

/// The source of the forward and backward kernels for `act` at `lanes`.
pub fn fused_source(act: Activation, lanes: u32) -> String {
    shader::assemble(
        &format!("{}{}", constants(act, lanes), shader::FUSED_MLP_WGSL),
        Some(act),
    )
}

/// The source of the weight-gradient kernel for `act`.
pub fn fused_grads_source(act: Activation) -> String {
    shader::assemble(
        &format!("{}{}", constants(act, 16), shader::FUSED_MLP_GRADS_WGSL),
        Some(act),
    )
}

/// Results of [`Gpu::fused_mlp_forward`].
#[derive(Debug, Clone, PartialEq)]
pub struct FusedForward {
    /// Per layer, what the backward needs (`[batch, width]`): the
    /// pre-activation `z` where the activation's derivative needs it, the
    /// output `y` otherwise (see [`Activation::saved`]).
    pub saved: Vec<Vec<f32>>,
    /// The last hidden layer's output, `[batch, width]`.
    pub y_last: Vec<f32>,
}

/// Results of [`Gpu::fused_mlp_backward`].
#[derive(Debug, Clone, PartialEq)]
pub struct FusedGrads {
    /// Per layer, the activation gradient dL/dz (`[batch, width]`).
    pub dz: Vec<Vec<f32>>,
    /// Per layer, (dW `[width, in_l]`, db `[width]`).
    pub grads: Vec<(Vec<f32>, Vec<f32>)>,
}

fn check_len(op: &str, name: &str, t: &GpuTensor, len: usize) -> Result<(), Error> {
    if t.len() != len {
        return Err(Error::shape(
            format!("{op}: {name}"),
            format!("{len} floats"),
            format!("{} floats", t.len()),
        ));
    }
    Ok(())
}

impl Gpu {
    /// Records the fused forward pass of a stack of hidden layers, all with
    /// activation `act`: `y_l = act(y_{l-1}·W_lᵀ + b_l)` for every layer in
    /// one dispatch. `w` and `b` are packed as [`FusedShape::weight_len`]
    /// and [`FusedShape::bias_len`] describe; `saved` gets
    /// [`FusedShape::activations_len`] floats (z or y per layer, as the
    /// backward needs), `y_last` the last layer's output `[batch, width]`.
    #[allow(clippy::too_many_arguments)]
    pub fn record_fused_mlp_forward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        act: Activation,
        shape: FusedShape,
        x: &GpuTensor,
        w: &GpuTensor,
        b: &GpuTensor,
        saved: &GpuTensor,
        y_last: &GpuTensor,
    ) -> Result<(), Error> {
        act.validate()?;
        shape.check()?;
        let op = "fused_mlp_forward";
        check_len(op, "x", x, shape.batch * shape.input)?;
        check_len(op, "w", w, shape.weight_len())?;
        check_len(op, "b", b, shape.bias_len())?;
        check_len(op, "saved", saved, shape.activations_len())?;
        check_len(op, "y_last", y_last, shape.batch * shape.width)?;
        let lanes = shape.lanes();
        let key = format!("fused_mlp:{act}:{lanes}");
        let pipeline = self.pipeline(&key, "forward", || fused_source(act, lanes), false)?;
        let params = self.params(&self.fused_params(shape))?;
        let groups = self.row_blocks(shape)?;
        self.scoped("recording the fused forward", || {
            record_pass(
                self,
                encoder,
                "fused mlp forward",
                &pipeline,
                &[
                    (0, &params),
                    (1, &x.buffer),
                    (2, &w.buffer),
                    (3, &b.buffer),
                    (4, &saved.buffer),
                    (5, &y_last.buffer),
                ],
                (groups, 1, 1),
            )
        })
    }

    /// Records the fused backward pass: from `dy_last` (dL/dy of the last
    /// hidden layer, `[batch, width]`) the activation gradients of every
    /// layer into `dz` ([`FusedShape::activations_len`]) in one dispatch,
    /// then every layer's weight and bias gradients into `grads`
    /// ([`FusedShape::grads_len`]) in a second. `saved` is what
    /// [`Gpu::record_fused_mlp_forward`] wrote. No gradient is computed for
    /// the net's input.
    #[allow(clippy::too_many_arguments)]
    pub fn record_fused_mlp_backward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        act: Activation,
        shape: FusedShape,
        x: &GpuTensor,
        w: &GpuTensor,
        saved: &GpuTensor,
        dy_last: &GpuTensor,
        dz: &GpuTensor,
        grads: &GpuTensor,
    ) -> Result<(), Error> {
        act.validate()?;
        shape.check()?;
        let op = "fused_mlp_backward";
        check_len(op, "x", x, shape.batch * shape.input)?;
        check_len(op, "w", w, shape.weight_len())?;
        check_len(op, "saved", saved, shape.activations_len())?;
        check_len(op, "dy_last", dy_last, shape.batch * shape.width)?;
        check_len(op, "dz", dz, shape.activations_len())?;
        check_len(op, "grads", grads, shape.grads_len())?;
        let lanes = shape.lanes();
        let key = format!("fused_mlp:{act}:{lanes}");
        let walk = self.pipeline(&key, "backward", || fused_source(act, lanes), false)?;
        let gkey = format!("fused_mlp_grads:{act}");
        let wgrad = self.pipeline(&gkey, "weight_grads", || fused_grads_source(act), false)?;
        let params = self.params(&self.fused_params(shape))?;
        let tiles = |n: usize| (n as u32).div_ceil(TILE);
        let rows_w = tiles(shape.width);
        let (tiles_k0, tiles_k) = (tiles(shape.input + 1), tiles(shape.width + 1));
        let gp = GradParams {
            batch: shape.batch as u32,
            input: shape.input as u32,
            width: shape.width as u32,
            layers: shape.layers as u32,
            first_tiles: rows_w * tiles_k0,
            hidden_tiles: rows_w * tiles_k,
            tiles_k0,
            tiles_k,
        };
        let total_tiles =
            gp.first_tiles as u64 + (shape.layers as u64 - 1) * gp.hidden_tiles as u64;
        let max_dim = self.limits().max_compute_workgroups_per_dimension as u64;
        if total_tiles > max_dim {
            return Err(Error::DeviceLimit {
                what: format!("the fused weight gradients of {shape:?}"),
                limit: "max_compute_workgroups_per_dimension".into(),
                needed: total_tiles,
                available: max_dim,
            });
        }
        let grad_params = self.params(&gp)?;
        let groups = self.row_blocks(shape)?;
        self.scoped("recording the fused backward", || {
            record_pass(
                self,
                encoder,
                "fused mlp backward",
                &walk,
                &[
                    (0, &params),
                    (2, &w.buffer),
                    (4, &saved.buffer),
                    (5, &dy_last.buffer),
                    (6, &dz.buffer),
                ],
                (groups, 1, 1),
            );
            record_pass(
                self,
                encoder,
                "fused mlp weight gradients",
                &wgrad,
                &[
                    (0, &grad_params),
                    (1, &x.buffer),
                    (2, &saved.buffer),
                    (3, &dz.buffer),
                    (4, &grads.buffer),
                ],
                (total_tiles as u32, 1, 1),
            );
        })
    }

    fn fused_params(&self, shape: FusedShape) -> FusedParams {
        FusedParams {
            batch: shape.batch as u32,
            input: shape.input as u32,
            width: shape.width as u32,
            layers: shape.layers as u32,
        }
    }

    /// Workgroups of the forward and backward kernels: one per 16 rows.
    fn row_blocks(&self, shape: FusedShape) -> Result<u32, Error> {
        let blocks = (shape.batch as u64).div_ceil(ROWS as u64);
        let max_dim = self.limits().max_compute_workgroups_per_dimension as u64;
        if blocks > max_dim {
            return Err(Error::DeviceLimit {
                what: format!("the fused MLP over {} rows", shape.batch),
                limit: "max_compute_workgroups_per_dimension".into(),
                needed: blocks,
                available: max_dim,
            });
        }
        Ok(blocks as u32)
    }

    /// Uploads a stack's (weight, bias) pairs packed for the fused kernels.
    fn upload_stack(
        &self,
        op: &str,
        shape: FusedShape,
        layers: &[(Vec<f32>, Vec<f32>)],
    ) -> Result<(GpuTensor, GpuTensor), Error> {
        if layers.len() != shape.layers {
            return Err(Error::shape(
                format!("{op}: layers"),
                shape.layers.to_string(),
                layers.len().to_string(),
            ));
        }
        let mut w = Vec::with_capacity(shape.weight_len());
        let mut b = Vec::with_capacity(shape.bias_len());
        for (l, (wl, bl)) in layers.iter().enumerate() {
            let fan_in = if l == 0 { shape.input } else { shape.width };
            if wl.len() != shape.width * fan_in || bl.len() != shape.width {
                return Err(Error::shape(
                    format!("{op}: layer {l} (weight, bias)"),
                    format!("({} x {fan_in}, {})", shape.width, shape.width),
                    format!("({} floats, {})", wl.len(), bl.len()),
                ));
            }
            w.extend_from_slice(wl);
            b.extend_from_slice(bl);
        }
        Ok((
            self.upload(&w, 1, w.len())?,
            self.upload(&b, 1, b.len())?,
        ))
    }

    /// The fused forward pass from host slices: `x` is `[batch, input]`,
    /// `layers` the (weight `[width, in_l]`, bias `[width]`) of each hidden
    /// layer, every one with activation `act`.
    ///
    /// ```no_run
    /// use fusedmlp::gpu::fused::FusedShape;
    /// use fusedmlp::{Activation, Gpu};
    /// let gpu = Gpu::new()?;
    /// let shape = FusedShape { batch: 2, input: 1, width: 2, layers: 2 };
    /// let layers = vec![(vec![1.0, -1.0], vec![0.0, 0.0]), (vec![1.0, 1.0, 0.0, 1.0], vec![0.5, 0.0])];
    /// let out = gpu.fused_mlp_forward(Activation::Relu, &[2.0, -3.0], &layers, shape)?;
    /// assert_eq!(out.y_last, vec![2.5, 0.0, 3.5, 3.0]);
    /// # Ok::<(), fusedmlp::Error>(())
    /// ```
    pub fn fused_mlp_forward(
        &self,
        act: Activation,
        x: &[f32],
        layers: &[(Vec<f32>, Vec<f32>)],
        shape: FusedShape,
    ) -> Result<FusedForward, Error> {
        shape.check()?;
        let op = "fused_mlp_forward";
        let xt = self.upload(x, shape.batch, shape.input)?;
        let (w, b) = self.upload_stack(op, shape, layers)?;
        let saved = self.zeros(1, shape.activations_len())?;
        let y_last = self.zeros(shape.batch, shape.width)?;
        let mut encoder = self.device().create_command_encoder(&Default::default());
        self.record_fused_mlp_forward(&mut encoder, act, shape, &xt, &w, &b, &saved, &y_last)?;
        self.submit(op, vec![encoder.finish()])?;
        let per_layer = shape.batch * shape.width;
        Ok(FusedForward {
            saved: self
                .download(&saved)?
                .chunks(per_layer)
                .map(<[f32]>::to_vec)
                .collect(),
            y_last: self.download(&y_last)?,
        })
    }

    /// The fused forward (keeping what the backward needs) and backward
    /// passes from host slices, for upstream gradient `dy_last`
    /// (`[batch, width]`, dL/dy of the last hidden layer).
    pub fn fused_mlp_backward(
        &self,
        act: Activation,
        x: &[f32],
        layers: &[(Vec<f32>, Vec<f32>)],
        dy_last: &[f32],
        shape: FusedShape,
    ) -> Result<FusedGrads, Error> {
        shape.check()?;
        let op = "fused_mlp_backward";
        let xt = self.upload(x, shape.batch, shape.input)?;
        let (w, b) = self.upload_stack(op, shape, layers)?;
        let dyt = self.upload(dy_last, shape.batch, shape.width)?;
        let saved = self.zeros(1, shape.activations_len())?;
        let y_last = self.zeros(shape.batch, shape.width)?;
        let dz = self.zeros(1, shape.activations_len())?;
        let grads = self.zeros(1, shape.grads_len())?;
        let mut encoder = self.device().create_command_encoder(&Default::default());
        self.record_fused_mlp_forward(&mut encoder, act, shape, &xt, &w, &b, &saved, &y_last)?;
        self.record_fused_mlp_backward(
            &mut encoder,
            act,
            shape,
            &xt,
            &w,
            &saved,
            &dyt,
            &dz,
            &grads,
        )?;
        self.submit(op, vec![encoder.finish()])?;
        let per_layer = shape.batch * shape.width;
        let flat = self.download(&grads)?;
        let mut out = Vec::with_capacity(shape.layers);
        let mut at = 0;
        for l in 0..shape.layers {
            let fan_in = if l == 0 { shape.input } else { shape.width };
            let dw = flat[at..at + shape.width * fan_in].to_vec();
            at += shape.width * fan_in;
            let db = flat[at..at + shape.width].to_vec();
            at += shape.width;
            out.push((dw, db));
        }
        Ok(FusedGrads {
            dz: self
                .download(&dz)?
                .chunks(per_layer)
                .map(<[f32]>::to_vec)
                .collect(),
            grads: out,
        })
    }
}
