//! The fully fused path in a training step: which nets it takes, and the
//! recording of the hidden stack's forward and backward through it (the
//! output layer, the loss, clipping, the optimizer and the checks stay as
//! on the layered path; on logged steps the stack also keeps every
//! pre-activation, for the diagnostics). Its kernels work in the arenas:
//! nothing is copied in or out.

use super::*;
use crate::gpu::fused::{ArenaOffsets, FusedBuffers, FusedShape};
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
            bufs: gpu.fused_buffers_in_arena(act, shape, &offsets)?,
        })
    }
}

impl Trainer {
    /// Records the hidden stack's forward through the fused kernels on the
    /// gathered batch (one dispatch for the whole stack, plus one that
    /// lays the weights out where the kernels cannot read them where they
    /// lie); every hidden layer's output
    /// lands in its `y` (a view of the stack's outputs), and with
    /// `keep_all_z` every pre-activation in its `z`.
    pub(super) fn record_fused_forward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        fused: &FusedState,
        keep_all_z: bool,
    ) -> Result<(), Error> {
        let arena = self.model.arena();
        let (x, bufs) = (&self.x_batch, &fused.bufs);
        if keep_all_z {
            self.gpu
                .record_fused_mlp_forward_keeping_z(encoder, x, arena, arena, bufs)
        } else {
            self.gpu
                .record_fused_mlp_forward(encoder, x, arena, arena, bufs)
        }
    }

    /// Records the hidden stack's backward through the fused kernels, from
    /// dL/dy of the last hidden layer (which the output layer's backward
    /// wrote), every layer's (dW, db) written into the gradient arena,
    /// where clipping, the optimizer and the checks read them.
    pub(super) fn record_fused_backward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        fused: &FusedState,
    ) -> Result<(), Error> {
        let dy_last = &self.layers[fused.shape.layers - 1].dy;
        self.gpu.record_fused_mlp_backward_into(
            encoder,
            &self.x_batch,
            self.model.arena(),
            dy_last,
            &fused.bufs,
            &self.grads,
        )
    }
}
