//! The GEMM kernel generator behind every linear layer:
//! `C[m, n] = Σ_k A(m, k)·B(k, n)`, with an optional fused epilogue
//! `Y = act(C + bias)` that can also keep `Z = C + bias`.
//!
//! Why generated: naga emits loops that drivers do not unroll well, and on
//! llvmpipe accumulators must be named variables (an indexed array spills),
//! so each variant's inner loop is written out in full.
//!
//! The design, from measurements on lavapipe: an invocation owns
//! `rows × cols` outputs, with no shared memory and no barriers (each
//! barrier suspends llvmpipe's SIMD coroutines). What limits llvmpipe is the
//! load, not the multiply-add: a storage-buffer load whose address differs
//! between invocations (inside a loop, every load) is compiled to a branchy
//! loop over the 8 SIMD lanes, so a kernel that only did its multiply-adds
//! would run 15-20x faster than one that loads. Two things cut the loads:
//! - the subgroup kinds share A: the workgroup works on the same rows, each
//!   invocation of a subgroup loads a different row and `subgroupBroadcast`
//!   (a register shuffle) hands every row to every invocation;
//! - the texture kinds read both operands from `rgba32float` storage
//!   textures, whose loads llvmpipe compiles through its image path, about
//!   4x cheaper than a storage-buffer vec4 load at 1024³. The operands are
//!   copied or packed into the textures first (`gpu::linear`, O(n²)).
//!
//! With subgroups of 8 and `acc` accumulators per invocation, a tile that
//! loads X texels of A and Y of B per step does 32·X·Y multiply-adds with
//! `acc = 8·X·Y`, so it gets at most 2·√(8·acc) multiply-adds per load (32
//! at 32 accumulators, 45 at 64); past about 64 the accumulators spill out
//! of AVX2's 16 registers and the gain is lost. Measured on lavapipe at
//! 1024³: the 16×2 subgroup tile without its loads runs at 95-120 GFLOP/s,
//! with them at 23-26.
//!
//! Real GPUs want other shapes; which (kind, rows, cols, multiply-add form)
//! is fastest is measured per adapter by the autotuner (`gpu::autotune`).

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::shader;
use crate::activation::Activation;

/// How a kernel reads its operands and shares them between invocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GemmKind {
    /// Scalar loads; any strides. The fallback for ragged inner dimensions.
    Scalar,
    /// vec4 loads along k (strides a multiple of 4, zero padding up to it);
    /// each invocation owns a `rows × cols` block of an 8×8 grid of blocks.
    Vec4,
    /// vec4 loads along k; the whole workgroup shares its rows, and each
    /// subgroup loads every A row once and hands it to its invocations by
    /// `subgroupBroadcast` (a register shuffle instead of a memory load).
    /// Needs subgroups of at least 8 invocations.
    Vec4Subgroup,
    /// As `Vec4` (an 8×8 grid of `rows × cols` blocks), the operands read
    /// from `rgba32float` storage textures (one texel = 4 consecutive k).
    Texture,
    /// As `Vec4Subgroup`, the operands read from `rgba32float` storage
    /// textures.
    TextureSubgroup,
}

impl GemmKind {
    /// Whether the kernel reads its operands from textures (packed from the
    /// buffers before each GEMM).
    pub fn uses_textures(self) -> bool {
        matches!(self, GemmKind::Texture | GemmKind::TextureSubgroup)
    }

    /// Whether the kernel shares A rows by subgroup broadcasts.
    pub fn uses_subgroups(self) -> bool {
        matches!(self, GemmKind::Vec4Subgroup | GemmKind::TextureSubgroup)
    }

    /// Whether invocations form an 8×8 grid of blocks (else the whole
    /// workgroup shares its rows).
    fn grid(self) -> bool {
        matches!(self, GemmKind::Vec4 | GemmKind::Texture)
    }
}

/// One kernel configuration the autotuner can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GemmVariant {
    /// How operands are loaded and shared.
    pub kind: GemmKind,
    /// Output rows per invocation.
    pub rows: u32,
    /// Output columns per invocation.
    pub cols: u32,
    /// Invocations per workgroup (64 for `Vec4`: an 8×8 grid).
    pub workgroup: u32,
    /// `fma(a, b, c)` when true, `a * b + c` when false.
    pub fma: bool,
}

const fn v(kind: GemmKind, rows: u32, cols: u32, workgroup: u32, fma: bool) -> GemmVariant {
    GemmVariant {
        kind,
        rows,
        cols,
        workgroup,
        fma,
    }
}

impl GemmVariant {
    /// Every variant the autotuner measures.
    pub const CANDIDATES: [GemmVariant; 17] = [
        v(GemmKind::Scalar, 4, 4, 64, true),
        v(GemmKind::Scalar, 4, 2, 64, false),
        v(GemmKind::Vec4, 4, 4, 64, true),
        v(GemmKind::Vec4, 8, 8, 64, true),
        v(GemmKind::Vec4Subgroup, 8, 2, 64, true),
        v(GemmKind::Vec4Subgroup, 16, 2, 64, true),
        v(GemmKind::Vec4Subgroup, 16, 4, 64, true),
        v(GemmKind::Vec4Subgroup, 16, 4, 64, false),
        v(GemmKind::Vec4Subgroup, 24, 2, 64, true),
        v(GemmKind::Vec4Subgroup, 32, 2, 64, true),
        v(GemmKind::Texture, 4, 4, 64, true),
        v(GemmKind::Texture, 8, 8, 64, true),
        v(GemmKind::TextureSubgroup, 8, 4, 64, true),
        v(GemmKind::TextureSubgroup, 16, 2, 64, true),
        v(GemmKind::TextureSubgroup, 16, 4, 64, true),
        v(GemmKind::TextureSubgroup, 24, 2, 64, true),
        v(GemmKind::TextureSubgroup, 32, 2, 64, true),
    ];

    /// Output rows covered by one workgroup.
    pub fn tile_rows(&self) -> u32 {
        if self.kind.grid() {
            8 * self.rows
        } else {
            self.rows
        }
    }

    /// Output columns covered by one workgroup.
    pub fn tile_cols(&self) -> u32 {
        if self.kind.grid() {
            8 * self.cols
        } else {
            self.workgroup * self.cols
        }
    }

    /// Whether operands must have strides that are multiples of 4 (and be
    /// zero-padded up to them).
    pub fn needs_vec4(&self) -> bool {
        self.kind != GemmKind::Scalar
    }

    /// A name like `vec4_r8c8w64_fma`.
    pub fn name(&self) -> String {
        format!(
            "{}_r{}c{}w{}_{}",
            match self.kind {
                GemmKind::Scalar => "scalar",
                GemmKind::Vec4 => "vec4",
                GemmKind::Vec4Subgroup => "subgroup",
                GemmKind::Texture => "texture",
                GemmKind::TextureSubgroup => "texsubgroup",
            },
            self.rows,
            self.cols,
            self.workgroup,
            if self.fma { "fma" } else { "mad" }
        )
    }
}

/// What the kernel does with each output after the reduction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Epilogue {
    /// Store `C` as is.
    Plain,
    /// Store `Y = act(C + bias)`, and `Z = C + bias` as well when `save_z`.
    BiasActivation {
        /// The activation.
        act: Activation,
        /// Also write the pre-activation.
        save_z: bool,
    },
}

/// Uniform parameters of every GEMM kernel: `C[m, n] = Σ_k A[m, k]·B[n, k]`
/// with row strides `lda`, `ldb`, `ldc` (in floats).
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GemmParams {
    /// Rows of C.
    pub m: u32,
    /// Columns of C.
    pub n: u32,
    /// Reduction length.
    pub k: u32,
    /// Row stride of A.
    pub lda: u32,
    /// Row stride of B.
    pub ldb: u32,
    /// Row stride of C.
    pub ldc: u32,
    /// First row of C this dispatch covers (dispatches are split past the
    /// per-dimension workgroup limit).
    pub row_offset: u32,
    /// Unused.
    pub pad: u32,
}

fn mad(fma: bool, a: &str, b: &str, acc: &str) -> String {
    if fma {
        format!("{acc} = fma({a}, {b}, {acc});")
    } else {
        format!("{acc} = {a} * {b} + {acc};")
    }
}

/// Generates the WGSL of one GEMM kernel (entry point `gemm`):
/// `C[m, n] = Σ_k A[m, k]·B[n, k]`, both operands k-contiguous (the layout
/// of `X·Wᵀ`; the backward GEMMs reach it through transposes, or, where the
/// texture kinds run, through `gpu::gemm_kn`'s kernels instead). The
/// texture kinds read A and B from `rgba32float` textures with texel
/// `(t, r)` holding `[r, 4t..4t + 4]` (zero past k).
pub fn generate(variant: GemmVariant, epilogue: Epilogue) -> String {
    let GemmVariant {
        kind,
        rows,
        cols,
        workgroup,
        fma,
    } = variant;
    let mut s = String::new();
    if let Epilogue::BiasActivation { act, .. } = epilogue {
        s.push_str(shader::ACTIVATIONS_WGSL);
        s.push('\n');
        s.push_str(&shader::activation_binding(act));
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "// GEMM {} variant {}, generated by src/gpu/gemm.rs.",
        match epilogue {
            Epilogue::Plain => "plain".to_string(),
            Epilogue::BiasActivation { act, save_z } =>
                format!("+ bias + {act}{}", if save_z { " (keeps Z)" } else { "" }),
        },
        variant.name(),
    );
    let elem = if kind == GemmKind::Scalar {
        "f32"
    } else {
        "vec4<f32>"
    };
    let textures = kind.uses_textures();
    let operand = if textures {
        "texture_storage_2d<rgba32float, read>".to_string()
    } else {
        format!("array<{elem}>")
    };
    let space = if textures { "" } else { "<storage, read>" };
    let _ = writeln!(
        s,
        "struct GemmParams {{ m: u32, n: u32, k: u32, lda: u32, ldb: u32, ldc: u32, row_offset: u32, pad: u32, }}\n\
         @group(0) @binding(0) var<storage, read> p: GemmParams;\n\
         @group(0) @binding(1) var{space} a: {operand};\n\
         @group(0) @binding(2) var{space} b: {operand};\n\
         @group(0) @binding(4) var<storage, read_write> y: array<f32>;"
    );
    if let Epilogue::BiasActivation { save_z, .. } = epilogue {
        s.push_str("@group(0) @binding(3) var<storage, read> bias: array<f32>;\n");
        if save_z {
            s.push_str("@group(0) @binding(5) var<storage, read_write> z: array<f32>;\n");
        }
    }
    let sid = if kind.uses_subgroups() {
        ", @builtin(subgroup_invocation_id) sid: u32"
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "\n@compute @workgroup_size({workgroup})\n\
         fn gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>{sid}) {{"
    );
    // Output coordinates. Indices past the edge are clamped to the last
    // row/column so every load stays in bounds; their stores are skipped.
    let _ = writeln!(
        s,
        "    let row_base = p.row_offset + wid.y * {}u;",
        variant.tile_rows()
    );
    let _ = writeln!(s, "    let col_base = wid.x * {}u;", variant.tile_cols());
    let row_of = |i: u32| {
        if kind.grid() {
            format!("row_base + lid.x / 8u + {}u", 8 * i)
        } else {
            format!("row_base + {i}u")
        }
    };
    let col_of = |j: u32| {
        if kind.grid() {
            format!("col_base + lid.x % 8u + {}u", 8 * j)
        } else {
            format!("col_base + lid.x + {}u", j * workgroup)
        }
    };
    // The offset of a row with stride `ld`; texture kinds index texels by
    // (k / 4, row): a row index, not an offset.
    let stride = |ld: &str| match kind {
        GemmKind::Scalar => format!(" * p.{ld}"),
        _ if textures => String::new(),
        _ => format!(" * (p.{ld} / 4u)"),
    };
    let (stride_a, stride_b) = (stride("lda"), stride("ldb"));
    for i in 0..rows {
        let _ = writeln!(s, "    let row{i} = {};", row_of(i));
        if !kind.uses_subgroups() {
            let _ = writeln!(s, "    let ra{i} = min(row{i}, p.m - 1u){stride_a};");
        }
    }
    for j in 0..cols {
        let _ = writeln!(s, "    let col{j} = {};", col_of(j));
        let _ = writeln!(s, "    let cb{j} = min(col{j}, p.n - 1u){stride_b};");
    }
    let shared_loads = rows.div_ceil(8);
    if kind.uses_subgroups() {
        // Invocation sid % 8 of each subgroup loads row 8q + sid % 8 for
        // every q; broadcasts then give each invocation all the rows.
        for q in 0..shared_loads {
            let _ = writeln!(
                s,
                "    let rs{q} = min(row_base + sid % 8u + {}u, p.m - 1u){stride_a};",
                8 * q
            );
        }
    }
    for i in 0..rows {
        for j in 0..cols {
            let _ = writeln!(s, "    var acc{i}_{j} = 0.0;");
        }
    }
    let comps = ["x", "y", "z", "w"];
    match kind {
        GemmKind::Scalar => {
            let step = |s: &mut String, k: &str| {
                for i in 0..rows {
                    let _ = writeln!(s, "        let a{i} = a[ra{i} + {k}];");
                }
                for j in 0..cols {
                    let _ = writeln!(s, "        let b{j} = b[cb{j} + {k}];");
                }
                for i in 0..rows {
                    for j in 0..cols {
                        let _ = writeln!(
                            s,
                            "        {}",
                            mad(
                                fma,
                                &format!("a{i}"),
                                &format!("b{j}"),
                                &format!("acc{i}_{j}")
                            )
                        );
                    }
                }
            };
            s.push_str("    var kk = 0u;\n    loop {\n        if (kk + 4u > p.k) { break; }\n");
            for u in 0..4 {
                s.push_str("        {\n");
                step(&mut s, &format!("kk + {u}u"));
                s.push_str("        }\n");
            }
            s.push_str(
                "        kk = kk + 4u;\n    }\n    loop {\n        if (kk >= p.k) { break; }\n",
            );
            step(&mut s, "kk");
            s.push_str("        kk = kk + 1u;\n    }\n");
        }
        _ => {
            let load = |m: &str, at: &str| {
                if textures {
                    format!("textureLoad({m}, vec2<u32>(kk, {at}))")
                } else {
                    format!("{m}[{at} + kk]")
                }
            };
            s.push_str("    let k4 = (p.k + 3u) / 4u;\n    var kk = 0u;\n    loop {\n        if (kk >= k4) { break; }\n");
            if kind.uses_subgroups() {
                for q in 0..shared_loads {
                    let _ = writeln!(s, "        let as{q} = {};", load("a", &format!("rs{q}")));
                }
                for i in 0..rows {
                    let _ = writeln!(
                        s,
                        "        let a{i} = subgroupBroadcast(as{}, {}u);",
                        i / 8,
                        i % 8
                    );
                }
            } else {
                for i in 0..rows {
                    let _ = writeln!(s, "        let a{i} = {};", load("a", &format!("ra{i}")));
                }
            }
            for j in 0..cols {
                let _ = writeln!(s, "        let b{j} = {};", load("b", &format!("cb{j}")));
            }
            for c in comps {
                for i in 0..rows {
                    for j in 0..cols {
                        let _ = writeln!(
                            s,
                            "        {}",
                            mad(
                                fma,
                                &format!("a{i}.{c}"),
                                &format!("b{j}.{c}"),
                                &format!("acc{i}_{j}")
                            )
                        );
                    }
                }
            }
            s.push_str("        kk = kk + 1u;\n    }\n");
        }
    }
    for i in 0..rows {
        for j in 0..cols {
            let _ = writeln!(s, "    if (row{i} < p.m && col{j} < p.n) {{");
            let idx = format!("row{i} * p.ldc + col{j}");
            match epilogue {
                Epilogue::Plain => {
                    let _ = writeln!(s, "        y[{idx}] = acc{i}_{j};");
                }
                Epilogue::BiasActivation { save_z, .. } => {
                    let _ = writeln!(s, "        let zz = acc{i}_{j} + bias[col{j}];");
                    if save_z {
                        let _ = writeln!(s, "        z[{idx}] = zz;");
                    }
                    let _ = writeln!(s, "        y[{idx}] = activation(zz);");
                }
            }
            s.push_str("    }\n");
        }
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_layout_and_epilogue_validates() {
        for v in GemmVariant::CANDIDATES {
            {
                for epilogue in [
                    Epilogue::Plain,
                    Epilogue::BiasActivation {
                        act: Activation::Gelu,
                        save_z: true,
                    },
                    Epilogue::BiasActivation {
                        act: Activation::Relu,
                        save_z: false,
                    },
                ] {
                    let src = generate(v, epilogue);
                    shader::validate(&v.name(), &src).unwrap_or_else(|e| panic!("{e}\n{src}"));
                }
            }
        }
    }
}
