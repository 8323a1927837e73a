//! LayerNorm and BatchNorm1d kernels (`shaders/norm.wgsl`), recorded into
//! caller-owned encoders.

use serde::{Deserialize, Serialize};

use super::context::Gpu;
use super::elementwise::{record_pass, split_rows};
use super::shader;
use super::tensor::{Bind, GpuTensor};
use crate::activation::Activation;
use crate::error::Error;

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

/// LayerNorm's epsilon, as `torch.nn.LayerNorm`.
pub const LAYER_NORM_EPS: f32 = 1e-5;

/// BatchNorm1d's epsilon, as `torch.nn.BatchNorm1d`.
pub const BATCH_NORM_EPS: f32 = 1e-5;

/// BatchNorm1d's running-estimate momentum, as `torch.nn.BatchNorm1d`:
/// `running = (1 − momentum)·running + momentum·batch`.
pub const BATCH_NORM_MOMENTUM: f32 = 0.1;

/// How a normalisation layer runs in one pass.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NormMode<'a> {
    /// LayerNorm (no running statistics).
    Layer,
    /// BatchNorm1d with its running (mean, variance): batch statistics that
    /// update them when `training`, the running estimates otherwise.
    Batch {
        running: (&'a GpuTensor, &'a GpuTensor),
        training: bool,
    },
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct NormParams {
    rows: u32,
    cols: u32,
    before: u32,
    eps: f32,
    training: u32,
    momentum: f32,
    pad: [u32; 2],
}

/// The buffers of one layer's normalisation, forward and backward.
#[derive(Debug, Clone)]
pub struct NormBuffers {
    /// LayerNorm or BatchNorm1d.
    pub kind: NormKind,
    /// The normalised input x̂ `[rows, cols]`.
    pub xhat: GpuTensor,
    /// 1/σ: per row `[rows, 1]` (LayerNorm) or per feature `[1, cols]`
    /// (BatchNorm1d).
    pub rstd: GpuTensor,
    /// BatchNorm1d: the mean each feature was centred on `[1, cols]`
    /// (LayerNorm: unused, `[1, 1]`).
    pub mean: GpuTensor,
    /// n = γ·x̂ + β `[rows, cols]`.
    pub n: GpuTensor,
    /// dL/dn `[rows, cols]`.
    pub dn: GpuTensor,
    /// dL/d(input) `[rows, cols]`.
    pub d_in: GpuTensor,
}

impl Gpu {
    /// Allocates normalisation buffers for `rows × cols`.
    pub(crate) fn norm_buffers(
        &self,
        kind: NormKind,
        rows: usize,
        cols: usize,
    ) -> Result<NormBuffers, Error> {
        Ok(NormBuffers {
            kind,
            xhat: self.zeros(rows, cols)?,
            rstd: match kind {
                NormKind::Layer => self.zeros(rows, 1)?,
                NormKind::Batch => self.zeros(1, cols)?,
            },
            mean: match kind {
                NormKind::Layer => self.zeros(1, 1)?,
                NormKind::Batch => self.zeros(1, cols)?,
            },
            n: self.zeros(rows, cols)?,
            dn: self.zeros(rows, cols)?,
            d_in: self.zeros(rows, cols)?,
        })
    }

    fn norm_params(
        &self,
        rows: usize,
        cols: usize,
        before: bool,
        mode: NormMode<'_>,
    ) -> Result<wgpu::Buffer, Error> {
        let (eps, training) = match mode {
            NormMode::Layer => (LAYER_NORM_EPS, false),
            NormMode::Batch { training, .. } => (BATCH_NORM_EPS, training),
        };
        self.params(&NormParams {
            rows: rows as u32,
            cols: cols as u32,
            before: before as u32,
            eps,
            training: training as u32,
            momentum: BATCH_NORM_MOMENTUM,
            pad: [0; 2],
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

    /// Records the normalisation of `a` (`rows` rows): writes x̂, 1/σ and
    /// n (and, for BatchNorm1d in training, updates the running estimates);
    /// when `before`, also `y = act(n)` (`y` is ignored otherwise).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_norm_forward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        act: Activation,
        before: bool,
        mode: NormMode<'_>,
        (gamma, beta): (&GpuTensor, &GpuTensor),
        a: &GpuTensor,
        buffers: &NormBuffers,
        y: &GpuTensor,
    ) -> Result<(), Error> {
        let params = self.norm_params(a.rows(), a.cols(), before, mode)?;
        // After the activation `y` is not written; bind scratch so the input
        // is never also bound writable.
        let y = if before { y } else { &buffers.d_in };
        let mut bindings: Vec<(u32, &dyn Bind)> = vec![
            (0, &params),
            (1, &gamma),
            (2, &beta),
            (3, &a),
            (4, &buffers.xhat),
            (6, &buffers.n),
            (7, &y),
        ];
        let NormMode::Batch { running, .. } = mode else {
            bindings.push((5, &buffers.rstd));
            let pipeline = self.norm_pipeline(act, "layernorm_forward")?;
            return self.scoped("recording layernorm_forward", || {
                record_pass(
                    self,
                    encoder,
                    "layernorm_forward",
                    &pipeline,
                    &bindings,
                    ((a.rows() as u32).div_ceil(64), 1, 1),
                )
            });
        };
        let stats = self.norm_pipeline(act, "batchnorm_stats")?;
        let apply = self.norm_pipeline(act, "batchnorm_apply")?;
        bindings.push((13, &buffers.rstd));
        bindings.push((20, &buffers.mean));
        let rows = a.rows() as u32;
        self.scoped("recording batchnorm_forward", || {
            record_pass(
                self,
                encoder,
                "batchnorm_stats",
                &stats,
                &[
                    (0, &params),
                    (3, &a),
                    (5, &buffers.rstd),
                    (17, &running.0),
                    (18, &running.1),
                    (19, &buffers.mean),
                ],
                ((a.cols() as u32).div_ceil(64), 1, 1),
            );
            record_pass(self, encoder, "batchnorm_apply", &apply, &bindings, {
                let (gy, gz) = split_rows(rows);
                ((a.cols() as u32).div_ceil(64), gy, gz)
            });
        })
    }

    /// Records the normalisation's backward (training statistics) from
    /// `g_out` (dL/dy when `before`, else dL/dn): writes dL/dn,
    /// dL/d(input), and the scale and shift gradients.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_norm_backward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        act: Activation,
        before: bool,
        gamma: &GpuTensor,
        g_out: &GpuTensor,
        buffers: &NormBuffers,
        (dgamma, dbeta): (&GpuTensor, &GpuTensor),
    ) -> Result<(), Error> {
        let rows = g_out.rows();
        let cols = g_out.cols();
        let params = self.norm_params(rows, cols, before, NormMode::Layer)?;
        let mut bindings: Vec<(u32, &dyn Bind)> = vec![
            (0, &params),
            (1, &gamma),
            (8, &g_out),
            (9, &buffers.dn),
            (10, &buffers.d_in),
            (11, &buffers.n),
            (12, &buffers.xhat),
            (13, &buffers.rstd),
        ];
        if buffers.kind == NormKind::Batch {
            let pipeline = self.norm_pipeline(act, "batchnorm_backward")?;
            bindings.push((15, &dgamma));
            bindings.push((16, &dbeta));
            return self.scoped("recording batchnorm_backward", || {
                record_pass(
                    self,
                    encoder,
                    "batchnorm_backward",
                    &pipeline,
                    &bindings,
                    ((cols as u32).div_ceil(64), 1, 1),
                )
            });
        }
        let backward = self.norm_pipeline(act, "layernorm_backward")?;
        let grads = self.norm_pipeline(act, "layernorm_param_grads")?;
        self.scoped("recording layernorm_backward", || {
            record_pass(
                self,
                encoder,
                "layernorm_backward",
                &backward,
                &bindings,
                ((rows as u32).div_ceil(64), 1, 1),
            );
            record_pass(
                self,
                encoder,
                "layernorm_param_grads",
                &grads,
                &[
                    (0, &params),
                    (14, &buffers.dn),
                    (12, &buffers.xhat),
                    (15, &dgamma),
                    (16, &dbeta),
                ],
                ((cols as u32).div_ceil(64), 1, 1),
            );
        })
    }
}

impl NormBuffers {
    /// The first `rows` rows of every per-row buffer (evaluation chunks).
    pub fn prefix_rows(&self, rows: usize) -> Result<NormBuffers, Error> {
        Ok(NormBuffers {
            kind: self.kind,
            xhat: self.xhat.prefix_rows(rows)?,
            rstd: match self.kind {
                NormKind::Layer => self.rstd.prefix_rows(rows)?,
                NormKind::Batch => self.rstd.clone(),
            },
            mean: self.mean.clone(),
            n: self.n.prefix_rows(rows)?,
            dn: self.dn.prefix_rows(rows)?,
            d_in: self.d_in.prefix_rows(rows)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: BatchNorm's forward once looped over the rows inside each
    /// feature's invocation, which on lavapipe ran about 200x slower than
    /// LayerNorm's for 64 features and 32 rows (one workgroup, a training
    /// step of a small net going from 25 to 134 ms). Its forward must stay
    /// within a small factor of LayerNorm's on the same tensor.
    #[test]
    fn batch_norm_forward_costs_about_what_layer_norm_does() {
        let Some(gpu) = crate::gpu::context::tests::gpu_for_test() else {
            return;
        };
        let run = || -> Result<(f64, f64), Error> {
            let (rows, cols) = (32, 64);
            let x: Vec<f32> = (0..rows * cols)
                .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
                .collect();
            let a = gpu.upload(&x, rows, cols)?;
            let g = gpu.upload(&vec![1.0; cols], 1, cols)?;
            let b = gpu.zeros(1, cols)?;
            let (rm, rv) = (gpu.zeros(1, cols)?, gpu.upload(&vec![1.0; cols], 1, cols)?);
            let y = gpu.zeros(rows, cols)?;
            let mut times = Vec::new();
            for (kind, mode) in [
                (
                    NormKind::Batch,
                    NormMode::Batch {
                        running: (&rm, &rv),
                        training: true,
                    },
                ),
                (NormKind::Layer, NormMode::Layer),
            ] {
                let bufs = gpu.norm_buffers(kind, rows, cols)?;
                let t = gpu.time_recorded(20, 5, |e| {
                    gpu.record_norm_forward(
                        e,
                        Activation::Relu,
                        true,
                        mode,
                        (&g, &b),
                        &a,
                        &bufs,
                        &y,
                    )
                })?;
                times.push(t.seconds);
            }
            Ok((times[0], times[1]))
        };
        let (batch, layer) = run().unwrap();
        assert!(
            batch < 10.0 * layer + 1e-4,
            "BatchNorm forward {:.3} ms against LayerNorm's {:.3} ms",
            batch * 1e3,
            layer * 1e3
        );
    }
}
