//! LayerNorm kernels (`shaders/norm.wgsl`), recorded into caller-owned encoders.

use super::context::Gpu;
use super::elementwise::record_pass;
use super::shader;
use super::tensor::GpuTensor;
use crate::activation::Activation;
use crate::error::Error;

/// LayerNorm's epsilon, as `torch.nn.LayerNorm`.
pub const LAYER_NORM_EPS: f32 = 1e-5;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct NormParams {
    rows: u32,
    cols: u32,
    before: u32,
    eps: f32,
}

/// The buffers of one layer's LayerNorm, forward and backward.
#[derive(Debug, Clone)]
pub struct LayerNormBuffers {
    /// The normalised input x̂ `[rows, cols]`.
    pub xhat: GpuTensor,
    /// 1/σ per row `[rows, 1]`.
    pub rstd: GpuTensor,
    /// n = γ·x̂ + β `[rows, cols]`.
    pub n: GpuTensor,
    /// dL/dn `[rows, cols]`.
    pub dn: GpuTensor,
    /// dL/d(input) `[rows, cols]`.
    pub d_in: GpuTensor,
}

impl Gpu {
    /// Allocates LayerNorm buffers for `rows × cols`.
    pub fn layer_norm_buffers(&self, rows: usize, cols: usize) -> Result<LayerNormBuffers, Error> {
        Ok(LayerNormBuffers {
            xhat: self.zeros(rows, cols)?,
            rstd: self.zeros(rows, 1)?,
            n: self.zeros(rows, cols)?,
            dn: self.zeros(rows, cols)?,
            d_in: self.zeros(rows, cols)?,
        })
    }

    fn norm_params(&self, rows: usize, cols: usize, before: bool) -> Result<wgpu::Buffer, Error> {
        self.uniform(&NormParams {
            rows: rows as u32,
            cols: cols as u32,
            before: before as u32,
            eps: LAYER_NORM_EPS,
        })
    }

    fn norm_pipeline(
        &self,
        act: Activation,
        entry: &str,
    ) -> Result<std::sync::Arc<wgpu::ComputePipeline>, Error> {
        self.pipeline(
            &format!("norm[{act}]"),
            entry,
            || shader::assemble(shader::NORM_WGSL, Some(act)),
            false,
        )
    }

    /// Records LayerNorm of `a` (`rows` rows): writes x̂, 1/σ and n; when
    /// `before`, also `y = act(n)` (`y` is ignored otherwise).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_layer_norm_forward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        act: Activation,
        before: bool,
        (gamma, beta): (&GpuTensor, &GpuTensor),
        a: &GpuTensor,
        buffers: &LayerNormBuffers,
        y: &GpuTensor,
    ) -> Result<(), Error> {
        let pipeline = self.norm_pipeline(act, "layernorm_forward")?;
        let params = self.norm_params(a.rows(), a.cols(), before)?;
        // After the activation `y` is not written; bind scratch so the input
        // is never also bound writable.
        let y = if before { y } else { &buffers.d_in };
        self.scoped("recording layernorm_forward", || {
            record_pass(
                self,
                encoder,
                "layernorm_forward",
                &pipeline,
                &[
                    (0, &params),
                    (1, gamma.buffer()),
                    (2, beta.buffer()),
                    (3, a.buffer()),
                    (4, buffers.xhat.buffer()),
                    (5, buffers.rstd.buffer()),
                    (6, buffers.n.buffer()),
                    (7, y.buffer()),
                ],
                ((a.rows() as u32).div_ceil(64), 1, 1),
            )
        })
    }

    /// Records LayerNorm's backward from `g_out` (dL/dy when `before`, else
    /// dL/dn): writes dL/dn, dL/d(input), and the scale and shift gradients.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_layer_norm_backward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        act: Activation,
        before: bool,
        gamma: &GpuTensor,
        g_out: &GpuTensor,
        buffers: &LayerNormBuffers,
        (dgamma, dbeta): (&GpuTensor, &GpuTensor),
    ) -> Result<(), Error> {
        let rows = g_out.rows();
        let cols = g_out.cols();
        let backward = self.norm_pipeline(act, "layernorm_backward")?;
        let grads = self.norm_pipeline(act, "layernorm_param_grads")?;
        let params = self.norm_params(rows, cols, before)?;
        self.scoped("recording layernorm_backward", || {
            record_pass(
                self,
                encoder,
                "layernorm_backward",
                &backward,
                &[
                    (0, &params),
                    (1, gamma.buffer()),
                    (8, g_out.buffer()),
                    (9, buffers.dn.buffer()),
                    (10, buffers.d_in.buffer()),
                    (11, buffers.n.buffer()),
                    (12, buffers.xhat.buffer()),
                    (13, buffers.rstd.buffer()),
                ],
                ((rows as u32).div_ceil(64), 1, 1),
            );
            record_pass(
                self,
                encoder,
                "layernorm_param_grads",
                &grads,
                &[
                    (0, &params),
                    (14, buffers.dn.buffer()),
                    (12, buffers.xhat.buffer()),
                    (15, dgamma.buffer()),
                    (16, dbeta.buffer()),
                ],
                ((cols as u32).div_ceil(64), 1, 1),
            );
        })
    }
}

impl LayerNormBuffers {
    /// The first `rows` rows of every buffer (evaluation chunks).
    pub fn prefix_rows(&self, rows: usize) -> Result<LayerNormBuffers, Error> {
        Ok(LayerNormBuffers {
            xhat: self.xhat.prefix_rows(rows)?,
            rstd: self.rstd.prefix_rows(rows)?,
            n: self.n.prefix_rows(rows)?,
            dn: self.dn.prefix_rows(rows)?,
            d_in: self.d_in.prefix_rows(rows)?,
        })
    }
}
