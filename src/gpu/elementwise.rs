//! Elementwise activation kernels (`shaders/elementwise.wgsl`) and the small
//! dispatch helpers every kernel uses.

use super::context::Gpu;
use super::shader;
use super::tensor::{Bind, GpuTensor};
use crate::activation::Activation;
use crate::error::Error;

/// Invocations per workgroup of the elementwise kernels.
const WORKGROUP: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ElementwiseParams {
    len: u32,
    row_stride: u32,
    _pad: [u32; 2],
}

/// A 2-D grid of workgroups covering `invocations` with `per_group` each,
/// within the per-dimension dispatch limit. Returns (x, y, invocations per row).
pub(crate) fn grid_1d(
    gpu: &Gpu,
    invocations: u64,
    per_group: u32,
) -> Result<(u32, u32, u32), Error> {
    let groups = invocations.div_ceil(per_group as u64).max(1);
    let max_dim = gpu.limits().max_compute_workgroups_per_dimension as u64;
    let x = groups.min(max_dim);
    let y = groups.div_ceil(x);
    if y > max_dim {
        return Err(Error::DeviceLimit {
            what: format!("a dispatch of {invocations} invocations"),
            limit: "max_compute_workgroups_per_dimension (squared)".into(),
            needed: groups,
            available: max_dim * max_dim,
        });
    }
    Ok((x as u32, y as u32, x as u32 * per_group))
}

/// The (y, z) workgroup counts that cover `rows` rows of a grid whose
/// shaders read the row as `gid.y + gid.z * 65535u` (the smallest
/// per-dimension dispatch limit WebGPU guarantees).
pub(crate) fn split_rows(rows: u32) -> (u32, u32) {
    (rows.min(65_535), rows.div_ceil(65_535))
}

/// Records one compute pass: `pipeline` over a grid, with `bindings`
/// (binding index, buffer) in group 0. Bind groups are built from the
/// pipeline's own layout, so each entry point binds only what it uses.
pub(crate) fn record_pass(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    pipeline: &wgpu::ComputePipeline,
    bindings: &[(u32, &dyn Bind)],
    groups: (u32, u32, u32),
) {
    record_pass_entries(
        gpu,
        encoder,
        label,
        pipeline,
        &buffer_entries(bindings),
        groups,
    );
}

/// A bind group entry for a texture view.
pub(crate) fn texture_entry(binding: u32, view: &wgpu::TextureView) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: wgpu::BindingResource::TextureView(view),
    }
}

/// A bind group entry for a whole buffer or a tensor's range.
pub(crate) fn buffer_entry(binding: u32, buffer: &dyn Bind) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.resource(),
    }
}

/// Bind group entries for (binding index, buffer) pairs, to which a caller
/// binding textures as well adds theirs.
pub(crate) fn buffer_entries<'a>(
    bindings: &'a [(u32, &'a dyn Bind)],
) -> Vec<wgpu::BindGroupEntry<'a>> {
    bindings
        .iter()
        .map(|(binding, buffer)| buffer_entry(*binding, *buffer))
        .collect()
}

/// [`record_pass`] with any binding resources (textures as well as buffers).
pub(crate) fn record_pass_entries(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    pipeline: &wgpu::ComputePipeline,
    entries: &[wgpu::BindGroupEntry],
    groups: (u32, u32, u32),
) {
    // Made once where a bind-group cache is installed (a trainer's step).
    let (bind_group, made) = super::plan::bind_group(pipeline, entries, || {
        gpu.inner
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(label),
                layout: &pipeline.get_bind_group_layout(0),
                entries,
            })
    });
    if made {
        super::context::CREATED.with(|c| c.set((c.get().0, c.get().1 + 1)));
    }
    super::plan::dispatch(gpu, encoder, label, pipeline, &bind_group, groups);
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// Parameters of shaders/regularize.wgsl.
pub(crate) struct RegParams {
    pub len: u32,
    pub row_stride: u32,
    pub seed: u32,
    pub pad0: u32,
    pub drop_threshold: u32,
    pub residual: u32,
    pub alpha: u32,
    pub pad: u32,
    pub scale: f32,
    pub alpha_prime: f32,
    pub affine_a: f32,
    pub affine_b: f32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PreluParams {
    rows: u32,
    cols: u32,
    per_unit: u32,
    row_stride: u32,
}

impl Gpu {
    fn prelu_params(&self, slopes: &GpuTensor, z: &GpuTensor) -> Result<wgpu::Buffer, Error> {
        let (_, _, row_stride) = grid_1d(self, z.len() as u64, 256)?;
        self.params(&PreluParams {
            rows: z.rows() as u32,
            cols: z.cols() as u32,
            per_unit: (slopes.len() > 1) as u32,
            row_stride,
        })
    }

    /// Records learned-PReLU `y = z > 0 ? z : a·z` with slopes from a buffer
    /// (one per layer, or one per unit when it holds `z.cols()` values).
    pub(crate) fn record_prelu_forward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        slopes: &GpuTensor,
        z: &GpuTensor,
        y: &GpuTensor,
    ) -> Result<(), Error> {
        let pipeline = self.pipeline(
            "regularize",
            "prelu_forward",
            || shader::REGULARIZE_WGSL.to_string(),
            false,
        )?;
        let (x, gy, _) = grid_1d(self, z.len() as u64, 256)?;
        let params = self.prelu_params(slopes, z)?;
        self.scoped("recording prelu_forward", || {
            record_pass(
                self,
                encoder,
                "prelu_forward",
                &pipeline,
                &[(8, &params), (9, &slopes), (10, &z), (11, &y)],
                (x, gy, 1),
            )
        })
    }

    /// Records the learned-PReLU backward: `dz` from `dy` and the slope
    /// gradient `da` (via the per-unit scratch `da_units`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_prelu_backward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        slopes: &GpuTensor,
        z: &GpuTensor,
        dy: &GpuTensor,
        dz: &GpuTensor,
        da_units: &GpuTensor,
        da: &GpuTensor,
    ) -> Result<(), Error> {
        let src = || shader::REGULARIZE_WGSL.to_string();
        let backward = self.pipeline("regularize", "prelu_backward", src, false)?;
        let reduce = self.pipeline("regularize", "prelu_slope_grad", src, false)?;
        let params = self.prelu_params(slopes, z)?;
        let groups = (z.cols() as u32).div_ceil(64);
        self.scoped("recording prelu_backward", || {
            record_pass(
                self,
                encoder,
                "prelu_backward",
                &backward,
                &[
                    (8, &params),
                    (9, &slopes),
                    (10, &z),
                    (12, &dy),
                    (13, &dz),
                    (14, &da_units),
                ],
                (groups, 1, 1),
            );
            record_pass(
                self,
                encoder,
                "prelu_slope_grad",
                &reduce,
                &[(8, &params), (15, &da_units), (16, &da)],
                (1, 1, 1),
            );
        })
    }

    /// Records `out = y + skip` (a residual connection in evaluation mode).
    pub(crate) fn record_skip_add(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        y: &GpuTensor,
        skip: &GpuTensor,
        out: &GpuTensor,
    ) -> Result<(), Error> {
        let pipeline = self.pipeline(
            "regularize",
            "regularize_forward",
            || shader::REGULARIZE_WGSL.to_string(),
            false,
        )?;
        let (x, gy, row_stride) = grid_1d(self, y.len() as u64, 256)?;
        let params = self.params(&RegParams {
            len: y.len() as u32,
            row_stride,
            residual: 1,
            ..bytemuck::Zeroable::zeroed()
        })?;
        // No dropout: the step number the masks would hash is not read.
        let zeros = self.params(&[0u32; 8])?;
        self.scoped("recording a residual add", || {
            record_pass(
                self,
                encoder,
                "regularize_forward",
                &pipeline,
                &[(0, &params), (1, &y), (2, &skip), (3, &out), (17, &zeros)],
                (x, gy, 1),
            )
        })
    }

    fn elementwise_pipeline(
        &self,
        act: Activation,
        entry: &str,
    ) -> Result<std::sync::Arc<wgpu::ComputePipeline>, Error> {
        act.validate()?;
        self.pipeline(
            &format!("elementwise[{act}]"),
            entry,
            || shader::assemble(shader::ELEMENTWISE_WGSL, Some(act)),
            false,
        )
    }

    /// Records `out = f(z)` on device tensors of equal length.
    pub fn record_activation_forward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        act: Activation,
        z: &GpuTensor,
        out: &GpuTensor,
    ) -> Result<(), Error> {
        if z.len() != out.len() {
            return Err(Error::shape(
                "activation_forward: out must have z's length",
                z.len(),
                out.len(),
            ));
        }
        self.record_elementwise(
            encoder,
            act,
            "activation_forward",
            &[(1, &z), (3, &out)],
            z.len(),
        )
    }

    fn record_elementwise(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        act: Activation,
        entry: &str,
        tensors: &[(u32, &dyn crate::gpu::tensor::Bind)],
        len: usize,
    ) -> Result<(), Error> {
        let pipeline = self.elementwise_pipeline(act, entry)?;
        let (x, y, row_stride) = grid_1d(self, len as u64, WORKGROUP)?;
        let params = self.params(&ElementwiseParams {
            len: len as u32,
            row_stride,
            _pad: [0; 2],
        })?;
        let mut bindings: Vec<(u32, &dyn Bind)> = vec![(0, &params)];
        bindings.extend_from_slice(tensors);
        self.scoped(&format!("recording {entry}"), || {
            record_pass(self, encoder, entry, &pipeline, &bindings, (x, y, 1))
        })
    }

    /// Records `dz = dy ⊙ f'(z)` on device tensors of equal length.
    pub fn record_activation_backward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        act: Activation,
        z: &GpuTensor,
        dy: &GpuTensor,
        dz: &GpuTensor,
    ) -> Result<(), Error> {
        if z.len() != dy.len() || z.len() != dz.len() {
            return Err(Error::shape(
                "activation_backward: z, dy and dz must have one length",
                format!("{} for each", z.len()),
                format!("z {}, dy {}, dz {}", z.len(), dy.len(), dz.len()),
            ));
        }
        self.record_elementwise(
            encoder,
            act,
            "activation_backward",
            &[(1, &z), (2, &dy), (3, &dz)],
            z.len(),
        )
    }

    /// Elements per chunk for host-side elementwise calls: whatever fits in
    /// one storage binding (longer inputs are processed in several chunks).
    fn elementwise_chunk(&self) -> usize {
        let binding = self.limits().max_storage_buffer_binding_size;
        let buffer = self.limits().max_buffer_size;
        (binding.min(buffer) / 4).min(u32::MAX as u64) as usize
    }

    /// `f(z)` for every element, on the GPU. Any length, including 0.
    pub fn activation_forward(&self, act: Activation, z: &[f32]) -> Result<Vec<f32>, Error> {
        pollster::block_on(self.activation_forward_async(act, z))
    }

    /// [`Gpu::activation_forward`] without blocking.
    pub async fn activation_forward_async(
        &self,
        act: Activation,
        z: &[f32],
    ) -> Result<Vec<f32>, Error> {
        act.validate()?;
        let mut out = Vec::with_capacity(z.len());
        for chunk in z.chunks(self.elementwise_chunk()) {
            let zt = self.upload(chunk, 1, chunk.len())?;
            let yt = self.zeros(1, chunk.len())?;
            let mut encoder = self
                .inner
                .device
                .create_command_encoder(&Default::default());
            self.record_activation_forward(&mut encoder, act, &zt, &yt)?;
            self.submit("activation_forward", vec![encoder.finish()])?;
            out.extend(self.download_async(&yt).await?);
        }
        Ok(out)
    }

    /// `dL/dz = dy ⊙ f'(z)` on the GPU, the same contract as
    /// [`reference::activation_backward`](crate::reference::activation_backward).
    pub fn activation_backward(
        &self,
        act: Activation,
        z: &[f32],
        dy: &[f32],
    ) -> Result<Vec<f32>, Error> {
        pollster::block_on(self.activation_backward_async(act, z, dy))
    }

    /// [`Gpu::activation_backward`] without blocking.
    pub async fn activation_backward_async(
        &self,
        act: Activation,
        z: &[f32],
        dy: &[f32],
    ) -> Result<Vec<f32>, Error> {
        act.validate()?;
        if z.len() != dy.len() {
            return Err(Error::shape(
                "activation_backward: dy must have z's length",
                format!("dy of length {}", z.len()),
                format!("dy of length {} (z has {})", dy.len(), z.len()),
            ));
        }
        let chunk = self.elementwise_chunk();
        let mut out = Vec::with_capacity(z.len());
        for (zc, dyc) in z.chunks(chunk).zip(dy.chunks(chunk)) {
            let zt = self.upload(zc, 1, zc.len())?;
            let dyt = self.upload(dyc, 1, dyc.len())?;
            let dzt = self.zeros(1, zc.len())?;
            let mut encoder = self
                .inner
                .device
                .create_command_encoder(&Default::default());
            self.record_activation_backward(&mut encoder, act, &zt, &dyt, &dzt)?;
            self.submit("activation_backward", vec![encoder.finish()])?;
            out.extend(self.download_async(&dzt).await?);
        }
        Ok(out)
    }
}
