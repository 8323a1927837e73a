//! The fully fused path in a training step: which nets it takes, and the
//! recording of the hidden stack's forward and backward through it and of
//! the output layer in one kernel (clipping, the optimizer and the checks
//! stay as on the layered path, except that plain SGD without clipping is
//! folded into the output layer's and the weight gradients' kernels with
//! the checks, [`Trainer::folds_sgd`]; on logged steps the stack also
//! keeps every pre-activation, for the diagnostics). Its kernels work in
//! the arenas: nothing is copied in or out.

use super::*;
use crate::gpu::fused::{ArenaOffsets, FusedBuffers, FusedShape, SgdFold};
use crate::nn::MlpConfig;
use crate::nn::ParamLayout;
use crate::train::config::Kernels;

/// The fused stack of a training run. Its kernels read the weights and
/// biases straight from the model's parameter arena and write the
/// gradients straight into the trainer's gradient arena; the hidden
/// layers' outputs (`bufs.ys`) are the trainer's own (each layer's `y` is
/// a view of it): a step packs and unpacks nothing.
pub(super) struct FusedState {
    pub(super) shape: FusedShape,
    pub(super) bufs: FusedBuffers,
}

/// The fused shape of `mc`'s hidden stack at `batch` rows, or why the fused
/// path cannot run it.
pub(super) fn fused_shape(mc: &MlpConfig, batch: usize) -> Result<FusedShape, String> {
    let width = *mc.hidden.first().ok_or("the net has no hidden layer")?;
    if mc.hidden.iter().any(|&w| w != width) {
        return Err(format!(
            "its hidden layers differ in width ({:?}); the fused stack needs one width",
            mc.hidden
        ));
    }
    if width > crate::gpu::fused::MAX_FUSED_WIDTH {
        return Err(format!(
            "its hidden width {width} is over {}",
            crate::gpu::fused::MAX_FUSED_WIDTH
        ));
    }
    let unsupported = [
        (mc.residual, "residual connections"),
        (mc.dropout > 0.0, "dropout"),
        (mc.learn_prelu.is_some(), "learned PReLU slopes"),
        (mc.layer_norm.is_some(), "LayerNorm"),
        (mc.batch_norm.is_some(), "BatchNorm"),
    ];
    if let Some((_, what)) = unsupported.iter().find(|(on, _)| *on) {
        return Err(format!(
            "it uses {what}, which the fused stack does not run"
        ));
    }
    Ok(FusedShape {
        batch,
        input: mc.input,
        width,
        layers: mc.hidden.len(),
    })
}

/// Whether a run with `kernels` uses the fused stack for `mc` at `batch`
/// rows: `Some(shape)` if so, an error if it was asked for and cannot.
pub(super) fn choose(
    kernels: Kernels,
    mc: &MlpConfig,
    batch: usize,
) -> Result<Option<FusedShape>, Error> {
    match (kernels, fused_shape(mc, batch)) {
        (Kernels::Layered, _) => Ok(None),
        (Kernels::Fused, Ok(shape)) => Ok(Some(shape)),
        (Kernels::Fused, Err(why)) => Err(Error::Config(format!(
            "the fused kernels cannot train this net: {why}; use kernels auto or layered"
        ))),
        (Kernels::Auto, Ok(shape)) if Kernels::auto_picks_fused(batch) => Ok(Some(shape)),
        (Kernels::Auto, _) => Ok(None),
    }
}

/// `shaders/head.wgsl`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct HeadParams {
    rows: u32,
    classes: u32,
    width: u32,
    kind: u32,
    grad_scale: f32,
    w_off: u32,
    b_off: u32,
    dw_off: u32,
    db_off: u32,
    /// The output layer's index (its finite-check slots).
    layer: u32,
    pad: [u32; 2],
}

/// The output-layer kernel's parameters for `mc` at `rows` rows, or `None`
/// where the output layer is not a plain linear layer the kernel runs.
pub(super) fn head_params(
    gpu: &Gpu,
    mc: &MlpConfig,
    layout: &ParamLayout,
    rows: usize,
) -> Result<Option<wgpu::Buffer>, Error> {
    let l = mc.hidden.len();
    let plain = mc.layer_activation(l) == Activation::Identity
        && !mc.has_norm(l)
        && !mc.has_dropout(l)
        && !mc.is_residual(l)
        && mc.slope_count(l) == 0;
    let (Some(w), Some(b)) = (
        layout.find(l, ParamKind::Weight),
        layout.find(l, ParamKind::Bias),
    ) else {
        return Ok(None);
    };
    if !plain {
        return Ok(None);
    }
    let u32s = |v: usize| {
        u32::try_from(v).map_err(|_| {
            Error::Config("the output layer is too large for the head kernel's u32 indices".into())
        })
    };
    let params = HeadParams {
        rows: u32s(rows)?,
        classes: u32s(mc.output)?,
        width: u32s(w.cols)?,
        kind: mc.head.kind(),
        grad_scale: mc.head.grad_scale(rows, mc.output),
        // The gradient arena has the parameter arena's layout.
        w_off: u32s(w.offset)?,
        b_off: u32s(b.offset)?,
        dw_off: u32s(w.offset)?,
        db_off: u32s(b.offset)?,
        layer: u32s(l)?,
        pad: [0; 2],
    };
    Ok(Some(gpu.table("the output layer's parameters", &[params])?))
}

impl FusedState {
    pub(super) fn new(
        gpu: &Gpu,
        act: Activation,
        shape: FusedShape,
        layout: &ParamLayout,
    ) -> Result<Self, Error> {
        let offsets = (0..shape.layers)
            .map(|l| {
                let at = |kind| layout.find(l, kind).map(|e| e.offset);
                match (at(ParamKind::Weight), at(ParamKind::Bias)) {
                    (Some(weight), Some(bias)) => Ok(ArenaOffsets { weight, bias }),
                    _ => Err(Error::Config(format!(
                        "hidden layer {l} has no weight or bias in the parameter arena"
                    ))),
                }
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(FusedState {
            shape,
            // The forward gathers the batch itself where it can.
            bufs: gpu.fused_buffers_in_arena(act, shape, &offsets, true)?,
        })
    }
}

impl Trainer {
    /// Records the hidden stack's forward through the fused kernels (one
    /// dispatch for the whole stack, plus one that lays the weights out
    /// where the kernels cannot read them where they lie), on the batch
    /// the step's gather left, or, where the forward gathers, on the rows
    /// of the resident split the step's offset picks (the forward then
    /// writes the batch and its labels where the gather would have); every
    /// hidden layer's output lands in its `y` (a view of the stack's
    /// outputs), and with `keep_all_z` every pre-activation in its `z`.
    pub(super) fn record_fused_forward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        fused: &FusedState,
        keep_all_z: bool,
    ) -> Result<(), Error> {
        let arena = self.model.arena();
        let (x, bufs) = (&self.x_batch, &fused.bufs);
        if bufs.gathers() {
            let from = crate::gpu::fused::BatchSource {
                labels: &self.train_y,
                perm: &self.perm,
                step: &self.step_state,
                x_batch: &self.x_batch,
                y_batch: &self.y_batch,
            };
            return self.gpu.record_fused_mlp_forward_gathering(
                encoder,
                &self.train_x,
                &from,
                arena,
                arena,
                bufs,
                keep_all_z,
            );
        }
        if keep_all_z {
            self.gpu
                .record_fused_mlp_forward_keeping_z(encoder, x, arena, arena, bufs)
        } else {
            self.gpu
                .record_fused_mlp_forward(encoder, x, arena, arena, bufs)
        }
    }

    /// Records the hidden stack's forward over the rows of `split` from
    /// `start` on, in evaluation, through a forward that gathers its batch
    /// ([`FusedBuffers::gathers`](crate::gpu::fused::FusedBuffers)): the rows
    /// are taken in order (the identity order from `start`, the offset in a
    /// parameter block of its own instead of the step state).
    pub(super) fn record_fused_evaluation(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        fused: &FusedState,
        (x, y): (&GpuTensor, &GpuTensor),
        start: usize,
    ) -> Result<(), Error> {
        let offset = u32::try_from(start).map_err(|_| {
            Error::Config("a split is too large for the gather's u32 offsets".into())
        })?;
        // The offset and the split's last row where a training step's step
        // state holds them.
        let words = self.gpu.params(&StepState {
            batch_offset: offset,
            last_row: u32::try_from(x.rows().saturating_sub(1)).unwrap_or(u32::MAX),
            ..bytemuck::Zeroable::zeroed()
        })?;
        let from = crate::gpu::fused::BatchSource {
            labels: y,
            perm: &self.identity_perm,
            step: &words,
            x_batch: &self.x_batch,
            y_batch: &self.y_batch,
        };
        let arena = self.model.arena();
        self.gpu.record_fused_mlp_forward_gathering(
            encoder,
            x,
            &from,
            arena,
            arena,
            &fused.bufs,
            false,
        )
    }

    /// Records the output layer of a training step in one dispatch
    /// (`shaders/head.wgsl`): the logits from the stack's last output, the
    /// loss and the batch's statistics, the output layer's weight and bias
    /// gradients into the gradient arena and dL/dy of the last hidden layer
    /// (where the stack's backward starts). On logged steps the logits are
    /// also copied to the output layer's z, which the diagnostics read.
    /// With `fold` ([`Trainer::folds_sgd`]) it also updates the output
    /// layer's weight and bias by plain SGD (`head_step_sgd`).
    pub(super) fn record_head(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        params: &wgpu::Buffer,
        log: bool,
        fold: Option<&SgdFold<'_>>,
    ) -> Result<(), Error> {
        let gpu = &self.gpu;
        let n = self.layers.len();
        let (last, out) = (&self.layers[n - 2], &self.layers[n - 1]);
        let vec4 = last.y.cols().is_multiple_of(4);
        let pipeline =
            match fold {
                Some(_) if vec4 => {
                    gpu.pipeline("head4", "head_step_sgd", shader::head4_source, false)?
                }
                Some(_) => return Err(Error::Config(
                    "the output layer folds SGD in only where the hidden width is a multiple of 4"
                        .into(),
                )),
                None if vec4 => gpu.pipeline("head4", "head_step", shader::head4_source, false)?,
                None => gpu.pipeline("head", "head_step", shader::head_source, false)?,
            };
        let mut bindings: Vec<(u32, &dyn crate::gpu::tensor::Bind)> = vec![
            (0, params),
            (1, &last.y),
            (2, self.model.arena()),
            (3, &self.y_batch),
            (4, &out.y),
            (5, &out.dy),
            (6, &self.row_stats),
            (7, &last.dy),
            (8, &self.grads),
            (9, &self.stats),
        ];
        if let Some(f) = fold {
            bindings.extend(f.fold_bindings());
        }
        gpu.scoped("recording the output layer", || {
            record_pass(gpu, encoder, "head", &pipeline, &bindings, (1, 1, 1));
            if log {
                let (from, at) = out.y.raw();
                let (to, to_at) = out.z.raw();
                crate::gpu::plan::copy_buffer(
                    encoder,
                    (from, at),
                    (to, to_at),
                    out.y.len() as u64 * 4,
                );
            }
        })
    }

    /// Records the hidden stack's backward through the fused kernels, from
    /// dL/dy of the last hidden layer (which the output layer's backward
    /// wrote), every layer's (dW, db) written into the gradient arena,
    /// where clipping, the optimizer and the checks read them; with `fold`
    /// the weight-gradient dispatch also makes the SGD update.
    pub(super) fn record_fused_backward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        fused: &FusedState,
        fold: Option<&SgdFold<'_>>,
    ) -> Result<(), Error> {
        let dy_last = &self.layers[fused.shape.layers - 1].dy;
        self.gpu.record_fused_mlp_backward_into(
            encoder,
            &self.x_batch,
            self.model.arena(),
            dy_last,
            &fused.bufs,
            &self.grads,
            fold,
        )
    }

    /// Whether a step folds its optimizer into the kernels that make the
    /// gradients (the output layer's and the stack's weight gradients),
    /// with the finite checks: plain SGD (momentum, Nesterov and weight
    /// decay included) without clipping (whose norm needs every gradient
    /// before any update), on a fused stack whose weight-gradient kernel
    /// can ([`FusedBuffers::folds_sgd`]) and whose forward gathers (a
    /// device allowing the 14 storage buffers the folded output layer
    /// binds).
    pub(super) fn folds_sgd(&self) -> bool {
        matches!(self.config.optimizer, Optimizer::Sgd { .. })
            && self.config.clip_norm.is_none()
            && self.head.is_some()
            && self
                .fused
                .as_ref()
                .is_some_and(|f| f.bufs.gathers() && f.bufs.folds_sgd())
    }
}
