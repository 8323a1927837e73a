//! The fused linear layer on the GPU: `Y = act(X·Wᵀ + b)` forward and
//! `dX, dW, db` backward, recorded into caller-owned command encoders so
//! layers chain with no readback.

use std::sync::Arc;

use super::context::Gpu;
use super::elementwise::{
    buffer_entries, buffer_entry, record_pass, record_pass_entries, split_rows, texture_entry,
};
use super::gemm::{self, Epilogue, GemmParams, GemmVariant};
use super::gemm_kn::{self, KnForm, KnVariant};
use super::shader;
use super::tensor::{Bind, GpuTensor};
use crate::activation::{Activation, Saved};
use crate::error::Error;

/// The shape of a linear layer applied to a batch: X is `[batch, in_features]`,
/// W is `[out_features, in_features]` (PyTorch's layout), b is `[out_features]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct LinearShape {
    /// Rows of X and Y.
    pub batch: usize,
    /// Columns of X and W.
    pub in_features: usize,
    /// Rows of W, columns of Y.
    pub out_features: usize,
}

impl LinearShape {
    /// Builds a shape.
    pub fn new(batch: usize, in_features: usize, out_features: usize) -> Self {
        LinearShape {
            batch,
            in_features,
            out_features,
        }
    }

    /// Floating-point operations of the forward GEMM (2·b·i·o).
    pub fn forward_flops(&self) -> f64 {
        2.0 * self.batch as f64 * self.in_features as f64 * self.out_features as f64
    }

    /// The dimensions of the backward's two GEMMs on padded operands:
    /// `dX = dz·W` (`[batch, in]`, depth out) and `dW = dzᵀ·X` (`[out, in]`,
    /// depth batch).
    pub(crate) fn backward_dims(&self) -> (GemmDims, GemmDims) {
        let (bt, i, o) = (self.batch, self.in_features, self.out_features);
        let dx = GemmDims {
            m: bt,
            n: i,
            k: o,
            lda: pad4(o),
            ldb: pad4(o),
            ldc: i,
        };
        let dw = GemmDims {
            m: o,
            n: i,
            k: bt,
            lda: pad4(bt),
            ldb: pad4(bt),
            ldc: i,
        };
        (dx, dw)
    }

    /// Checks a layer's host slices (x, w, b and optionally dy) against the shape.
    pub(crate) fn check_slices(
        &self,
        op: &str,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        dy: Option<&[f32]>,
    ) -> Result<(), Error> {
        let (bt, i, o) = (self.batch, self.in_features, self.out_features);
        let mut args = vec![
            ("x", x.len(), bt * i),
            ("w", w.len(), o * i),
            ("b", b.len(), o),
        ];
        if let Some(dy) = dy {
            args.push(("dy", dy.len(), bt * o));
        }
        self.check(op, &args)
    }

    /// Checks host slices against the shape, naming expected and actual lengths.
    pub(crate) fn check(&self, op: &str, args: &[(&str, usize, usize)]) -> Result<(), Error> {
        for &(name, actual, expected) in args {
            if actual != expected {
                return Err(Error::shape(
                    format!("{op}: {name} for {self:?}"),
                    format!("{name} of length {expected}"),
                    format!("{name} of length {actual}"),
                ));
            }
        }
        Ok(())
    }
}

/// The gradients of a linear layer, each row-major like its parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearGrads {
    /// dL/dX, `[batch, in_features]`.
    pub dx: Vec<f32>,
    /// dL/dW, `[out_features, in_features]`.
    pub dw: Vec<f32>,
    /// dL/db, `[out_features]`.
    pub db: Vec<f32>,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct DzParams {
    batch: u32,
    cols: u32,
    dz_stride: u32,
    dzt_stride: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct TransposeParams {
    rows: u32,
    cols: u32,
    src_stride: u32,
    dst_stride: u32,
}

/// Parameters of shaders/pack.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PackParams {
    rows: u32,
    k: u32,
    ld: u32,
    texels: u32,
    columns: u32,
    pad: [u32; 3],
}

/// Where a k-by-n GEMM leaves its result.
enum KnOut<'a> {
    /// `C` row-major, row stride n.
    Rows(&'a GpuTensor),
    /// `C` row-major and A's column sums (`AtB` only).
    RowsAndSums(&'a GpuTensor, &'a GpuTensor),
    /// The layer below's packed dz: its activation, its saved tensor and
    /// the texture.
    Dz(Activation, &'a GpuTensor, wgpu::TextureView),
}

/// Which kernels run a linear layer's two backward GEMMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BackwardGemms {
    /// The autotuner's choice; where it picks texture kinds and subgroups
    /// of 8 are allowed, the k-by-n kernels ([`BackwardGemms::KByN`]).
    Auto,
    /// Both GEMMs by this k-contiguous variant, on transposed operands.
    #[cfg_attr(not(test), allow(dead_code))]
    Variant(GemmVariant),
    /// The k-by-n kernels (`gpu::gemm_kn`): W, X and dz read as they are,
    /// nothing transposed.
    #[cfg_attr(not(test), allow(dead_code))]
    KByN,
}

/// How one layer's backward on the k-by-n path links to its neighbours'
/// (`Gpu::record_linear_backward`): consecutive layers alternate between
/// two pooled textures for their packed dz, so that a layer's dX GEMM can
/// leave the layer below's dz, already multiplied by that layer's `f'`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DzChain<'a> {
    /// This layer's dz already sits in its texture, left by the layer
    /// above: `dy` is not read.
    pub ready: bool,
    /// Which of the two textures holds this layer's dz (0 or 1; the layer
    /// below uses the other).
    pub parity: u8,
    /// Instead of writing dX to `dx`, leave the layer below's
    /// `dz = dX ⊙ f'(saved)` in the other texture: that layer's activation
    /// and saved tensor (z, or y for the ReLU family).
    pub below: Option<(Activation, &'a GpuTensor)>,
}

impl DzChain<'_> {
    /// A layer on its own: dz from `dy`, dX into `dx`.
    pub const ALONE: DzChain<'static> = DzChain {
        ready: false,
        parity: 0,
        below: None,
    };

    /// The operand-texture slot of dz at `parity`.
    fn slot(parity: u8) -> u8 {
        2 + (parity & 1)
    }
}

/// Where a GEMM operand's elements live.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Operand<'a> {
    /// Row `r`, element `kk` at `buffer[r * ld + kk]`.
    Rows(&'a GpuTensor, usize),
    /// Row `r`, element `kk` at `buffer[kk * ld + r]`: the transpose of a
    /// row-major matrix, which only the texture kinds read (their packing
    /// pass transposes on the way).
    Columns(&'a GpuTensor, usize),
    /// Already packed in the texture layout of the texture kinds.
    Packed(&'a wgpu::TextureView),
}

/// The dimensions and row strides of one GEMM `C[m, n] = Σ_k A[m, k]·B[n, k]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmDims {
    /// Rows of A and C.
    pub m: usize,
    /// Rows of B, columns of C.
    pub n: usize,
    /// The reduction length.
    pub k: usize,
    /// Row stride of A (>= k).
    pub lda: usize,
    /// Row stride of B (>= k).
    pub ldb: usize,
    /// Row stride of C (>= n).
    pub ldc: usize,
}

impl GemmDims {
    /// Contiguous operands: strides k, k and n.
    pub fn dense(m: usize, n: usize, k: usize) -> Self {
        GemmDims {
            m,
            n,
            k,
            lda: k,
            ldb: k,
            ldc: n,
        }
    }
    /// Whether vec4 kernels can read the operands.
    pub fn vec4_ok(&self) -> bool {
        self.lda.is_multiple_of(4) && self.ldb.is_multiple_of(4)
    }
}

/// Texels per row of a packed GEMM operand of depth `k`: `ceil(k / 4)`,
/// made odd. An even count puts rows a power-of-two multiple of 32 bytes
/// apart (4 KiB at k = 1024), so the rows that one k step reads all fall in
/// the same few L1 sets and evict each other; measured on lavapipe at
/// 1024³: 16 → 23-26 GFLOP/s with one texel of padding.
pub fn texture_width(k: usize) -> usize {
    let t = k.div_ceil(4).max(1);
    t | 1
}

/// Rounds up to a multiple of 4 (the padded stride of backward operands).
pub fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// Device scratch for one linear layer's backward pass at one batch size.
#[derive(Debug, Clone)]
pub struct LinearScratch {
    /// `dz` with rows padded to a multiple of 4: `[batch, pad4(out)]`.
    pub dz: GpuTensor,
    /// `Wᵀ`: `[in, pad4(out)]`.
    pub wt: GpuTensor,
    /// `dzᵀ`: `[out, pad4(batch)]`.
    pub dzt: GpuTensor,
    /// `Xᵀ`: `[in, pad4(batch)]`.
    pub xt: GpuTensor,
}

impl Gpu {
    /// Allocates the backward scratch for `shape`.
    pub(crate) fn linear_scratch(&self, shape: LinearShape) -> Result<LinearScratch, Error> {
        let LinearShape {
            batch,
            in_features: i,
            out_features: o,
        } = shape;
        Ok(LinearScratch {
            dz: self.zeros(batch, pad4(o))?,
            wt: self.zeros(i, pad4(o))?,
            dzt: self.zeros(o, pad4(batch))?,
            xt: self.zeros(i, pad4(batch))?,
        })
    }
}

fn to_u32(what: &str, v: usize) -> Result<u32, Error> {
    u32::try_from(v).map_err(|_| Error::DeviceLimit {
        what: what.to_string(),
        limit: "u32 indexing".into(),
        needed: v as u64,
        available: u32::MAX as u64,
    })
}

impl Gpu {
    fn gemm_pipeline(
        &self,
        variant: GemmVariant,
        epilogue: Epilogue,
    ) -> Result<Arc<wgpu::ComputePipeline>, Error> {
        if variant.kind.uses_subgroups() && !self.subgroups_ok() {
            return Err(Error::Config(format!(
                "GEMM variant {} needs subgroups of at least 8 invocations, which this adapter lacks",
                variant.name()
            )));
        }
        let key = match epilogue {
            Epilogue::Plain => format!("gemm[{}]", variant.name()),
            Epilogue::BiasActivation { act, save_z } => {
                act.validate()?;
                format!("gemm[{}, {act}, save_z={save_z}]", variant.name())
            }
        };
        // Trusted (no runtime bounds checks): every index is clamped into
        // range by construction, and the tests run every variant at ragged
        // shapes that hit every tile edge.
        self.pipeline(&key, "gemm", || gemm::generate(variant, epilogue), true)
    }

    /// Whether the texture GEMM kinds can hold the operands of `dims` on
    /// this adapter: `rgba32float` storage textures readable and writable
    /// in compute shaders, strides that are multiples of 4, and both
    /// operands within the 2-D texture size limit (rows, and k / 4 texels).
    pub(crate) fn texture_operands_fit(&self, dims: GemmDims) -> bool {
        let max = self.limits().max_texture_dimension_2d.min(65535) as usize;
        self.inner.texture_operands
            && dims.vec4_ok()
            && dims.m <= max
            && dims.n <= max
            && texture_width(dims.k) <= max
    }

    /// The pooled texture for operand `slot` of `rows × k`: `texture_width(k)`
    /// texels wide, the height rounded up to a multiple of 64 (the kernels
    /// read only the first `rows`) so that a run whose last batch is short
    /// reuses the texture of the full batches.
    fn operand_texture(&self, slot: u8, rows: usize, k: usize) -> Result<wgpu::Texture, Error> {
        let max = self.limits().max_texture_dimension_2d;
        let width = to_u32("GEMM depth", texture_width(k))?;
        let rows32 = to_u32("GEMM rows", rows)?;
        // A texture too small for the operand would drop rows or texels
        // silently (stores past a texture's edge are discarded).
        for (what, needed) in [("rows", rows32), ("texels a row", width)] {
            if needed > max {
                return Err(Error::DeviceLimit {
                    what: format!("a GEMM operand texture's {what}"),
                    limit: "max_texture_dimension_2d".into(),
                    needed: needed as u64,
                    available: max as u64,
                });
            }
        }
        let height = rows32.div_ceil(64).saturating_mul(64).min(max);
        let mut pool = self.inner.staging.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = pool.get(&(slot, width, height)) {
            return Ok(t.clone());
        }
        let texture = self.scoped("allocating a GEMM operand texture", || {
            self.inner.device.create_texture(&wgpu::TextureDescriptor {
                label: Some("fusedmlp GEMM operand"),
                size: wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba32Float,
                usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            })
        })?;
        pool.insert((slot, width, height), texture.clone());
        Ok(texture)
    }

    /// Records the packing of operand `slot` (`rows × k`) into its pooled
    /// texture; returns the texture's view.
    fn record_pack(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        slot: u8,
        src: Operand,
        (rows, k): (usize, usize),
    ) -> Result<wgpu::TextureView, Error> {
        let (buffer, ld, columns) = match src {
            Operand::Rows(buffer, ld) => (buffer, ld, false),
            Operand::Columns(buffer, ld) => (buffer, ld, true),
            Operand::Packed(view) => return Ok(view.clone()),
        };
        let texels = to_u32("GEMM depth", k.div_ceil(4).max(1))?;
        let rows32 = to_u32("GEMM rows", rows)?;
        let texture = self.operand_texture(slot, rows, k)?;
        let view = texture.create_view(&Default::default());
        if !columns && k.is_multiple_of(4) && (ld * 4).is_multiple_of(256) {
            // Whole texels, and rows the copy engine can stride over: a plain
            // copy (on lavapipe a memcpy; at 256³ the forward ran 10.9 GFLOP/s
            // with the packing pass, 18.6 with the copy).
            self.scoped("recording a GEMM operand copy", || {
                let (raw, offset) = buffer.raw();
                super::plan::copy_to_texture(
                    encoder,
                    (
                        raw,
                        wgpu::TexelCopyBufferLayout {
                            offset,
                            bytes_per_row: Some((ld * 4) as u32),
                            rows_per_image: None,
                        },
                    ),
                    (&texture, wgpu::Origin3d::ZERO),
                    wgpu::Extent3d {
                        width: texels,
                        height: rows32,
                        depth_or_array_layers: 1,
                    },
                )
            })?;
            return Ok(view);
        }
        // x runs along the source's rows.
        let groups = if columns {
            (rows32.div_ceil(64), texels, 1)
        } else {
            (texels.div_ceil(64), rows32, 1)
        };
        let pipeline = self.pipeline("pack", "pack", || shader::PACK_WGSL.to_string(), false)?;
        let params = self.params(&PackParams {
            rows: rows32,
            k: to_u32("GEMM depth", k)?,
            ld: to_u32("GEMM stride", ld)?,
            texels,
            columns: columns as u32,
            pad: [0; 3],
        })?;
        self.scoped("recording a GEMM operand pack", || {
            record_pass_entries(
                self,
                encoder,
                "pack",
                &pipeline,
                &[
                    buffer_entry(0, &params),
                    buffer_entry(1, buffer),
                    texture_entry(2, &view),
                ],
                groups,
            )
        })?;
        Ok(view)
    }

    /// Whether subgroup variants can run here.
    pub fn subgroups_ok(&self) -> bool {
        self.features().contains(wgpu::Features::SUBGROUP)
            && self.adapter_info().subgroup_min_size >= 8
    }

    /// Records `C = A·Bᵀ` (plus the epilogue) with a chosen variant. `bias`
    /// and `z` are used only by the epilogue.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_gemm_with(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        variant: GemmVariant,
        epilogue: Epilogue,
        dims: GemmDims,
        a: &GpuTensor,
        b: &GpuTensor,
        bias: Option<&GpuTensor>,
        y: &GpuTensor,
        z: Option<&GpuTensor>,
    ) -> Result<(), Error> {
        self.record_gemm_operands(
            encoder,
            variant,
            epilogue,
            dims,
            Operand::Rows(a, dims.lda),
            Operand::Rows(b, dims.ldb),
            bias,
            y,
            z,
        )
    }

    /// [`Gpu::record_gemm_with`] with operands that may be read transposed
    /// (texture kinds only).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_gemm_operands(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        variant: GemmVariant,
        epilogue: Epilogue,
        dims: GemmDims,
        a_src: Operand,
        b_src: Operand,
        bias: Option<&GpuTensor>,
        y: &GpuTensor,
        z: Option<&GpuTensor>,
    ) -> Result<(), Error> {
        let GemmDims {
            m,
            n,
            k,
            lda,
            ldb,
            ldc,
        } = dims;
        if m == 0 || n == 0 {
            return Ok(());
        }
        if variant.needs_vec4() && !dims.vec4_ok() {
            return Err(Error::Config(format!(
                "GEMM variant {} needs row strides that are multiples of 4, got {dims:?}",
                variant.name()
            )));
        }
        if variant.kind.uses_textures() && !self.texture_operands_fit(dims) {
            return Err(Error::Config(format!(
                "GEMM variant {} reads its operands from rgba32float storage textures, which \
                 this adapter lacks or which cannot hold {dims:?} (2-D texture limit {}); \
                 pick a buffer variant",
                variant.name(),
                self.limits().max_texture_dimension_2d
            )));
        }
        let params_of = |row_offset: u32| -> Result<GemmParams, Error> {
            Ok(GemmParams {
                m: to_u32("GEMM rows", m)?,
                n: to_u32("GEMM columns", n)?,
                k: to_u32("GEMM depth", k)?,
                lda: to_u32("GEMM stride", lda)?,
                ldb: to_u32("GEMM stride", ldb)?,
                ldc: to_u32("GEMM stride", ldc)?,
                row_offset,
                pad: 0,
            })
        };
        let pipeline = self.gemm_pipeline(variant, epilogue)?;
        let max_dim = self.limits().max_compute_workgroups_per_dimension;
        let col_groups = to_u32("GEMM columns", n)?.div_ceil(variant.tile_cols());
        if col_groups > max_dim {
            return Err(Error::DeviceLimit {
                what: format!("a GEMM with {n} output columns"),
                limit: "max_compute_workgroups_per_dimension".into(),
                needed: col_groups as u64,
                available: max_dim as u64,
            });
        }
        let row_groups_total = to_u32("GEMM rows", m)?.div_ceil(variant.tile_rows());
        let (textures, a, b) = match (a_src, b_src) {
            _ if variant.kind.uses_textures() => (
                Some((
                    self.record_pack(encoder, 0, a_src, (m, k))?,
                    self.record_pack(encoder, 1, b_src, (n, k))?,
                )),
                None,
                None,
            ),
            (Operand::Rows(a, _), Operand::Rows(b, _)) => (None, Some(a), Some(b)),
            _ => {
                return Err(Error::Config(format!(
                    "GEMM variant {} reads row-major operands only; transpose first",
                    variant.name()
                )))
            }
        };
        let mut buffers: Vec<(u32, &dyn crate::gpu::tensor::Bind)> = vec![(4, y)];
        if let (Some(a), Some(b)) = (a, b) {
            buffers.push((1, a));
            buffers.push((2, b));
        }
        if let Epilogue::BiasActivation { save_z, .. } = epilogue {
            let bias = bias.ok_or_else(|| Error::Config("GEMM epilogue needs a bias".into()))?;
            buffers.push((3, bias));
            if save_z {
                let z = z.ok_or_else(|| Error::Config("GEMM epilogue needs z".into()))?;
                buffers.push((5, z));
            }
        }
        let mut entries = buffer_entries(&buffers);
        if let Some((ta, tb)) = &textures {
            entries.extend([texture_entry(1, ta), texture_entry(2, tb)]);
        }
        self.record_gemm_grid(
            encoder,
            ("gemm", "recording a GEMM"),
            &pipeline,
            (col_groups, row_groups_total, variant.tile_rows()),
            params_of,
            &entries,
        )
    }

    /// Records a GEMM kernel's dispatches: `col_groups × row_groups`
    /// workgroups of `tile_rows` rows, split over several dispatches past
    /// the per-dimension limit, each with its parameters
    /// (`params_of(first row)`) at binding 0 beside `entries`.
    fn record_gemm_grid(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        (label, context): (&str, &str),
        pipeline: &wgpu::ComputePipeline,
        (col_groups, row_groups, tile_rows): (u32, u32, u32),
        params_of: impl Fn(u32) -> Result<GemmParams, Error>,
        entries: &[wgpu::BindGroupEntry],
    ) -> Result<(), Error> {
        let max_dim = self.limits().max_compute_workgroups_per_dimension;
        for (first, groups) in row_chunks(row_groups, max_dim) {
            let params = self.params(&params_of(first * tile_rows)?)?;
            let mut all = vec![buffer_entry(0, &params)];
            all.extend(entries.iter().cloned());
            self.scoped(context, || {
                record_pass_entries(
                    self,
                    encoder,
                    label,
                    pipeline,
                    &all,
                    (col_groups, groups, 1),
                )
            })?;
        }
        Ok(())
    }

    /// Records a GEMM with the variant chosen for this adapter and shape.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_gemm(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        epilogue: Epilogue,
        dims: GemmDims,
        a: &GpuTensor,
        b: &GpuTensor,
        bias: Option<&GpuTensor>,
        y: &GpuTensor,
        z: Option<&GpuTensor>,
    ) -> Result<(), Error> {
        let variant = self.gemm_variant(dims)?;
        self.record_gemm_with(encoder, variant, epilogue, dims, a, b, bias, y, z)
    }

    /// Records `dst[c, r] = src[r, c]` with row strides.
    pub(crate) fn record_transpose(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        src: &GpuTensor,
        (rows, cols, src_stride): (usize, usize, usize),
        dst: &GpuTensor,
        dst_stride: usize,
    ) -> Result<(), Error> {
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        let pipeline = self.pipeline(
            "transpose",
            "transpose",
            || shader::TRANSPOSE_WGSL.to_string(),
            false,
        )?;
        let params = self.params(&TransposeParams {
            rows: to_u32("transpose rows", rows)?,
            cols: to_u32("transpose columns", cols)?,
            src_stride: to_u32("transpose stride", src_stride)?,
            dst_stride: to_u32("transpose stride", dst_stride)?,
        })?;
        let gx = to_u32("transpose rows", rows)?.div_ceil(64);
        let cols32 = to_u32("transpose columns", cols)?;
        let (gy, gz) = split_rows(cols32);
        self.scoped("recording a transpose", || {
            record_pass(
                self,
                encoder,
                "transpose",
                &pipeline,
                &[(0, &params), (1, src), (2, dst)],
                (gx, gy, gz),
            )
        })
    }

    /// Records the fused forward pass `y = act(x·wᵀ + b)` on device tensors.
    /// When `z` is given (training), the pre-activation is written there too;
    /// pass it only when `act.saved()` is [`Saved::PreActivation`].
    #[allow(clippy::too_many_arguments)]
    pub fn record_linear_forward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        act: Activation,
        x: &GpuTensor,
        w: &GpuTensor,
        b: &GpuTensor,
        y: &GpuTensor,
        z: Option<&GpuTensor>,
    ) -> Result<(), Error> {
        let shape = LinearShape::new(x.rows(), x.cols(), w.rows());
        check_tensor(
            "linear_forward",
            "w",
            w,
            shape.out_features,
            shape.in_features,
        )?;
        check_tensor("linear_forward", "b", b, 1, shape.out_features)
            .or_else(|_| check_tensor("linear_forward", "b", b, shape.out_features, 1))?;
        check_tensor("linear_forward", "y", y, shape.batch, shape.out_features)?;
        if let Some(z) = z {
            check_tensor("linear_forward", "z", z, shape.batch, shape.out_features)?;
        }
        self.record_gemm(
            encoder,
            Epilogue::BiasActivation {
                act,
                save_z: z.is_some(),
            },
            GemmDims::dense(shape.batch, shape.out_features, shape.in_features),
            x,
            w,
            Some(b),
            y,
            z,
        )
    }

    /// Records the backward pass of a fused linear layer.
    ///
    /// `saved` is what the forward kept for `f'`: `z` when `act.saved()` is
    /// `PreActivation`, else the output `y`. `scratch` comes from
    /// [`Gpu::linear_scratch`]. `dx` may be `None` for the first layer (its
    /// input needs no gradient).
    ///
    /// Steps: `dz = dy ⊙ f'(saved)`, its transpose and `db = Σ_batch dz` in
    /// one kernel (writing dz once beats recomputing f' inside both GEMMs,
    /// which would evaluate it once per tile that reads it), then `dX = dz·W`
    /// and `dW = dzᵀ·X`, both through the one k-contiguous GEMM kernel family
    /// on transposed, zero-padded copies of W and X (the transposes are O(n²)
    /// next to the O(n³) GEMMs). Texture kinds read W and X transposed in
    /// their packing pass instead, with no transpose pass.
    ///
    /// Where the autotuner picks the texture kinds on an adapter with
    /// subgroups of 8, dX and dW run instead through the k-by-n kernels of
    /// `gpu::gemm_kn`, which read dz, W and X in the layouts the
    /// activation step and plain copies leave (no transpose at all), and
    /// `chain` can link consecutive layers: the dX GEMM then leaves the
    /// layer below's dz (`dX ⊙ f'`) in its texture instead of dX in `dx`,
    /// and that layer's backward starts from it ([`DzChain`]).
    ///
    /// `gemms` picks the kernels instead of the autotuner
    /// ([`BackwardGemms::Auto`]), for tests and benchmarks of each.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_linear_backward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        act: Activation,
        x: &GpuTensor,
        w: &GpuTensor,
        saved: &GpuTensor,
        dy: &GpuTensor,
        scratch: &LinearScratch,
        dx: Option<&GpuTensor>,
        dw: &GpuTensor,
        db: &GpuTensor,
        gemms: BackwardGemms,
        chain: DzChain,
    ) -> Result<(), Error> {
        let choose = |dims: GemmDims| match gemms {
            BackwardGemms::Variant(v) => Ok(v),
            _ => self.gemm_variant(dims),
        };
        act.validate()?;
        let shape = LinearShape::new(x.rows(), x.cols(), w.rows());
        let (bt, i, o) = (shape.batch, shape.in_features, shape.out_features);
        check_tensor("linear_backward", "w", w, o, i)?;
        check_tensor("linear_backward", "saved", saved, bt, o)?;
        check_tensor("linear_backward", "dy", dy, bt, o)?;
        check_tensor("linear_backward", "scratch.dz", &scratch.dz, bt, pad4(o))?;
        check_tensor("linear_backward", "scratch.wt", &scratch.wt, i, pad4(o))?;
        check_tensor("linear_backward", "scratch.dzt", &scratch.dzt, o, pad4(bt))?;
        check_tensor("linear_backward", "scratch.xt", &scratch.xt, i, pad4(bt))?;
        check_tensor("linear_backward", "dw", dw, o, i)?;
        if db.len() != o {
            return Err(Error::shape("linear_backward: db", o, db.len()));
        }
        if let Some(dx) = dx {
            check_tensor("linear_backward", "dx", dx, bt, i)?;
        }
        if bt == 0 || o == 0 {
            self.record_zero(encoder, dw)?;
            self.record_zero(encoder, db)?;
            if let Some(dx) = dx {
                self.record_zero(encoder, dx)?;
            }
            return Ok(());
        }
        let (dx_dims, dw_dims) = shape.backward_dims();
        let params = self.params(&DzParams {
            batch: to_u32("batch", bt)?,
            cols: to_u32("out_features", o)?,
            dz_stride: to_u32("out_features", pad4(o))?,
            dzt_stride: to_u32("batch", pad4(bt))?,
        })?;
        let dz_pipeline = |entry: &str| {
            self.pipeline(
                &format!("linear_backward[{act}]"),
                entry,
                || shader::assemble(shader::LINEAR_BACKWARD_WGSL, Some(act)),
                false,
            )
        };
        // A pass of the activation step (`entry`): the parameters at
        // binding 0 and `entries`.
        let record_dz_pass = |encoder: &mut wgpu::CommandEncoder,
                              entry: &str,
                              entries: &[wgpu::BindGroupEntry],
                              groups: (u32, u32, u32)|
         -> Result<(), Error> {
            let pipeline = dz_pipeline(entry)?;
            let mut all = vec![buffer_entry(0, &params)];
            all.extend(entries.iter().cloned());
            self.scoped("recording linear_backward", || {
                record_pass_entries(self, encoder, entry, &pipeline, &all, groups)
            })
        };
        // dz packed: one invocation per 4 × 4 block.
        let texels = to_u32("out_features", o.div_ceil(4))?;
        let dz_groups = (texels.div_ceil(64), to_u32("batch", bt.div_ceil(4))?, 1);
        let kn = match gemms {
            BackwardGemms::KByN => true,
            BackwardGemms::Variant(_) => false,
            BackwardGemms::Auto => self.backward_is_k_by_n(shape, dx.is_some())?,
        };
        if (chain.ready || chain.below.is_some()) && !kn {
            return Err(Error::Config(
                "a chained linear backward needs the k-by-n GEMMs, which this adapter or shape \
                 does not use"
                    .into(),
            ));
        }
        if kn {
            let dz = self
                .operand_texture(DzChain::slot(chain.parity), bt, o)?
                .create_view(&Default::default());
            if !chain.ready {
                let entries = [
                    buffer_entry(1, &dy),
                    buffer_entry(2, &saved),
                    texture_entry(6, &dz),
                ];
                record_dz_pass(encoder, "dz_packed_only", &entries, dz_groups)?;
            }
            // 2. dX[b, i] = Σ_o dz[b, o]·W[o, i]: W as the forward reads it;
            // or the layer below's dz from it.
            if let Some(dx) = dx {
                let w_view = self.record_pack(encoder, 1, Operand::Rows(w, i), (o, i))?;
                let out = match chain.below {
                    None => KnOut::Rows(dx),
                    Some((act_below, saved_below)) => {
                        act_below.validate()?;
                        check_tensor("linear_backward", "saved below", saved_below, bt, i)?;
                        let view = self
                            .operand_texture(DzChain::slot(chain.parity ^ 1), bt, i)?
                            .create_view(&Default::default());
                        KnOut::Dz(act_below, saved_below, view)
                    }
                };
                let v = KnVariant::for_columns(KnForm::Ab, i);
                self.record_kn_gemm(encoder, v, (bt, i, o), &dz, &w_view, out)?;
            } else if chain.below.is_some() {
                return Err(Error::Config(
                    "a linear backward without dX cannot leave the layer below's dz".into(),
                ));
            }
            // 3. dW[o, i] = Σ_b dz[b, o]·X[b, i]: X as the forward reads it.
            let x_view = self.record_pack(encoder, 0, Operand::Rows(x, i), (bt, i))?;
            return self.record_kn_gemm(
                encoder,
                KnVariant::for_columns(KnForm::AtB, i),
                (o, i, bt),
                &dz,
                &x_view,
                KnOut::RowsAndSums(dw, db),
            );
        }
        let v_dx = dx.map(|_| choose(dx_dims)).transpose()?;
        let v_dw = choose(dw_dims)?;
        // 1. dz = dy ⊙ f'(saved), its transpose, and db = Σ_batch dz: for
        // texture kinds straight into their packed textures (no buffer copy
        // of either, no packing pass; db then from dzᵀ), else into buffers
        // with row strides pad4(out) and pad4(batch).
        let (dz, dzt);
        let (a_dx, a_dw) = if v_dw.kind.uses_textures()
            && v_dx.is_none_or(|v| v.kind.uses_textures())
            && self.texture_operands_fit(dx_dims)
        {
            dz = self
                .operand_texture(2, bt, o)?
                .create_view(&Default::default());
            dzt = self
                .operand_texture(3, o, bt)?
                .create_view(&Default::default());
            let entries = [
                buffer_entry(1, &dy),
                buffer_entry(2, &saved),
                texture_entry(6, &dz),
                texture_entry(7, &dzt),
            ];
            record_dz_pass(encoder, "dz_packed_blocks", &entries, dz_groups)?;
            let entries = [buffer_entry(4, &db), texture_entry(8, &dzt)];
            let bias_groups = (to_u32("out_features", o)?.div_ceil(64), 1, 1);
            record_dz_pass(encoder, "bias_grad_packed", &entries, bias_groups)?;
            (Operand::Packed(&dz), Operand::Packed(&dzt))
        } else {
            let entries = [
                buffer_entry(1, &dy),
                buffer_entry(2, &saved),
                buffer_entry(3, &scratch.dz),
                buffer_entry(4, &db),
                buffer_entry(5, &scratch.dzt),
            ];
            let groups = to_u32("out_features", o)?.div_ceil(64);
            record_dz_pass(encoder, "dz_and_bias_grad", &entries, (groups, 1, 1))?;
            (
                Operand::Rows(&scratch.dz, pad4(o)),
                Operand::Rows(&scratch.dzt, pad4(bt)),
            )
        };
        // 2. dX[b, i] = Σ_o dz[b, o]·W[o, i].
        if let (Some(dx), Some(v)) = (dx, v_dx) {
            self.record_gemm_times_rows(encoder, v, dx_dims, a_dx, (w, &scratch.wt), dx)?;
        }
        // 3. dW[o, i] = Σ_b dzᵀ[o, b]·X[b, i].
        self.record_gemm_times_rows(encoder, v_dw, dw_dims, a_dw, (x, &scratch.xt), dw)
    }

    /// Whether [`Gpu::record_linear_backward`] runs `shape` through the
    /// k-by-n GEMMs when the autotuner chooses: where it picks the texture
    /// kinds for both backward GEMMs on an adapter with subgroups of 8.
    pub(crate) fn backward_is_k_by_n(
        &self,
        shape: LinearShape,
        with_dx: bool,
    ) -> Result<bool, Error> {
        let (bt, o) = (shape.batch, shape.out_features);
        if !self.subgroups_ok() || bt == 0 || o == 0 {
            return Ok(false);
        }
        let (dx_dims, dw_dims) = shape.backward_dims();
        // dz is packed by batch rows whether or not dX is wanted: the batch
        // must fit a texture's height (which dX's dimensions check).
        Ok(self.texture_operands_fit(dx_dims)
            && self.gemm_variant(dw_dims)?.kind.uses_textures()
            && (!with_dx || self.gemm_variant(dx_dims)?.kind.uses_textures()))
    }

    /// Records `C[m, n]` (row stride n) from two packed operands through
    /// the k-by-n kernel of `form` (`gpu::gemm_kn`); `(m, n, k)` are the
    /// GEMM's dimensions.
    fn record_kn_gemm(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        v: KnVariant,
        (m, n, k): (usize, usize, usize),
        a: &wgpu::TextureView,
        b: &wgpu::TextureView,
        out: KnOut,
    ) -> Result<(), Error> {
        if !self.subgroups_ok() {
            return Err(Error::Config(
                "the k-by-n backward GEMMs need subgroups of at least 8 invocations, which this \
                 adapter lacks; use a k-contiguous variant"
                    .into(),
            ));
        }
        if m == 0 || n == 0 {
            return Ok(());
        }
        if matches!(out, KnOut::RowsAndSums(..)) != (v.form == KnForm::AtB) {
            return Err(Error::Config(
                "a k-by-n GEMM writes column sums exactly when it is the AtB form".into(),
            ));
        }
        let dz_of = match &out {
            KnOut::Rows(_) | KnOut::RowsAndSums(..) => None,
            KnOut::Dz(act, ..) if v.form == KnForm::Ab => Some(*act),
            KnOut::Dz(..) => {
                return Err(Error::Config(
                    "only the Ab form of the k-by-n GEMMs (dX) leaves a dz".into(),
                ))
            }
        };
        let key = match dz_of {
            None => format!("gemm_kn[{}]", v.name()),
            Some(act) => format!("gemm_kn[{}, dz for {act}]", v.name()),
        };
        let pipeline = self.pipeline(&key, "gemm", || gemm_kn::generate(v, dz_of), true)?;
        let col_groups = to_u32("GEMM columns", n)?.div_ceil(v.tile_cols());
        let row_groups_total = to_u32("GEMM rows", m)?.div_ceil(v.tile_rows());
        let (m32, n32, k32) = (
            to_u32("GEMM rows", m)?,
            to_u32("GEMM columns", n)?,
            to_u32("GEMM depth", k)?,
        );
        let mut entries = vec![texture_entry(1, a), texture_entry(2, b)];
        match &out {
            KnOut::Rows(c) => entries.push(buffer_entry(4, *c)),
            KnOut::RowsAndSums(c, sums) => {
                entries.extend([buffer_entry(4, *c), buffer_entry(3, *sums)])
            }
            KnOut::Dz(_, saved, view) => {
                entries.extend([buffer_entry(5, *saved), texture_entry(6, view)])
            }
        }
        self.record_gemm_grid(
            encoder,
            (
                match v.form {
                    KnForm::Ab => "gemm_ab",
                    KnForm::AtB => "gemm_atb",
                },
                "recording a k-by-n GEMM",
            ),
            &pipeline,
            (col_groups, row_groups_total, v.tile_rows()),
            |row_offset| {
                Ok(GemmParams {
                    m: m32,
                    n: n32,
                    k: k32,
                    lda: 0,
                    ldb: 0,
                    ldc: n32,
                    row_offset,
                    pad: 0,
                })
            },
            &entries,
        )
    }

    /// Records `C[m, n] = Σ_k A[m, k]·S[k, n]` (`dims`, whose B strides are
    /// those of `s_t`) for a row-major `S` (row stride n). Buffer kinds
    /// transpose S into `s_t` (`[n, pad4(k)]`) first; texture kinds read S
    /// transposed while packing it.
    fn record_gemm_times_rows(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        v: GemmVariant,
        dims: GemmDims,
        a: Operand,
        (s, s_t): (&GpuTensor, &GpuTensor),
        c: &GpuTensor,
    ) -> Result<(), Error> {
        let GemmDims { n, k, ldb, .. } = dims;
        let b = if v.kind.uses_textures() {
            Operand::Columns(s, n)
        } else {
            self.record_transpose(encoder, s, (k, n, n), s_t, ldb)?;
            Operand::Rows(s_t, ldb)
        };
        self.record_gemm_operands(encoder, v, Epilogue::Plain, dims, a, b, None, c, None)
    }

    /// Records a fill of `t` with zeros.
    pub(crate) fn record_zero(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        t: &GpuTensor,
    ) -> Result<(), Error> {
        self.scoped("clearing a tensor", || t.record_clear(encoder))
    }

    /// `act(x·wᵀ + b)` on the GPU from host slices (one upload, one readback).
    /// `x` is `[batch, in]`, `w` is `[out, in]`, `b` is `[out]`.
    ///
    /// ```no_run
    /// use fusedmlp::{Activation, Gpu, LinearShape};
    /// let gpu = Gpu::new()?;
    /// let shape = LinearShape { batch: 2, in_features: 3, out_features: 1 };
    /// let y = gpu.linear_forward(Activation::Relu, &[1., 2., 3., -1., -2., -3.], &[1., 1., 1.], &[0.5], shape)?;
    /// assert_eq!(y, vec![6.5, 0.0]);
    /// # Ok::<(), fusedmlp::Error>(())
    /// ```
    pub fn linear_forward(
        &self,
        act: Activation,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        shape: LinearShape,
    ) -> Result<Vec<f32>, Error> {
        pollster::block_on(self.linear_forward_async(act, x, w, b, shape))
    }

    /// [`Gpu::linear_forward`] without blocking.
    pub async fn linear_forward_async(
        &self,
        act: Activation,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        shape: LinearShape,
    ) -> Result<Vec<f32>, Error> {
        act.validate()?;
        let LinearShape {
            batch,
            in_features: i,
            out_features: o,
        } = shape;
        shape.check_slices("linear_forward", x, w, b, None)?;
        let xt = self.upload(x, batch, i)?;
        let wt = self.upload(w, o, i)?;
        let bt = self.upload(b, 1, o)?;
        let yt = self.zeros(batch, o)?;
        let mut encoder = self
            .inner
            .device
            .create_command_encoder(&Default::default());
        self.record_linear_forward(&mut encoder, act, &xt, &wt, &bt, &yt, None)?;
        self.submit("linear_forward", vec![encoder.finish()])?;
        self.download_async(&yt).await
    }

    /// The forward pass (keeping what `f'` needs) and the backward pass from
    /// host slices: returns dX, dW and db for upstream gradient `dy` `[batch, out]`.
    pub fn linear_backward(
        &self,
        act: Activation,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        dy: &[f32],
        shape: LinearShape,
    ) -> Result<LinearGrads, Error> {
        self.linear_backward_with(act, x, w, b, dy, shape, BackwardGemms::Auto)
    }

    /// [`Gpu::linear_backward`] without blocking.
    pub async fn linear_backward_async(
        &self,
        act: Activation,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        dy: &[f32],
        shape: LinearShape,
    ) -> Result<LinearGrads, Error> {
        self.linear_backward_variant_async(act, x, w, b, dy, shape, BackwardGemms::Auto)
            .await
    }

    /// [`Gpu::linear_backward`] with the backward GEMMs run by `gemms`; for
    /// tests of each kernel.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn linear_backward_with(
        &self,
        act: Activation,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        dy: &[f32],
        shape: LinearShape,
        gemms: BackwardGemms,
    ) -> Result<LinearGrads, Error> {
        pollster::block_on(self.linear_backward_variant_async(act, x, w, b, dy, shape, gemms))
    }

    #[allow(clippy::too_many_arguments)]
    async fn linear_backward_variant_async(
        &self,
        act: Activation,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        dy: &[f32],
        shape: LinearShape,
        gemms: BackwardGemms,
    ) -> Result<LinearGrads, Error> {
        act.validate()?;
        let LinearShape {
            batch,
            in_features: i,
            out_features: o,
        } = shape;
        shape.check_slices("linear_backward", x, w, b, Some(dy))?;
        let xt = self.upload(x, batch, i)?;
        let wt = self.upload(w, o, i)?;
        let bt = self.upload(b, 1, o)?;
        let dyt = self.upload(dy, batch, o)?;
        let yt = self.zeros(batch, o)?;
        let zt = self.zeros(batch, o)?;
        let scratch = self.linear_scratch(shape)?;
        let dxt = self.zeros(batch, i)?;
        let dwt = self.zeros(o, i)?;
        let dbt = self.zeros(1, o)?;
        let keep_z = act.saved() == Saved::PreActivation;
        let mut encoder = self
            .inner
            .device
            .create_command_encoder(&Default::default());
        self.record_linear_forward(&mut encoder, act, &xt, &wt, &bt, &yt, keep_z.then_some(&zt))?;
        let saved = if keep_z { &zt } else { &yt };
        self.record_linear_backward(
            &mut encoder,
            act,
            &xt,
            &wt,
            saved,
            &dyt,
            &scratch,
            Some(&dxt),
            &dwt,
            &dbt,
            gemms,
            DzChain::ALONE,
        )?;
        self.submit("linear_backward", vec![encoder.finish()])?;
        Ok(LinearGrads {
            dx: self.download_async(&dxt).await?,
            dw: self.download_async(&dwt).await?,
            db: self.download_async(&dbt).await?,
        })
    }
}

/// `(first, count)` row groups of each dispatch when `total` row groups are
/// split past the per-dimension workgroup limit `max`.
fn row_chunks(total: u32, max: u32) -> impl Iterator<Item = (u32, u32)> {
    (0..total)
        .step_by(max.max(1) as usize)
        .map(move |first| (first, (total - first).min(max)))
}

fn check_tensor(
    op: &str,
    name: &str,
    t: &GpuTensor,
    rows: usize,
    cols: usize,
) -> Result<(), Error> {
    if t.rows() != rows || t.cols() != cols {
        return Err(Error::shape(
            format!("{op}: {name}"),
            format!("[{rows}, {cols}]"),
            format!("[{}, {}]", t.rows(), t.cols()),
        ));
    }
    Ok(())
}
