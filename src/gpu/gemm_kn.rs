//! GEMM kernels whose B operand is `[k, n]` (row-major, read along n): the
//! two backward GEMMs of a linear layer, `dX = dz·W` and `dW = dzᵀ·X`, read
//! W, X and dz in the layout the forward and the activation step already
//! left in textures, so the backward needs no transposed operand at all.
//!
//! - [`KnForm::Ab`]: `C[m, n] = Σ_k A[m, k]·B[k, n]` (`dX = dz·W`): A's
//!   texels run along k (dz as written), B's along n (W as the forward reads
//!   it).
//! - [`KnForm::AtB`]: `C[m, n] = Σ_k A[k, m]·B[k, n]` (`dW = dzᵀ·X`): both
//!   operands' texels run along their output dimension (dz and X as
//!   written), so each k step is an outer product of a column of A and a row
//!   of B. It also writes A's column sums `Σ_k A[k, m]` (`db`), summed in
//!   order by the invocations that load A.
//!
//! Operands are `rgba32float` storage textures, texel `(t, r)` holding
//! elements `4t..4t + 4` of row `r`, zero past the row's end. As in the
//! k-contiguous texture kinds (`gpu::gemm`), the workgroup shares its rows:
//! each subgroup loads A once per step and hands it to its invocations by
//! `subgroupBroadcast`; invocation `j` owns `cols4` texels of output
//! columns, `4·cols4` columns in all, for every row of the workgroup.

use std::fmt::Write;

use super::shader;
use crate::activation::Activation;

/// Which operand layout a [`KnVariant`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum KnForm {
    /// `C = A·B`: A `[m, k]` with texels along k.
    Ab,
    /// `C = Aᵀ·B`: A `[k, m]` with texels along m.
    AtB,
}

/// One kernel of the k-by-n family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct KnVariant {
    /// The operand layout.
    pub form: KnForm,
    /// Output rows per workgroup (a multiple of 4, at most 32).
    pub rows: u32,
    /// Texels of output columns per invocation.
    pub cols4: u32,
    /// Invocations per workgroup (a multiple of 8).
    pub workgroup: u32,
}

impl KnVariant {
    /// The variant for a GEMM with `n` output columns: 16 rows by 1 texel
    /// an invocation for `Ab`, 32 by 1 for `AtB`, and a workgroup no wider
    /// than the output (8 to 64 invocations). Measured on lavapipe at 256³,
    /// each kernel alone, best of 7 rounds taking turns, GFLOP/s with the
    /// adapter's peak at about 82: `Ab` 16 × 1 55.7, 32 × 1 54.8, 12 × 1 54.4,
    /// 8 × 1 53.8, 16 × 2 44.4, 32 × 2 26.6; `AtB` 32 × 2 52.3 (49.3 in a
    /// slower run, where 16 × 2 read 43.8), 32 × 1 47.6, 16 × 2 47.7, 8 × 2
    /// 38.4, 8 × 1 33.4. 32 × 2 is not used: its 64 vec4 accumulators took
    /// lavapipe seconds to compile with its shader cache empty.
    pub fn for_columns(form: KnForm, n: usize) -> Self {
        let (rows, cols4) = match form {
            KnForm::Ab => (16, 1),
            KnForm::AtB => (32, 1),
        };
        let texels = n.div_ceil(4).div_ceil(cols4 as usize).clamp(8, 64);
        KnVariant {
            form,
            rows,
            cols4,
            workgroup: texels.next_power_of_two().min(64) as u32,
        }
    }

    /// Output rows covered by one workgroup.
    pub fn tile_rows(&self) -> u32 {
        self.rows
    }

    /// Output columns covered by one workgroup.
    pub fn tile_cols(&self) -> u32 {
        4 * self.cols4 * self.workgroup
    }

    /// A name like `ab_r16c1w64`.
    pub fn name(&self) -> String {
        format!(
            "{}_r{}c{}w{}",
            match self.form {
                KnForm::Ab => "ab",
                KnForm::AtB => "atb",
            },
            self.rows,
            self.cols4,
            self.workgroup
        )
    }
}

const COMPS: [&str; 4] = ["x", "y", "z", "w"];

/// Generates the WGSL of one kernel (entry point `gemm`, bindings as the
/// k-contiguous GEMMs: 0 `GemmParams`, 1 A, 2 B, 4 C with row stride `ldc`;
/// `AtB` also 3, A's column sums).
///
/// With `dz_of` (the layer below's activation; `Ab` only), the kernel stores instead
/// the layer below's `dz = flush_subnormal(C ⊙ f'(saved))` (as
/// `shaders/linear_backward.wgsl`'s `dz_at`, bit for bit) into the packed
/// texture at binding 6, zero past n, reading `saved` (row stride `ldc`) at
/// binding 5: dX never goes through memory.
pub(crate) fn generate(v: KnVariant, dz_of: Option<Activation>) -> String {
    let KnVariant {
        form,
        rows,
        cols4,
        workgroup,
    } = v;
    assert!(rows.is_multiple_of(4) && (4..=32).contains(&rows));
    assert!(dz_of.is_none() || form == KnForm::Ab, "only dX leaves a dz");
    let mut s = String::new();
    let out = match dz_of {
        None if form == KnForm::AtB => {
            "@group(0) @binding(4) var<storage, read_write> y: array<f32>;\n\
             // A's column sums, Σ_k A[k, m].\n\
             @group(0) @binding(3) var<storage, read_write> col_sums: array<f32>;"
                .to_string()
        }
        None => "@group(0) @binding(4) var<storage, read_write> y: array<f32>;".to_string(),
        Some(act) => format!(
            "// The layer below's dz for `{act}`.\n\
             @group(0) @binding(5) var<storage, read> saved: array<f32>;\n\
             @group(0) @binding(6) var dz_out: texture_storage_2d<rgba32float, write>;"
        ),
    };
    let _ = writeln!(
        s,
        "// GEMM with a [k, n] B operand, variant {}, generated by src/gpu/gemm_kn.rs.\n\
         struct GemmParams {{ m: u32, n: u32, k: u32, lda: u32, ldb: u32, ldc: u32, row_offset: u32, pad: u32, }}\n\
         @group(0) @binding(0) var<storage, read> p: GemmParams;\n\
         @group(0) @binding(1) var a: texture_storage_2d<rgba32float, read>;\n\
         @group(0) @binding(2) var b: texture_storage_2d<rgba32float, read>;\n\
         {out}\n\
         \n\
         @compute @workgroup_size({workgroup})\n\
         fn gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(subgroup_invocation_id) sid: u32) {{",
        v.name()
    );
    let _ = writeln!(s, "    let row_base = p.row_offset + wid.y * {rows}u;");
    let _ = writeln!(s, "    let nt = (p.n + 3u) / 4u;");
    for c in 0..cols4 {
        let _ = writeln!(
            s,
            "    let ct{c} = wid.x * {}u + lid.x + {}u;\n    let cb{c} = min(ct{c}, nt - 1u);",
            cols4 * workgroup,
            c * workgroup
        );
    }
    for r in 0..rows {
        for c in 0..cols4 {
            let _ = writeln!(s, "    var acc{r}_{c} = vec4<f32>(0.0);");
        }
    }
    let fma = |s: &mut String, a: &str, b: &str, acc: &str| {
        let _ = writeln!(s, "        {acc} = fma({a}, {b}, {acc});");
    };
    match form {
        KnForm::AtB => {
            // One k a step: invocation sid % 8 loads texel sid % 8 of the
            // workgroup's rows (4 rows each) in A's row k.
            // Each invocation also sums the texel it loads over k: A's
            // column sums, in order (dz's, the bias gradient).
            let _ = writeln!(
                s,
                "    let ra = min(row_base / 4u + sid % 8u, (p.m + 3u) / 4u - 1u);\n    \
                 var col_sum = vec4<f32>(0.0);\n    \
                 var kk = 0u;\n    loop {{\n        if (kk >= p.k) {{ break; }}\n        \
                 let as0 = textureLoad(a, vec2<u32>(ra, kk));\n        \
                 col_sum = col_sum + as0;"
            );
            for t in 0..rows / 4 {
                let _ = writeln!(s, "        let a{t} = subgroupBroadcast(as0, {t}u);");
            }
            for c in 0..cols4 {
                let _ = writeln!(
                    s,
                    "        let b{c} = textureLoad(b, vec2<u32>(cb{c}, kk));"
                );
            }
            for r in 0..rows {
                for c in 0..cols4 {
                    fma(
                        &mut s,
                        &format!("vec4<f32>(a{}.{})", r / 4, COMPS[(r % 4) as usize]),
                        &format!("b{c}"),
                        &format!("acc{r}_{c}"),
                    );
                }
            }
            s.push_str("        kk = kk + 1u;\n    }\n");
            let _ = writeln!(
                s,
                "    // The workgroup's rows of A's column sums, from its first column\n    \
                 // group: invocation sid < 8 of each subgroup stores the texel it\n    \
                 // loaded (subgroups store the same values, whatever the adapter's\n    \
                 // subgroup size and numbering).\n    \
                 if (wid.x == 0u && sid < {}u && row_base / 4u + sid < (p.m + 3u) / 4u) {{\n        \
                 for (var e = 0u; e < 4u; e = e + 1u) {{\n            \
                 let m = (row_base / 4u + sid) * 4u + e;\n            \
                 if (m < p.m) {{ col_sums[m] = col_sum[e]; }}\n        \
                 }}\n    }}",
                rows / 4
            );
        }
        KnForm::Ab => {
            // Four k a step: invocation sid % 8 loads A's rows 8q + sid % 8
            // (one texel: 4 k each), B's 4 rows k..k + 4 are loaded by all.
            for q in 0..rows.div_ceil(8) {
                let _ = writeln!(
                    s,
                    "    let ra{q} = min(row_base + sid % 8u + {}u, p.m - 1u);",
                    8 * q
                );
            }
            // Past k, A's texels hold zeros and B's rows are clamped to row
            // k - 1: their products are zeros (NaN only where row k - 1 holds
            // an infinity or a NaN, which the true sum then holds as well).
            s.push_str(
                "    let k4 = (p.k + 3u) / 4u;\n    var kk = 0u;\n    loop {\n        if (kk >= k4) { break; }\n",
            );
            for q in 0..rows.div_ceil(8) {
                let _ = writeln!(
                    s,
                    "        let as{q} = textureLoad(a, vec2<u32>(kk, ra{q}));"
                );
            }
            for r in 0..rows {
                let _ = writeln!(
                    s,
                    "        let a{r} = subgroupBroadcast(as{}, {}u);",
                    r / 8,
                    r % 8
                );
            }
            for kq in 0..4 {
                let _ = writeln!(s, "        let kb{kq} = min(4u * kk + {kq}u, p.k - 1u);");
                for c in 0..cols4 {
                    let _ = writeln!(
                        s,
                        "        let b{kq}_{c} = textureLoad(b, vec2<u32>(cb{c}, kb{kq}));"
                    );
                }
            }
            for (kq, comp) in COMPS.iter().enumerate() {
                for r in 0..rows {
                    for c in 0..cols4 {
                        fma(
                            &mut s,
                            &format!("vec4<f32>(a{r}.{comp})"),
                            &format!("b{kq}_{c}"),
                            &format!("acc{r}_{c}"),
                        );
                    }
                }
            }
            s.push_str("        kk = kk + 1u;\n    }\n");
        }
    }
    if let Some(act) = dz_of {
        dz_epilogue(&mut s, v, act);
    } else {
        // Scalar stores: C's rows need not be 16-byte aligned.
        for r in 0..rows {
            for c in 0..cols4 {
                let _ = writeln!(
                    s,
                    "    if (row_base + {r}u < p.m && ct{c} < nt) {{\n        \
                     let at = (row_base + {r}u) * p.ldc + 4u * ct{c};"
                );
                for (i, comp) in COMPS.iter().enumerate() {
                    let _ = writeln!(
                        s,
                        "        if (4u * ct{c} + {i}u < p.n) {{ y[at + {i}u] = acc{r}_{c}.{comp}; }}"
                    );
                }
                s.push_str("    }\n");
            }
        }
    }
    s.push_str("}\n");
    // The dz epilogue's f' comes from the activation library.
    shader::assemble(&s, dz_of)
}

/// The layer below's dz from the accumulators, as a loop over them
/// gathered in an array: `f'` (for `act`) and the store written out once,
/// not once per accumulator, which keeps the kernel quick to compile (a
/// GELU derivative per accumulator took lavapipe seconds).
fn dz_epilogue(s: &mut String, v: KnVariant, act: Activation) {
    let KnVariant {
        rows,
        cols4,
        workgroup,
        ..
    } = v;
    let accs: Vec<String> = (0..rows)
        .flat_map(|r| (0..cols4).map(move |c| format!("acc{r}_{c}")))
        .collect();
    let _ = writeln!(
        s,
        "    // dz for `{act}`.\n    \
         let outs = array<vec4<f32>, {}>({});\n    \
         for (var r = 0u; r < {rows}u; r = r + 1u) {{\n        \
         let row = row_base + r;\n        \
         if (row >= p.m) {{ break; }}\n        \
         for (var c = 0u; c < {cols4}u; c = c + 1u) {{\n            \
         let ct = wid.x * {}u + lid.x + c * {workgroup}u;\n            \
         if (ct >= nt) {{ break; }}\n            \
         let v = outs[r * {cols4}u + c];\n            \
         let at = row * p.ldc + 4u * ct;\n            \
         var d = vec4<f32>(0.0);",
        accs.len(),
        accs.join(", "),
        cols4 * workgroup
    );
    // Components past n stay zero, as the GEMMs that read dz need.
    for (i, comp) in COMPS.iter().enumerate() {
        let _ = writeln!(
            s,
            "            if (4u * ct + {i}u < p.n) {{ d.{comp} = flush_subnormal(v.{comp} * derivative_from_saved(saved[at + {i}u])); }}"
        );
    }
    s.push_str("            textureStore(dz_out, vec2<u32>(ct, row), d);\n        }\n    }\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_and_width_validates() {
        for form in [KnForm::Ab, KnForm::AtB] {
            for n in [1, 17, 64, 256, 1000] {
                for rows in [4, 12, 16, 32] {
                    let v = KnVariant {
                        rows,
                        ..KnVariant::for_columns(form, n)
                    };
                    let dz_ofs = match form {
                        KnForm::Ab => vec![None, Some(Activation::Gelu), Some(Activation::Relu)],
                        KnForm::AtB => vec![None],
                    };
                    for dz_of in dz_ofs {
                        let src = generate(v, dz_of);
                        shader::validate(&v.name(), &src).unwrap_or_else(|e| panic!("{e}\n{src}"));
                    }
                }
            }
        }
    }
}
