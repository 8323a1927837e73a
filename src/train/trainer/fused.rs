//! The fully fused path in a training step: which nets it takes, and the
//! recording of the hidden stack's forward and backward through it (the
//! output layer, the loss, clipping, the optimizer and the checks stay as
//! on the layered path; logged steps run layered, for the diagnostics'
//! per-layer pre-activations).

use super::*;
use crate::gpu::fused::{FusedBuffers, FusedShape};
use crate::nn::MlpConfig;
use crate::train::config::Kernels;

/// The fused stack of a training run and the packed copies of its
/// parameters the fused kernels read.
pub(super) struct FusedState {
    pub(super) shape: FusedShape,
    pub(super) bufs: FusedBuffers,
    weights: GpuTensor,
    biases: GpuTensor,
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
    pub(super) fn new(gpu: &Gpu, act: Activation, shape: FusedShape) -> Result<Self, Error> {
        Ok(FusedState {
            shape,
            bufs: gpu.fused_buffers(act, shape)?,
            weights: gpu.zeros(1, shape.weight_len())?,
            biases: gpu.zeros(1, shape.bias_len())?,
        })
    }
}

fn copy(
    encoder: &mut wgpu::CommandEncoder,
    from: (&GpuTensor, usize),
    to: (&GpuTensor, usize),
    floats: usize,
) {
    from.0.record_copy_to(encoder, from.1, to.0, to.1, floats);
}

impl Trainer {
    /// Records the hidden stack's forward through the fused kernels on the
    /// gathered batch: the parameters copied into the packed layout, one
    /// dispatch for the layout and one for the stack, then each layer's
    /// output copied to its layer state (the output layer's input, and what
    /// the finite checks read).
    pub(super) fn record_fused_forward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        fused: &FusedState,
    ) -> Result<(), Error> {
        let s = fused.shape;
        self.gpu
            .scoped("packing the fused stack's parameters", || {
                for l in 0..s.layers {
                    let p = &self.model.layers[l];
                    copy(
                        encoder,
                        (&p.weight, 0),
                        (&fused.weights, s.weight_offset(l)),
                        p.weight.len(),
                    );
                    copy(encoder, (&p.bias, 0), (&fused.biases, l * s.width), s.width);
                }
            })?;
        self.gpu.record_fused_mlp_forward(
            encoder,
            &self.x_batch,
            &fused.weights,
            &fused.biases,
            &fused.bufs,
        )?;
        let per_layer = s.batch * s.width;
        self.gpu.scoped("unpacking the fused stack's outputs", || {
            for l in 0..s.layers {
                copy(
                    encoder,
                    (&fused.bufs.ys, l * per_layer),
                    (&self.layers[l].y, 0),
                    per_layer,
                );
            }
        })
    }

    /// Records the hidden stack's backward through the fused kernels, from
    /// dL/dy of the last hidden layer (which the output layer's backward
    /// wrote), then copies each layer's (dW, db) to its layer state, where
    /// clipping, the optimizer and the checks read them.
    pub(super) fn record_fused_backward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        fused: &FusedState,
    ) -> Result<(), Error> {
        let s = fused.shape;
        let dy_last = &self.layers[s.layers - 1].dy;
        self.gpu
            .record_fused_mlp_backward(encoder, &self.x_batch, dy_last, &fused.bufs)?;
        self.gpu
            .scoped("unpacking the fused stack's gradients", || {
                for l in 0..s.layers {
                    let layer = &self.layers[l];
                    let at = s.grads_offset(l);
                    copy(
                        encoder,
                        (&fused.bufs.grads, at),
                        (&layer.dw, 0),
                        layer.dw.len(),
                    );
                    copy(
                        encoder,
                        (&fused.bufs.grads, at + layer.dw.len()),
                        (&layer.db, 0),
                        s.width,
                    );
                }
            })
    }
}
