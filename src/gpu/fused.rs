//! The fully fused MLP for narrow nets (hidden width up to
//! [`MAX_FUSED_WIDTH`]): every hidden layer forward in one dispatch, the
//! activation gradients of every layer in one dispatch walking the layers
//! in reverse, and the weight and bias gradients of every layer in one
//! more, plus, where the kernels cannot read the weights where they lie,
//! one that lays them out: three or four dispatches for the whole stack,
//! whatever its depth.
//!
//! Two designs ([`FusedKernel`]), the adapter's best chosen by
//! [`Gpu::fused_kernel`]:
//! - the subgroup design (`gpu::fused_sg`, where subgroups of at least 8
//!   invocations exist): a workgroup is one subgroup owning a block of
//!   rows in registers, handing a layer's outputs to the next layer by
//!   subgroup shuffles, with no workgroup memory and no barrier;
//! - the workgroup-memory design (`shaders/fused_mlp_lanes.wgsl`, runs
//!   anywhere): a workgroup owns a block of 16 batch rows (32 at widths up
//!   to 16) in workgroup memory; an invocation owns four adjacent columns
//!   (a `vec4`) of 8 of its rows and streams the layer's weights as whole
//!   `vec4`s: the forward's laid out transposed and padded, the
//!   backward's where they lie when the widths are multiples of 4 (laid
//!   out padded when not).
//!
//! Narrow deep nets are bound by the number of dispatches and loads, not
//! by FLOPs (the main job's 20 × 64 hidden stack at batch 32 is 5 MFLOP
//! forward); the layered path takes a dispatch per layer and pass. Every
//! sum runs in a fixed order, so results are bit-identical from run to
//! run. CPU twin: [`crate::reference::fused_mlp`]; `fusedmlp bench
//! --fused` times both designs and the layered path.

use std::fmt::Write;
use std::sync::Arc;

use super::elementwise::{buffer_entries, grid_1d, record_pass, record_pass_entries};
use super::fused_sg::{self, GradsOut, SgLayout};
use super::tensor::{align_floats, Bind};
use super::{shader, Gpu, GpuTensor};
use crate::activation::{Activation, Saved};
use crate::error::Error;

/// The environment variable that, set to `lanes`, makes
/// [`Gpu::fused_kernel`] pick the workgroup-memory design on every adapter.
pub const FUSED_KERNEL_ENV: &str = "FUSEDMLP_FUSED_KERNEL";

/// The widest hidden layer the fused path takes.
pub const MAX_FUSED_WIDTH: usize = 128;
/// Batch rows each invocation of the workgroup-memory design's forward and
/// backward owns: on SwiftShader, the browser's software adapter, 8 ran
/// the main job's stack forward and backward 2.3x faster than 2 (each vec4
/// of weights loaded then feeds 8 rows instead of 2), 16 no faster. (Two
/// vec4s of columns an invocation gained nothing there; the rows' loops
/// written out with named accumulators gained 1.15x but took lavapipe 3x
/// longer to compile.)
const LANE_ROWS: u32 = 8;
/// The smallest subgroup the subgroup design runs on: SwiftShader's 4
/// (Chromium's software WebGPU adapter), where it ran every stack `bench
/// --fused` measures faster than the workgroup-memory design (the main
/// job's 32 × 64 × 64 × 20 in 7.0 ms against 10.1, the 256 × 64 × 128 × 20
/// in 193 against 213).
const MIN_FUSED_SUBGROUP: u32 = 4;

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
    /// Inputs of layer `l`: the net's input width for the first, the
    /// hidden width after.
    pub fn fan_in(&self, l: usize) -> usize {
        if l == 0 {
            self.input
        } else {
            self.width
        }
    }

    /// Where layer `l`'s weight starts in the packed weights, in floats
    /// (`l = layers` gives their length).
    pub fn weight_offset(&self, l: usize) -> usize {
        (0..l).map(|k| self.width * self.fan_in(k)).sum()
    }

    /// Where layer `l`'s (dW, db) start in the packed gradients, in floats
    /// (`l = layers` gives their length).
    pub fn grads_offset(&self, l: usize) -> usize {
        (0..l).map(|k| self.width * (self.fan_in(k) + 1)).sum()
    }

    /// Floats in the packed weights: `[width, input]` then `layers - 1`
    /// times `[width, width]`, row-major.
    pub fn weight_len(&self) -> usize {
        self.weight_offset(self.layers)
    }

    /// Floats in the packed biases, `[layers, width]`.
    pub fn bias_len(&self) -> usize {
        self.layers * self.width
    }

    /// Floats from one layer's activations to the next layer's in the
    /// per-layer activation buffers: `batch × width` rounded up to a whole
    /// [`VIEW_ALIGN`](crate::gpu::VIEW_ALIGN) block, so each
    /// layer's activations can be viewed as a tensor of their own.
    pub fn act_stride(&self) -> usize {
        align_floats(self.batch * self.width)
    }

    /// Floats in the per-layer activations, `layers` blocks of
    /// [`FusedShape::act_stride`] (the saved values and the activation
    /// gradients; layer `l`'s `[batch, width]` start at `l * act_stride`).
    pub fn activations_len(&self) -> usize {
        self.layers * self.act_stride()
    }

    /// Floats in the packed gradients: per layer, dW (`[width, in_l]`) then
    /// db (`[width]`).
    pub fn grads_len(&self) -> usize {
        self.grads_offset(self.layers)
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
}

/// Which design of the fused kernels runs a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FusedKernel {
    /// Workgroups that keep a block of rows in workgroup memory
    /// (`shaders/fused_mlp_lanes.wgsl`): runs anywhere.
    Lanes,
    /// One subgroup per workgroup, a block's rows in registers, handed
    /// between invocations by subgroup shuffles (`gpu::fused_sg`): needs
    /// subgroups of at least 8 invocations. The faster design on llvmpipe.
    Subgroup,
}

/// A kernel design sized for one width (and subgroup size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Design {
    /// The hidden width rounded up to the lanes a row takes: 16, 32, 64 or 128.
    Lanes {
        lanes: u32,
        /// Whether the net's input width is a multiple of 4 (the weight
        /// gradients then read the input as vec4s).
        input4: bool,
        /// Whether the hidden width is a multiple of 4 (the weight
        /// gradients then read the activations and dz as vec4s).
        width4: bool,
    },
    Subgroup(SgLayout),
}

impl Design {
    /// vec4 column groups of a row in the workgroup-memory design's weight
    /// layouts. The subgroup design reads weight rows and never uses it;
    /// it gets a placeholder because the shared WGSL (`pack`, `wt_off`,
    /// `wp_off`) names the constant.
    fn cg(&self) -> u32 {
        match self {
            Design::Lanes { lanes, .. } => lanes / 4,
            Design::Subgroup(_) => 4,
        }
    }

    /// vec4s of the weights as the forward reads them: each layer
    /// transposed, `[pad4(in_l), cg]` (workgroup-memory design), or the
    /// row-padded copy (subgroup design, none where aligned).
    fn wt_len(&self, shape: FusedShape) -> usize {
        match self {
            Design::Lanes { .. } => {
                (pad4(shape.input) + shape.layers.saturating_sub(1) * pad4(shape.width))
                    * self.cg() as usize
            }
            Design::Subgroup(l) => l.padded_len(shape.input, shape.layers),
        }
    }

    /// Whether the workgroup-memory design's backward reads the weights
    /// where they lie, as vec4s (the input and hidden widths multiples of
    /// 4): no backward layout, and `pack_t4` lays out the forward's.
    fn natural(&self) -> bool {
        matches!(
            self,
            Design::Lanes {
                input4: true,
                width4: true,
                ..
            }
        )
    }

    /// vec4s of the backward layout of layers 1.. (`[pad4(width), cg]`;
    /// none in the subgroup design or where [`Design::natural`]).
    fn wp_len(&self, shape: FusedShape) -> usize {
        match self {
            _ if self.natural() => 0,
            Design::Lanes { .. } => {
                shape.layers.saturating_sub(1) * pad4(shape.width) * self.cg() as usize
            }
            Design::Subgroup(_) => 0,
        }
    }

    /// Invocations of the layout pass: one per vec4 it writes, one per 4 x 4
    /// block for `pack_t4`.
    fn pack_items(&self, shape: FusedShape) -> u64 {
        let vec4s = (self.wt_len(shape) + self.wp_len(shape)) as u64;
        if self.natural() {
            vec4s.div_ceil(4)
        } else {
            vec4s
        }
    }

    /// The entry point that lays the weights out, if any.
    fn pack_entry(&self) -> Option<&'static str> {
        match self {
            _ if self.natural() => Some("pack_t4"),
            Design::Lanes { .. } => Some("pack"),
            Design::Subgroup(l) if !l.aligned => Some("pack_rows"),
            Design::Subgroup(_) => None,
        }
    }

    /// Batch rows one forward or backward workgroup owns.
    fn block_rows(&self) -> u32 {
        match self {
            Design::Lanes { lanes, .. } => {
                if *lanes == 16 {
                    32
                } else {
                    16
                }
            }
            Design::Subgroup(l) => l.rows,
        }
    }

    /// What names the compiled kernels of this design for one activation.
    fn key(&self) -> String {
        match self {
            Design::Lanes { lanes, .. } => {
                format!("lanes{lanes}{}", if self.natural() { "n" } else { "" })
            }
            Design::Subgroup(l) => format!(
                "sg{}w{}r{}o{}{}",
                l.s,
                l.width,
                l.rows,
                l.grad_ob,
                if l.aligned { "a" } else { "u" }
            ),
        }
    }
}

fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct FusedParams {
    batch: u32,
    input: u32,
    width: u32,
    layers: u32,
    in4: u32,
    w4: u32,
    wt_len: u32,
    wp_len: u32,
    act_stride: u32,
    rper: u32,
    pad: [u32; 2],
}

/// The weight-gradient kernel's parameters (`GradParams` in
/// `shaders/fused_mlp_grads.wgsl`, `SgGradParams` in the subgroup design).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GradParams {
    batch: u32,
    input: u32,
    width: u32,
    layers: u32,
    /// Tiles per layer: (row tiles, column tiles of layer 0, of the others)
    /// in the workgroup-memory design; (input tiles of layer 0, of the
    /// others, output tiles) in the subgroup design.
    tiles: [u32; 3],
    act_stride: u32,
}

/// The WGSL that sizes a fused kernel for `design` and binds where the
/// backward's saved values live for `act`; with `keep_all_z` the forward
/// stores every layer's pre-activation whatever the activation (for a
/// logged step's diagnostics).
fn prelude(act: Activation, design: Design, keep_all_z: bool) -> String {
    let cg = design.cg();
    let mut s = format!("const CG: u32 = {cg}u;\n");
    if let Design::Lanes { .. } = design {
        // Invocations: a vec4 of columns and LANE_ROWS rows each.
        let rows = design.block_rows();
        let rg = rows / LANE_ROWS;
        s.push_str(&format!(
            "const THREADS: u32 = {}u;\nconst RG: u32 = {rg}u;\n\
             const ROWS: u32 = {rows}u;\nconst RPER: u32 = {LANE_ROWS}u;\n",
            rg * cg
        ));
        s.push_str(if design.natural() {
            // wp is the weights: row o of layer l at w_off(l) / 4 + o * w4
            // (column groups past the width, whose sums nothing stores,
            // read the last real one).
            "fn wp_base(l: u32, cg: u32) -> u32 { return w_off(l) / 4u + min(cg, p.w4 - 1u); }\n\
             fn wp_stride() -> u32 { return p.w4; }\n"
        } else {
            "fn wp_base(l: u32, cg: u32) -> u32 { return wp_off(l) + cg; }\n\
             fn wp_stride() -> u32 { return CG; }\n"
        });
    }
    let from_z = act.saved() == Saved::PreActivation;
    if from_z || keep_all_z {
        s.push_str(
            "@group(0) @binding(9) var<storage, read_write> zs: array<f32>;\n\
             fn store_z(l: u32, i: u32, v: f32) { zs[l * p.act_stride + i] = v; }\n",
        );
    } else {
        s.push_str("fn store_z(l: u32, i: u32, v: f32) {}\n");
    }
    if from_z {
        s.push_str("fn saved_at(l: u32, i: u32) -> f32 { return zs[l * p.act_stride + i]; }\n");
    } else {
        s.push_str("fn saved_at(l: u32, i: u32) -> f32 { return load_y(l, i); }\n");
    }
    s
}

/// The source of the pack, forward and backward kernels for `act` in the
/// workgroup-memory design at `lanes` (16, 32, 64 or 128; with
/// `keep_all_z`, a forward that stores every pre-activation; with
/// `aligned`, for input and hidden widths that are multiples of 4).
#[cfg(test)]
pub(crate) fn fused_source(act: Activation, lanes: u32, keep_all_z: bool, aligned: bool) -> String {
    let design = Design::Lanes {
        lanes,
        input4: aligned,
        width4: aligned,
    };
    design_source(act, design, keep_all_z, false)
}

/// The source of the pack, forward and backward kernels for `act` in the
/// subgroup design, for `width` hidden units on `input` features and
/// subgroups of `subgroup` invocations (with `gathered`, a forward that
/// gathers its batch).
#[cfg(test)]
pub(crate) fn fused_subgroup_source(
    act: Activation,
    input: usize,
    width: usize,
    subgroup: u32,
    keep_all_z: bool,
    gathered: bool,
) -> String {
    design_source(
        act,
        Design::Subgroup(SgLayout::new(input, width, subgroup, true)),
        keep_all_z,
        gathered,
    )
}

fn design_source(act: Activation, design: Design, keep_all_z: bool, gathered: bool) -> String {
    let kernels = match design {
        Design::Lanes { .. } => shader::FUSED_MLP_LANES_WGSL.to_string(),
        Design::Subgroup(l) => fused_sg::kernels(&l, gathered),
    };
    shader::assemble(
        &format!(
            "{}{}\n{kernels}",
            prelude(act, design, keep_all_z),
            shader::FUSED_MLP_WGSL
        ),
        Some(act),
    )
}

/// The source of the weight-gradient kernel of the workgroup-memory design
/// for `act`, reading the net's input as vec4s where `input4` (its width is
/// a multiple of 4) and the hidden activations and dz where `width4`.
pub fn fused_grads_source(act: Activation, input4: bool, width4: bool) -> String {
    let mut s = String::new();
    // The loaders the kernel names: (binding, buffer, loader, vec4s?).
    for (binding, buffer, loader, vec4) in [
        (1, "gx", "ld_x0", input4),
        (2, "gys0", "ld_y0", width4),
        (6, "gys1", "ld_y1", width4),
        (3, "gdz", "ld_dz", width4),
    ] {
        let body = if vec4 {
            format!("return {buffer}[at / 4u + k4];")
        } else {
            let comp =
                |c: u32| format!("select(0.0, {buffer}[at + min(k + {c}u, n - 1u)], k + {c}u < n)");
            format!(
                "let k = k4 * 4u;\n    return vec4<f32>({}, {}, {}, {});",
                comp(0),
                comp(1),
                comp(2),
                comp(3)
            )
        };
        let ty = if vec4 { "vec4<f32>" } else { "f32" };
        let _ = write!(
            s,
            "@group(0) @binding({binding}) var<storage, read> {buffer}: array<{ty}>;\n\
             fn {loader}(at: u32, k4: u32, n: u32) -> vec4<f32> {{\n    {body}\n}}\n"
        );
    }
    shader::assemble(&format!("{s}{}", shader::FUSED_MLP_GRADS_WGSL), Some(act))
}

/// The weight-gradient kernel of `design`, doing what `out` says with the
/// gradients (the workgroup-memory design only stores them; the subgroup
/// design folds SGD in, `shaders/sgd_fold.wgsl`, where aligned).
fn design_grads_source(act: Activation, design: Design, out: GradsOut) -> String {
    match design {
        Design::Lanes { input4, width4, .. } => fused_grads_source(act, input4, width4),
        Design::Subgroup(l) => {
            let fold = if out.updates() {
                format!("{}\n{}\n", shader::OPTIM_COMMON_WGSL, shader::SGD_FOLD_WGSL)
            } else {
                String::new()
            };
            shader::assemble(
                &format!("{fold}{}", fused_sg::grads_kernel(&l, out)),
                Some(act),
            )
        }
    }
}

/// The pipeline-cache key of [`design_grads_source`]'s kernel (the
/// workgroup-memory design's is the same for every width: one per
/// activation and whether the input and hidden widths are multiples of 4).
fn design_grads_key(act: Activation, design: Design, out: GradsOut) -> String {
    match (design, out) {
        (Design::Lanes { input4, width4, .. }, _) => {
            format!("fused_mlp_grads:{act}:{input4}:{width4}")
        }
        (Design::Subgroup(_), GradsOut::Store) => {
            format!("fused_mlp_grads:{act}:{}", design.key())
        }
        (Design::Subgroup(_), _) => format!("fused_mlp_grads:{act}:{}:{out:?}", design.key()),
    }
}

/// The source of the weight-gradient kernel of the subgroup design for
/// `width` hidden units on `input` features and subgroups of `subgroup`
/// invocations.
#[cfg(test)]
pub(crate) fn fused_subgroup_grads_source(
    act: Activation,
    input: usize,
    width: usize,
    subgroup: u32,
    out: GradsOut,
) -> String {
    design_grads_source(
        act,
        Design::Subgroup(SgLayout::new(input, width, subgroup, true)),
        out,
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

/// The weights as texels, [`fused_sg::WEIGHT_TEXTURE_WIDTH`] a row.
struct WeightTexture {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    /// vec4s of weights it holds.
    texels: u32,
}

impl WeightTexture {
    fn new(gpu: &Gpu, floats: usize) -> Result<WeightTexture, Error> {
        let width = fused_sg::WEIGHT_TEXTURE_WIDTH;
        let texels = u32::try_from(floats.div_ceil(4)).unwrap_or(u32::MAX).max(1);
        let rows = texels.div_ceil(width);
        let max = gpu.limits().max_texture_dimension_2d;
        if rows > max {
            return Err(Error::DeviceLimit {
                what: format!("the fused stack's weight texture ({texels} texels)"),
                limit: "max_texture_dimension_2d".into(),
                needed: rows as u64,
                available: max as u64,
            });
        }
        let texture = gpu.scoped("allocating the weight texture", || {
            gpu.device().create_texture(&wgpu::TextureDescriptor {
                label: Some("fusedmlp fused weights"),
                size: wgpu::Extent3d {
                    width,
                    height: rows,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba32Float,
                usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            })
        })?;
        let view = texture.create_view(&Default::default());
        Ok(WeightTexture {
            texture,
            view,
            texels,
        })
    }

    /// Records copying the first `texels` vec4s of `w` into the texture:
    /// whole rows, then the last partial one.
    fn record_copy(&self, encoder: &mut wgpu::CommandEncoder, w: &GpuTensor) {
        let width = fused_sg::WEIGHT_TEXTURE_WIDTH;
        let (buffer, offset) = w.raw();
        let (rows, rest) = (self.texels / width, self.texels % width);
        let copy = |encoder: &mut wgpu::CommandEncoder, at: u64, row: u32, extent| {
            super::plan::copy_to_texture(
                encoder,
                (
                    buffer,
                    wgpu::TexelCopyBufferLayout {
                        offset: offset + at,
                        bytes_per_row: Some(width * 16),
                        rows_per_image: None,
                    },
                ),
                (&self.texture, wgpu::Origin3d { x: 0, y: row, z: 0 }),
                extent,
            );
        };
        if rows > 0 {
            let extent = wgpu::Extent3d {
                width,
                height: rows,
                depth_or_array_layers: 1,
            };
            copy(encoder, 0, 0, extent);
        }
        if rest > 0 {
            let extent = wgpu::Extent3d {
                width: rest,
                height: 1,
                depth_or_array_layers: 1,
            };
            copy(encoder, rows as u64 * width as u64 * 16, rows, extent);
        }
    }

    fn entry(&self) -> wgpu::BindGroupEntry<'_> {
        super::elementwise::texture_entry(14, &self.view)
    }
}

/// The device buffers of a fused stack for one shape and activation, made
/// once ([`Gpu::fused_buffers`]) and reused by every forward and backward.
/// Where a gathering forward (see [`FusedBuffers::gathers`]) finds its
/// batch: batch row `r` is row `min(perm[offset + r], last)` of the split
/// bound as the forward's input, `offset` and `last` being words 5 and 6
/// of `step`; the forward writes the gathered rows into `x_batch` and their
/// labels (read from `labels`) into `y_batch`. The kernel runs without
/// bounds checks: `perm` must hold `offset + batch` entries and `last` be
/// below the split's rows.
pub(crate) struct BatchSource<'a> {
    pub labels: &'a GpuTensor,
    pub perm: &'a wgpu::Buffer,
    pub step: &'a wgpu::Buffer,
    pub x_batch: &'a GpuTensor,
    pub y_batch: &'a GpuTensor,
}

pub struct FusedBuffers {
    act: Activation,
    shape: FusedShape,
    design: Design,
    /// What lays the weights out for the kernels (none where they read
    /// the weights where they lie).
    pack: Option<Arc<wgpu::ComputePipeline>>,
    forward: Arc<wgpu::ComputePipeline>,
    /// The forward that stores every layer's pre-activation in `zs`.
    forward_keeping_z: Arc<wgpu::ComputePipeline>,
    /// Whether both forwards gather their batch ([`BatchSource`]).
    gathered: bool,
    backward: Arc<wgpu::ComputePipeline>,
    weight_grads: Arc<wgpu::ComputePipeline>,
    params: wgpu::Buffer,
    grad_params: wgpu::Buffer,
    /// Invocations of the weight-gradient dispatch, and per workgroup.
    grad_items: u64,
    grad_group: u32,
    /// Per layer, where its weight and bias are read and its weight and
    /// bias gradients written: `[w, b, dw, db]` offsets in floats.
    table: wgpu::Buffer,
    /// The floats the weights, biases and gradients the table points into
    /// must hold at least.
    needs: (usize, usize, usize),
    wt: GpuTensor,
    wp: GpuTensor,
    /// The aligned subgroup design's copy of the weights as an rgba32float
    /// texture (texel loads cost llvmpipe about a tenth of storage loads),
    /// refreshed from the weights at the start of each forward.
    wtex: Option<WeightTexture>,
    /// Every layer's output, `[batch, width]` each: even layers in
    /// `ys[0]`, odd layers in `ys[1]`, layer `l` at `(l / 2) *`
    /// [`FusedShape::act_stride`] (two buffers, so a layered kernel that
    /// reads one layer's output and writes the next binds two).
    pub ys: [GpuTensor; 2],
    /// Every layer's pre-activation, layer `l` at `l *`
    /// [`FusedShape::act_stride`]: written by every forward where the
    /// backward needs it, by [`Gpu::record_fused_mlp_forward_keeping_z`]
    /// for any activation.
    pub zs: GpuTensor,
    /// The last layer's output, `[batch, width]`.
    pub y_last: GpuTensor,
    /// Every layer's activation gradient, `[layers, batch, width]`.
    pub dz: GpuTensor,
    /// Every layer's (dW, db), packed as [`FusedShape::grads_len`] says.
    pub grads: GpuTensor,
}

/// What a kernel that folds plain SGD in (`shaders/sgd_fold.wgsl`) binds
/// beyond its own work: the parameter arena it updates (binding 7 of the
/// weight-gradient kernel, 2 of the output layer's), the momentum buffers,
/// the step state, the divergence flags and the optimizer's settings.
pub(crate) struct SgdFold<'a> {
    /// The parameter arena, updated in place.
    pub arena: &'a GpuTensor,
    /// The momentum buffers, laid out as the arena.
    pub momentum: &'a GpuTensor,
    /// The step state (learning rate, clipping scale, step number).
    pub step: &'a wgpu::Buffer,
    /// Per (layer, kind) slot, the first non-finite step.
    pub first_bad: &'a wgpu::Buffer,
    /// The optimizer's settings (`OptimParams`).
    pub settings: &'a wgpu::Buffer,
    /// Whether the weight gradients are also stored in the gradient arena
    /// (a logged step's norms read them; an unlogged step's nothing).
    pub keep_grads: bool,
}

impl SgdFold<'_> {
    /// Bindings 10 to 13 of `shaders/sgd_fold.wgsl`.
    pub(crate) fn fold_bindings(&self) -> [(u32, &dyn Bind); 4] {
        [
            (10, self.step),
            (11, self.momentum),
            (12, self.first_bad),
            (13, self.settings),
        ]
    }

    /// What the weight-gradient kernel does with its gradients.
    fn grads_out(&self) -> GradsOut {
        if self.keep_grads {
            GradsOut::StoreAndUpdate
        } else {
            GradsOut::Update
        }
    }

    /// The weight-gradient kernel's: the arena at 7 and the fold's own.
    fn bindings(&self) -> [(u32, &dyn Bind); 5] {
        let [a, b, c, d] = self.fold_bindings();
        [(7, self.arena), a, b, c, d]
    }
}

impl FusedBuffers {
    /// Whether the weight-gradient dispatch can fold plain SGD in
    /// ([`Gpu::record_fused_mlp_backward_into`]): the subgroup design with
    /// every width a multiple of 4.
    pub(crate) fn folds_sgd(&self) -> bool {
        matches!(self.design, Design::Subgroup(l) if l.aligned)
    }

    /// Whether the forward gathers its batch from a resident split
    /// ([`Gpu::record_fused_mlp_forward_gathering`]) instead of reading a
    /// gathered batch.
    pub(crate) fn gathers(&self) -> bool {
        self.gathered
    }

    /// Layer `l`'s output, `[batch, width]`, inside [`FusedBuffers::ys`].
    pub(crate) fn layer_output(&self, l: usize) -> Result<GpuTensor, Error> {
        let s = self.shape;
        self.ys[l % 2].view((l / 2) * s.act_stride(), s.batch, s.width)
    }

    /// What the backward read for f', per layer, `[batch, width]`: z where
    /// the activation's derivative needs it, else y.
    async fn saved_values(&self, gpu: &Gpu) -> Result<Vec<Vec<f32>>, Error> {
        let s = self.shape;
        let per_layer = s.batch * s.width;
        if self.act.saved() == Saved::PreActivation {
            let all = gpu.download_async(&self.zs).await?;
            return Ok(all
                .chunks(s.act_stride())
                .map(|c| c[..per_layer].to_vec())
                .collect());
        }
        let mut out = Vec::with_capacity(s.layers);
        for l in 0..s.layers {
            out.push(gpu.download_async(&self.layer_output(l)?).await?);
        }
        Ok(out)
    }
}

fn check_at_least(op: &str, name: &str, t: &GpuTensor, len: usize) -> Result<(), Error> {
    if t.len() < len {
        return Err(Error::shape(
            format!("{op}: {name}"),
            format!("at least {len} floats"),
            format!("{} floats", t.len()),
        ));
    }
    Ok(())
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

/// The offset table of weights, biases and gradients packed as
/// [`FusedShape::weight_len`], [`FusedShape::bias_len`] and
/// [`FusedShape::grads_len`] say.
fn packed_table(shape: FusedShape) -> Vec<[u32; 4]> {
    (0..shape.layers)
        .map(|l| {
            let g = shape.grads_offset(l);
            [
                shape.weight_offset(l),
                l * shape.width,
                g,
                g + shape.width * shape.fan_in(l),
            ]
            .map(|v| v as u32)
        })
        .collect()
}

/// Where one hidden layer's weight and bias start in an arena, in floats:
/// the fused kernels read them from the parameter arena and write the
/// gradients at the same offsets of a gradient arena with the same layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ArenaOffsets {
    pub weight: usize,
    pub bias: usize,
}

impl Gpu {
    /// Allocates the buffers of a fused stack of `shape` with activation
    /// `act` through the kernels of design `kernel` (and compiles them; an
    /// error where this adapter cannot run it), for weights, biases and
    /// gradients packed as [`FusedShape::weight_len`],
    /// [`FusedShape::bias_len`] and [`FusedShape::grads_len`] describe.
    pub(crate) fn fused_buffers_with_kernel(
        &self,
        act: Activation,
        shape: FusedShape,
        kernel: FusedKernel,
    ) -> Result<FusedBuffers, Error> {
        shape.check()?;
        self.fused_buffers_with(act, shape, packed_table(shape), kernel, false)
    }

    /// The fused kernel design this adapter runs best: the subgroup design
    /// where subgroups of at least 4 invocations exist, else the
    /// workgroup-memory one. [`FUSED_KERNEL_ENV`]`=lanes` asks for the
    /// workgroup-memory design everywhere (to compare the two).
    pub fn fused_kernel(&self) -> FusedKernel {
        let lanes_asked = std::env::var(FUSED_KERNEL_ENV).as_deref() == Ok("lanes");
        if self.fused_subgroups_ok() && !lanes_asked {
            FusedKernel::Subgroup
        } else {
            FusedKernel::Lanes
        }
    }

    /// Whether the subgroup design can run here: subgroup operations in
    /// kernels, and subgroups of at least 4 invocations (a workgroup is one
    /// subgroup of the adapter's smallest size). On SwiftShader (subgroups of 4) the main job's step took
    /// 8.0-9.1 ms in this design and 13.7-15.9 in the workgroup-memory one,
    /// three rounds taking turns.
    pub fn fused_subgroups_ok(&self) -> bool {
        self.inner.shader_subgroups && self.adapter_info().subgroup_min_size >= MIN_FUSED_SUBGROUP
    }

    fn fused_design(&self, kernel: FusedKernel, shape: FusedShape) -> Result<Design, Error> {
        match kernel {
            FusedKernel::Lanes => Ok(Design::Lanes {
                lanes: (shape.width as u32).next_power_of_two().max(16),
                input4: shape.input.is_multiple_of(4),
                width4: shape.width.is_multiple_of(4),
            }),
            FusedKernel::Subgroup if self.fused_subgroups_ok() => {
                Ok(Design::Subgroup(SgLayout::new(
                    shape.input,
                    shape.width,
                    self.adapter_info().subgroup_min_size,
                    self.adapter_info().device_type == wgpu::DeviceType::Cpu,
                )))
            }
            FusedKernel::Subgroup => Err(Error::Config(format!(
                "the subgroup design of the fused kernels needs subgroups of at least {} \
                 invocations, and this adapter has {}; use FusedKernel::Lanes",
                MIN_FUSED_SUBGROUP,
                if self.inner.shader_subgroups {
                    format!("{} at least", self.adapter_info().subgroup_min_size)
                } else {
                    "none".to_string()
                }
            ))),
        }
    }

    /// [`Gpu::fused_buffers`] for a stack whose weights and biases are read
    /// from a parameter arena at `offsets` (one entry per hidden layer) and
    /// whose gradients are written into a gradient arena at the same
    /// offsets: nothing is packed or unpacked. With `gather`, the forward
    /// gathers its batch where the design and the device allow it
    /// ([`FusedBuffers::gathers`] says whether it does).
    pub(crate) fn fused_buffers_in_arena(
        &self,
        act: Activation,
        shape: FusedShape,
        offsets: &[ArenaOffsets],
        gather: bool,
    ) -> Result<FusedBuffers, Error> {
        shape.check()?;
        if offsets.len() != shape.layers {
            return Err(Error::shape(
                "fused stack: arena offsets",
                shape.layers,
                offsets.len(),
            ));
        }
        let table = offsets
            .iter()
            .map(|o| {
                let (w, b) = (u32::try_from(o.weight), u32::try_from(o.bias));
                match (w, b) {
                    (Ok(w), Ok(b)) => Ok([w, b, w, b]),
                    _ => Err(Error::Config(
                        "the parameter arena is too large for the fused kernels' u32 offsets"
                            .into(),
                    )),
                }
            })
            .collect::<Result<Vec<_>, Error>>()?;
        self.fused_buffers_with(act, shape, table, self.fused_kernel(), gather)
    }

    fn fused_buffers_with(
        &self,
        act: Activation,
        shape: FusedShape,
        table: Vec<[u32; 4]>,
        kernel: FusedKernel,
        gather: bool,
    ) -> Result<FusedBuffers, Error> {
        act.validate()?;
        shape.check()?;
        let design = self.fused_design(kernel, shape)?;
        // Only the subgroup design's forward gathers, on a device that
        // allows the storage buffers it then binds.
        let gathered = gather
            && matches!(design, Design::Subgroup(_))
            && self.limits().max_storage_buffers_per_shader_stage >= 9 + fused_sg::GATHER_BINDINGS;
        let (wt_len, wp_len) = (design.wt_len(shape), design.wp_len(shape));
        let params = self.params(&FusedParams {
            batch: shape.batch as u32,
            input: shape.input as u32,
            width: shape.width as u32,
            layers: shape.layers as u32,
            in4: (pad4(shape.input) / 4) as u32,
            w4: (pad4(shape.width) / 4) as u32,
            wt_len: wt_len as u32,
            wp_len: wp_len as u32,
            act_stride: shape.act_stride() as u32,
            rper: LANE_ROWS,
            pad: [0; 2],
        })?;
        let (grad_params, grad_items, grad_group) = self.grad_params(shape, design)?;
        let key = format!("fused_mlp:{act}:{}", design.key());
        let source = |keep_all_z, gathered| design_source(act, design, keep_all_z, gathered);
        let stack = |entry| self.pipeline(&key, entry, || source(false, false), true);
        let pack = design.pack_entry().map(stack).transpose()?;
        let backward = stack("backward")?;
        let (forward, forward_keeping_z) = if gathered {
            let gathering = |z: bool| {
                let key = format!("{key}:gathered{}", if z { ":z" } else { "" });
                self.pipeline(&key, "forward", || source(z, true), true)
            };
            (gathering(false)?, gathering(true)?)
        } else {
            let z = self.pipeline(&format!("{key}:z"), "forward", || source(true, false), true)?;
            (stack("forward")?, z)
        };
        let weight_grads = self.pipeline(
            &design_grads_key(act, design, GradsOut::Store),
            "weight_grads",
            || design_grads_source(act, design, GradsOut::Store),
            true,
        )?;
        let end = |col: usize, len: &dyn Fn(usize) -> usize| {
            table
                .iter()
                .enumerate()
                .map(|(l, t)| t[col] as usize + len(l))
                .max()
                .unwrap_or(0)
        };
        let needs = (
            end(0, &|l| shape.width * shape.fan_in(l)),
            end(1, &|_| shape.width),
            end(2, &|l| shape.width * shape.fan_in(l)).max(end(3, &|_| shape.width)),
        );
        let table = self.table("the fused offset table", &table)?;
        let wtex = match design {
            Design::Subgroup(l) if l.aligned => Some(WeightTexture::new(self, needs.0)?),
            _ => None,
        };
        Ok(FusedBuffers {
            wtex,
            act,
            shape,
            design,
            table,
            needs,
            pack,
            forward,
            forward_keeping_z,
            gathered,
            backward,
            weight_grads,
            params,
            grad_params,
            grad_items,
            grad_group,
            wt: self.zeros(1, 4 * wt_len.max(1))?,
            wp: self.zeros(1, 4 * wp_len.max(1))?,
            ys: [
                self.zeros(1, shape.layers.div_ceil(2) * shape.act_stride())?,
                self.zeros(1, (shape.layers / 2).max(1) * shape.act_stride())?,
            ],
            zs: self.zeros(1, shape.activations_len())?,
            y_last: self.zeros(shape.batch, shape.width)?,
            dz: self.zeros(1, shape.activations_len())?,
            grads: self.zeros(1, shape.grads_len())?,
        })
    }

    /// The weight-gradient kernel's parameters for `design`, with the
    /// invocations of its dispatch and per workgroup.
    fn grad_params(
        &self,
        shape: FusedShape,
        design: Design,
    ) -> Result<(wgpu::Buffer, u64, u32), Error> {
        let layers = shape.layers as u64;
        let (tiles, items, group) = match design {
            Design::Lanes { .. } => {
                // 8 x 8 tiles of each layer's [width, in_l] dW.
                let tiles = |n: usize| n.div_ceil(8) as u32;
                let row_tiles = tiles(shape.width);
                let (col_tiles0, col_tiles) = (tiles(shape.input), tiles(shape.width));
                let items =
                    row_tiles as u64 * (col_tiles0 as u64 + (layers - 1) * col_tiles as u64);
                ([row_tiles, col_tiles0, col_tiles], items, 64)
            }
            Design::Subgroup(l) => {
                // Tiles of 4 OB outputs by 4 S inputs of each layer's dW.
                let k_tiles = |n: usize| (n as u32).div_ceil(4 * l.s);
                let o_tiles = (shape.width as u32).div_ceil(4 * l.grad_ob);
                let (k_tiles0, k_tiles) = (k_tiles(shape.input), k_tiles(shape.width));
                let groups = o_tiles as u64 * (k_tiles0 as u64 + (layers - 1) * k_tiles as u64);
                ([k_tiles0, k_tiles, o_tiles], groups * l.s as u64, l.s)
            }
        };
        let params = self.params(&GradParams {
            batch: shape.batch as u32,
            input: shape.input as u32,
            width: shape.width as u32,
            layers: shape.layers as u32,
            tiles,
            act_stride: shape.act_stride() as u32,
        })?;
        Ok((params, items, group))
    }

    /// Records the fused forward pass of a stack of hidden layers, all with
    /// the activation of `bufs`: `y_l = act(y_{l-1}·W_lᵀ + b_l)` for every
    /// layer. Two dispatches: laying out the weights, then the whole stack.
    /// `w` and `b` are packed as [`FusedShape::weight_len`] and
    /// [`FusedShape::bias_len`] describe; the results land in `bufs`
    /// (`ys`, `y_last`, and z where the backward needs it).
    pub(crate) fn record_fused_mlp_forward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        x: &GpuTensor,
        w: &GpuTensor,
        b: &GpuTensor,
        bufs: &FusedBuffers,
    ) -> Result<(), Error> {
        self.record_fused_forward_with(encoder, x, w, b, bufs, false, None)
    }

    /// [`Gpu::record_fused_mlp_forward`] (or, with `keep_all_z`,
    /// [`Gpu::record_fused_mlp_forward_keeping_z`]) for buffers whose
    /// forward gathers its batch ([`FusedBuffers::gathers`]): `split` is the
    /// resident split's rows, `[rows, input]`, and `from` says which rows
    /// the batch takes and where the gathered batch goes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_fused_mlp_forward_gathering(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        split: &GpuTensor,
        from: &BatchSource,
        w: &GpuTensor,
        b: &GpuTensor,
        bufs: &FusedBuffers,
        keep_all_z: bool,
    ) -> Result<(), Error> {
        self.record_fused_forward_with(encoder, split, w, b, bufs, keep_all_z, Some(from))
    }

    /// [`Gpu::record_fused_mlp_forward`] that also stores every layer's
    /// pre-activation in `bufs.zs`, whatever the activation: what a logged
    /// step's diagnostics read.
    pub(crate) fn record_fused_mlp_forward_keeping_z(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        x: &GpuTensor,
        w: &GpuTensor,
        b: &GpuTensor,
        bufs: &FusedBuffers,
    ) -> Result<(), Error> {
        self.record_fused_forward_with(encoder, x, w, b, bufs, true, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn record_fused_forward_with(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        x: &GpuTensor,
        w: &GpuTensor,
        b: &GpuTensor,
        bufs: &FusedBuffers,
        keep_all_z: bool,
        from: Option<&BatchSource>,
    ) -> Result<(), Error> {
        let (act, shape) = (bufs.act, bufs.shape);
        let op = "fused_mlp_forward";
        match (bufs.gathered, from) {
            (false, None) => check_len(op, "x", x, shape.batch * shape.input)?,
            (true, Some(from)) => {
                if x.cols() != shape.input || x.rows() == 0 {
                    return Err(Error::shape(
                        "fused_mlp_forward: the split to gather from",
                        format!("rows of {} features", shape.input),
                        format!("{} rows of {} features", x.rows(), x.cols()),
                    ));
                }
                check_at_least(op, "x_batch", from.x_batch, shape.batch * shape.input)?;
                check_at_least(op, "y_batch", from.y_batch, shape.batch)?;
                check_at_least(op, "labels", from.labels, x.rows())?;
            }
            (gathers, _) => {
                let (does, call) = if gathers {
                    ("gathers", "record_fused_mlp_forward_gathering")
                } else {
                    ("does not gather", "record_fused_mlp_forward")
                };
                return Err(Error::Config(format!(
                    "fused_mlp_forward: these buffers' forward {does} its batch; record it with {call}"
                )));
            }
        }
        check_at_least(op, "w", w, bufs.needs.0)?;
        check_at_least(op, "b", b, bufs.needs.1)?;
        let (gx, gy, _) = grid_1d(self, bufs.design.pack_items(shape), 64)?;
        let blocks = self.row_blocks(shape, bufs.design)?;
        let keep_z = keep_all_z || act.saved() == Saved::PreActivation;
        let forward = if keep_all_z {
            &bufs.forward_keeping_z
        } else {
            &bufs.forward
        };
        self.scoped("recording the fused forward", || {
            if let Some(pack) = &bufs.pack {
                let mut bindings: Vec<(u32, &dyn Bind)> =
                    vec![(0, &bufs.params), (2, &bufs.wt), (10, &bufs.table)];
                // pack_t4 reads the weights as vec4s (binding 7); the other
                // packs read floats, and only the workgroup-memory design's
                // lays out a backward copy.
                match bufs.design {
                    d if d.natural() => bindings.push((7, &w)),
                    Design::Lanes { .. } => bindings.extend([(7, &bufs.wp as &dyn Bind), (8, &w)]),
                    Design::Subgroup(_) => bindings.push((8, &w)),
                }
                record_pass(
                    self,
                    encoder,
                    "fused mlp weight layout",
                    pack,
                    &bindings,
                    (gx, gy, 1),
                );
            }
            let mut bindings: Vec<(u32, &dyn Bind)> = vec![
                (0, &bufs.params),
                (3, &b),
                (4, &bufs.ys[0]),
                (11, &bufs.ys[1]),
                (5, &bufs.y_last),
                (10, &bufs.table),
            ];
            match bufs.design {
                Design::Lanes { .. } => bindings.extend([(1, &x as &dyn Bind), (2, &bufs.wt)]),
                Design::Subgroup(l) if l.aligned => bindings.push((13, &x as &dyn Bind)),
                Design::Subgroup(_) => bindings.extend([(1, &x as &dyn Bind), (12, &bufs.wt)]),
            }
            if keep_z {
                bindings.push((9, &bufs.zs));
            }
            if let Some(from) = from {
                bindings.extend([
                    (15, from.perm as &dyn Bind),
                    (16, from.step),
                    (17, from.labels),
                    (18, from.x_batch),
                    (19, from.y_batch),
                ]);
            }
            let mut entries = buffer_entries(&bindings);
            if let Some(t) = &bufs.wtex {
                // This step's weights, as texels.
                t.record_copy(encoder, w);
                entries.push(t.entry());
            }
            record_pass_entries(
                self,
                encoder,
                "fused mlp forward",
                forward,
                &entries,
                (blocks, 1, 1),
            );
        })
    }

    /// Records the fused backward pass: from `dy_last` (dL/dy of the last
    /// hidden layer, `[batch, width]`) every layer's activation gradient
    /// into `bufs.dz` in one dispatch walking the layers in reverse, then
    /// every layer's weight and bias gradients into `bufs.grads` in a
    /// second. Reads what [`Gpu::record_fused_mlp_forward`] left in `bufs`
    /// (record it first, with the same weights). No gradient is computed
    /// for the net's input.
    pub(crate) fn record_fused_mlp_backward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        x: &GpuTensor,
        w: &GpuTensor,
        dy_last: &GpuTensor,
        bufs: &FusedBuffers,
    ) -> Result<(), Error> {
        self.record_fused_mlp_backward_into(encoder, x, w, dy_last, bufs, &bufs.grads, None)
    }

    /// [`Gpu::record_fused_mlp_backward`] writing the weight and bias
    /// gradients into `grads` (where the offset table of `bufs` points:
    /// a gradient arena) instead of `bufs.grads`; with `fold` (where
    /// [`FusedBuffers::folds_sgd`]) the weight-gradient dispatch also
    /// applies plain SGD to every weight and bias it makes the gradient of.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_fused_mlp_backward_into(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        x: &GpuTensor,
        w: &GpuTensor,
        dy_last: &GpuTensor,
        bufs: &FusedBuffers,
        grads: &GpuTensor,
        fold: Option<&SgdFold<'_>>,
    ) -> Result<(), Error> {
        let (act, shape) = (bufs.act, bufs.shape);
        let op = "fused_mlp_backward";
        check_len(op, "x", x, shape.batch * shape.input)?;
        check_len(op, "dy_last", dy_last, shape.batch * shape.width)?;
        check_at_least(op, "w", w, bufs.needs.0)?;
        check_at_least(op, "grads", grads, bufs.needs.2)?;
        // The folding kernel, with the fold it binds.
        let folding = match fold {
            Some(f) => {
                if !bufs.folds_sgd() {
                    return Err(Error::Config(
                        "this fused stack's layout cannot fold SGD into its weight gradients \
                         (widths must be multiples of 4 on the subgroup design); \
                         run the optimizer's own dispatch"
                            .into(),
                    ));
                }
                check_at_least(
                    op,
                    "the parameter arena",
                    f.arena,
                    bufs.needs.0.max(bufs.needs.1),
                )?;
                check_at_least(op, "the momentum buffers", f.momentum, f.arena.len())?;
                let (design, out) = (bufs.design, f.grads_out());
                let pipeline = self.pipeline(
                    &design_grads_key(act, design, out),
                    "weight_grads",
                    || design_grads_source(act, design, out),
                    true,
                )?;
                Some((pipeline, f))
            }
            None => None,
        };
        let (gx, gy, _) = grid_1d(self, bufs.grad_items, bufs.grad_group)?;
        let blocks = self.row_blocks(shape, bufs.design)?;
        let keep_z = act.saved() == Saved::PreActivation;
        self.scoped("recording the fused backward", || {
            // f' reads z where it is kept, else y.
            let mut bindings: Vec<(u32, &dyn Bind)> =
                vec![(0, &bufs.params), (5, &dy_last), (6, &bufs.dz)];
            match bufs.design {
                d if d.natural() => bindings.extend([(7, &w as &dyn Bind), (10, &bufs.table)]),
                Design::Lanes { .. } => bindings.push((7, &bufs.wp)),
                Design::Subgroup(l) if l.aligned => bindings.push((10, &bufs.table)),
                Design::Subgroup(_) => bindings.push((12, &bufs.wt)),
            }
            if keep_z {
                bindings.push((9, &bufs.zs));
            } else {
                bindings.push((4, &bufs.ys[0]));
                bindings.push((11, &bufs.ys[1]));
            }
            let mut entries = buffer_entries(&bindings);
            // The weights the forward copied into the texture.
            if let Some(t) = &bufs.wtex {
                entries.push(t.entry());
            }
            record_pass_entries(
                self,
                encoder,
                "fused mlp backward",
                &bufs.backward,
                &entries,
                (blocks, 1, 1),
            );
            let mut bindings: Vec<(u32, &dyn Bind)> = vec![
                (0, &bufs.grad_params),
                (1, &x),
                (2, &bufs.ys[0]),
                (6, &bufs.ys[1]),
                (3, &bufs.dz),
                (4, &grads),
                (5, &bufs.table),
            ];
            let pipeline = match &folding {
                Some((pipeline, f)) => {
                    if !f.grads_out().stores() {
                        // The kernel stores no gradient.
                        bindings.retain(|(b, _)| *b != 4);
                    }
                    bindings.extend(f.bindings());
                    pipeline
                }
                None => &bufs.weight_grads,
            };
            record_pass(
                self,
                encoder,
                "fused mlp weight gradients",
                pipeline,
                &bindings,
                (gx, gy, 1),
            );
        })
    }

    /// Workgroups of the forward and backward kernels: one per block of rows.
    fn row_blocks(&self, shape: FusedShape, design: Design) -> Result<u32, Error> {
        let blocks = (shape.batch as u64).div_ceil(design.block_rows() as u64);
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
            let fan_in = shape.fan_in(l);
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
        Ok((self.upload(&w, 1, w.len())?, self.upload(&b, 1, b.len())?))
    }

    /// The fused forward pass from host slices: `x` is `[batch, input]`,
    /// `layers` the (weight `[width, in_l]`, bias `[width]`) of each hidden
    /// layer, every one with activation `act`.
    ///
    /// ```no_run
    /// use fusedmlp::gpu::FusedShape;
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
        self.fused_mlp_forward_with(self.fused_kernel(), act, x, layers, shape)
    }

    /// [`Gpu::fused_mlp_forward`] through the kernels of design `kernel`.
    pub fn fused_mlp_forward_with(
        &self,
        kernel: FusedKernel,
        act: Activation,
        x: &[f32],
        layers: &[(Vec<f32>, Vec<f32>)],
        shape: FusedShape,
    ) -> Result<FusedForward, Error> {
        let bufs = self.fused_buffers_with_kernel(act, shape, kernel)?;
        let op = "fused_mlp_forward";
        let xt = self.upload(x, shape.batch, shape.input)?;
        let (w, b) = self.upload_stack(op, shape, layers)?;
        let mut encoder = self.device().create_command_encoder(&Default::default());
        self.record_fused_mlp_forward(&mut encoder, &xt, &w, &b, &bufs)?;
        self.submit(op, vec![encoder.finish()])?;
        Ok(FusedForward {
            saved: pollster::block_on(bufs.saved_values(self))?,
            y_last: self.download(&bufs.y_last)?,
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
        self.fused_mlp_backward_with(self.fused_kernel(), act, x, layers, dy_last, shape)
    }

    /// [`Gpu::fused_mlp_backward`] through the kernels of design `kernel`.
    pub fn fused_mlp_backward_with(
        &self,
        kernel: FusedKernel,
        act: Activation,
        x: &[f32],
        layers: &[(Vec<f32>, Vec<f32>)],
        dy_last: &[f32],
        shape: FusedShape,
    ) -> Result<FusedGrads, Error> {
        let bufs = self.fused_buffers_with_kernel(act, shape, kernel)?;
        let op = "fused_mlp_backward";
        let xt = self.upload(x, shape.batch, shape.input)?;
        let (w, b) = self.upload_stack(op, shape, layers)?;
        let dyt = self.upload(dy_last, shape.batch, shape.width)?;
        let mut encoder = self.device().create_command_encoder(&Default::default());
        self.record_fused_mlp_forward(&mut encoder, &xt, &w, &b, &bufs)?;
        self.record_fused_mlp_backward(&mut encoder, &xt, &w, &dyt, &bufs)?;
        self.submit(op, vec![encoder.finish()])?;
        let per_layer = shape.batch * shape.width;
        let flat = self.download(&bufs.grads)?;
        let mut out = Vec::with_capacity(shape.layers);
        for l in 0..shape.layers {
            let (at, n) = (shape.grads_offset(l), shape.width * shape.fan_in(l));
            out.push((
                flat[at..at + n].to_vec(),
                flat[at + n..at + n + shape.width].to_vec(),
            ));
        }
        Ok(FusedGrads {
            dz: self
                .download(&bufs.dz)?
                .chunks(shape.act_stride())
                .map(|c| c[..per_layer].to_vec())
                .collect(),
            grads: out,
        })
    }
}
