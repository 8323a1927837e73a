//! The subgroup design of the fully fused MLP: the same three kernels as
//! `shaders/fused_mlp_lanes.wgsl` (forward, backward of the activations,
//! and the grouped weight gradients), generated for one hidden width and
//! subgroup size, that keep a block's rows in registers from layer to
//! layer and hand them between invocations with subgroup shuffles.
//!
//! Why: on llvmpipe every storage-buffer or workgroup-memory load is a
//! loop over the 8 SIMD lanes whatever its address (about 250 cycles a
//! vec4 on this host), while a shuffle stays in registers; the
//! workgroup-memory design loads about one float per 1.3 multiply-adds.
//! SwiftShader (subgroups of 4, natively and as Chromium's WebGPU adapter)
//! gains too: 1.3-1.9x on the main job's step, as its barriers and
//! workgroup memory are slow.
//! Here a workgroup is one subgroup of `S` invocations that owns `ROWS`
//! batch rows; invocation `lane` owns the vec4 column groups `lane + S·c`
//! (`c < CPL`) of every row, so a layer's output is spread over the
//! subgroup's registers, and the next layer reads input group `g` of row
//! `r` as a shuffle from lane `g % S`. Per 4 inputs an invocation loads
//! `4·CPL` weight vec4s and does `16·ROWS·CPL` multiply-adds (8 per float
//! loaded). No workgroup memory, no barrier.
//!
//! Both passes read each layer's weights as rows of vec4s along the
//! input: where the input and hidden widths are multiples of 4 ("aligned")
//! from an rgba32float texture the forward copies the weights into (a
//! buffer-to-texture copy, no layout pass: measured on llvmpipe, a texel
//! load costs about a tenth of a storage-buffer load, and the main job's
//! stack forward and backward went from 6.4 to 4.5 ms); otherwise from a
//! row-padded storage copy `pack_rows` makes first.
//!
//! Compile time matters as much as speed here (every trainer compiles its
//! width's kernels on its first step), so, measured on llvmpipe for the
//! main job's stack: the loops over input groups run over the `S` source
//! lanes with a shuffle, not unrolled with broadcasts (same speed, a
//! quarter less compile time); a layer's epilogue applies the activation
//! in a loop over the registers copied to a private array, not once per
//! register (compile time halved); the rows per workgroup are capped at
//! 16 accumulators per invocation (32 ran 1.1x faster and took 3x longer
//! to compile); the forward runs every layer in one loop, so that its
//! epilogue is written out once (a copy for the first layer more than
//! doubled its compile time); a weight-gradient tile takes 32 outputs on a
//! GPU (16 took llvmpipe 1.14x longer) and 64 on SwiftShader (see
//! [`SMALL_SUBGROUP_CPU_GRAD_OB`]).
//!
//! The weight gradients are one dispatch over every layer's tiles: a
//! workgroup owns `4·OB` output rows and `4·S` input columns of one
//! layer's dW, each invocation one vec4 of columns; per batch row it loads
//! that vec4 of the layer's input and, lane `lane`, the vec4s of dz of
//! output groups `lane`, `lane + S`, ... below `OB`, broadcast to the
//! others. Every sum runs over rows, or inputs, in order:
//! runs are bit-identical. CPU twin: [`crate::reference::fused_mlp`].

use std::fmt::Write;

/// Texels per row of the weight texture the aligned kernels read.
pub(crate) const WEIGHT_TEXTURE_WIDTH: u32 = 1024;

/// The storage buffers a gathering forward binds beyond a plain one's
/// (the permutation, the step state, the labels, the gathered rows and
/// labels); a plain forward binds at most 9, and a device must allow
/// `9 + GATHER_BINDINGS` a stage for the forward to gather.
pub(crate) const GATHER_BINDINGS: u32 = 5;

/// The vec4 groups of output rows a weight-gradient tile takes on a GPU:
/// 32 outputs, 128 accumulator floats an invocation (more would spill out
/// of a GPU's registers).
const GRAD_OB: u32 = 8;
/// The same on a CPU driver with subgroups of 4 (SwiftShader, natively and
/// as Chromium's WebGPU adapter), whose accumulators live in the L1 cache
/// whatever their number: 64 outputs, each row's input vec4 then feeding
/// twice the multiply-adds. Against 32, three rounds taking turns (`bench
/// --train`, the main job's step): 7.3, 8.4, 8.3 -> 6.7, 6.9, 6.8 ms.
/// lavapipe (subgroups of 8) keeps 32: 64 ran its step 1.1x faster
/// (2.35, 2.23, 1.99 -> 2.08, 1.98, 1.77 ms) but took it about 2.5 s more
/// to compile with its shader cache empty (a first step of 12.4 s against
/// 10.1), and every test compiles dozens of these kernels.
const SMALL_SUBGROUP_CPU_GRAD_OB: u32 = 16;
/// The most vec4 accumulators per invocation (more rows per workgroup
/// load the weights fewer times, but compile slower).
const MAX_ACCUMULATORS: u32 = 16;

/// How the subgroup kernels split a stack over a subgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SgLayout {
    /// Invocations per workgroup: the adapter's smallest subgroup size.
    pub s: u32,
    /// Hidden units.
    pub width: u32,
    /// vec4 column groups an invocation owns per row.
    pub cpl: u32,
    /// Batch rows per forward and backward workgroup.
    pub rows: u32,
    /// vec4 column groups with real columns: width / 4, rounded up.
    pub ncg: u32,
    /// Whether the input and hidden widths are multiples of 4, so the
    /// kernels read weights, inputs and gradients as vec4s where they lie
    /// (no weight layout pass).
    pub aligned: bool,
    /// The vec4 groups of outputs a weight-gradient tile takes.
    pub grad_ob: u32,
}

impl SgLayout {
    /// The layout for `width` hidden units on `input` features, on
    /// subgroups of `s` invocations of a GPU or (`cpu`) a CPU driver.
    pub fn new(input: usize, width: usize, s: u32, cpu: bool) -> Self {
        let ncg = (width as u32).div_ceil(4).max(1);
        let cpl = ncg.div_ceil(s);
        let rows = (MAX_ACCUMULATORS / cpl).clamp(1, 2 * s);
        SgLayout {
            s,
            width: width as u32,
            cpl,
            rows,
            ncg,
            aligned: input.is_multiple_of(4) && width.is_multiple_of(4),
            grad_ob: if cpu && s < 8 {
                SMALL_SUBGROUP_CPU_GRAD_OB
            } else {
                GRAD_OB
            },
        }
    }

    /// The input groups register slot `slot` holds across the subgroup:
    /// `S`, fewer in the last slot.
    fn groups_in(&self, slot: u32) -> u32 {
        self.s.min(self.ncg - slot * self.s)
    }

    /// Invocations' vec4s of input rows loaded for the first layer.
    fn rq(&self) -> u32 {
        self.rows.div_ceil(self.s)
    }

    /// The vec4s of a weight-gradient tile's dz each invocation loads a
    /// row (the tile's output groups over the subgroup).
    fn grad_dz(&self) -> u32 {
        self.grad_ob.div_ceil(self.s)
    }

    /// WGSL for the output group lane `lane` loads into `dv{d}`.
    fn lane_plus(&self, d: u32) -> String {
        match d {
            0 => "lane".into(),
            _ => format!("lane + {}u", d * self.s),
        }
    }

    /// vec4s of the row-padded copy of the weights the unaligned kernels
    /// read (each layer `[width, pad4(in_l) / 4]`); 0 when aligned.
    pub fn padded_len(&self, input: usize, layers: usize) -> usize {
        if self.aligned {
            return 0;
        }
        let w = self.width as usize;
        w * (input.div_ceil(4) + layers.saturating_sub(1) * w.div_ceil(4))
    }
}

const E: [char; 4] = ['x', 'y', 'z', 'w'];

fn line(s: &mut String, indent: usize, text: &str) {
    let _ = writeln!(s, "{:indent$}{text}", "");
}

/// Declares `names` accumulators, one vec4 per (row, column group).
fn declare(s: &mut String, l: &SgLayout, names: &[&str]) {
    for n in names {
        for r in 0..l.rows {
            for c in 0..l.cpl {
                line(s, 4, &format!("var {n}{r}_{c} = vec4<f32>(0.0);"));
            }
        }
    }
}

fn zero(s: &mut String, l: &SgLayout, indent: usize) {
    for r in 0..l.rows {
        for c in 0..l.cpl {
            line(s, indent, &format!("a{r}_{c} = vec4<f32>(0.0);"));
        }
    }
}

/// Forward multiply-adds of 4 inputs: `h{r}` (the inputs of row r) dotted
/// with `w{c}_{e}` (the same 4 inputs' weights of output 4g + e), in order.
fn forward_fmas(s: &mut String, l: &SgLayout, indent: usize) {
    for r in 0..l.rows {
        for c in 0..l.cpl {
            for k in E {
                line(
                    s,
                    indent,
                    &format!(
                        "a{r}_{c} = fma(vec4<f32>(h{r}.{k}), vec4<f32>(w{c}_0.{k}, w{c}_1.{k}, w{c}_2.{k}, w{c}_3.{k}), a{r}_{c});"
                    ),
                );
            }
        }
    }
}

/// The forward and backward kernels (and, unaligned, the pass that pads
/// the weight rows) for `layout`, to follow the prelude and
/// `shaders/fused_mlp.wgsl`. With `gathered`, the forward gathers its
/// batch from the resident training split as it reads it (see
/// [`GATHER_BINDINGS`]) instead of reading a batch gathered before.
pub(crate) fn kernels(l: &SgLayout, gathered: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "const S: u32 = {}u;\nconst ROWS: u32 = {}u;\n",
        l.s, l.rows
    );
    if l.aligned {
        let _ = writeln!(
            s,
            "// Every layer's weight rows as vec4s: a texture the weights are copied\n\
             // into at the start of each forward, {WEIGHT_TEXTURE_WIDTH} texels a row. On llvmpipe\n\
             // a texel load costs about a tenth of a storage-buffer load.\n\
             @group(0) @binding(14) var wtex: texture_2d<f32>;\n\n\
             fn wload(i: u32) -> vec4<f32> {{\n\
             \x20   return textureLoad(wtex, vec2<u32>(i % {WEIGHT_TEXTURE_WIDTH}u, i / {WEIGHT_TEXTURE_WIDTH}u), 0);\n\
             }}\n"
        );
    } else {
        s.push_str(
            "// Every layer's weight rows as vec4s: the row-padded copy `pack_rows` makes.\n\
             @group(0) @binding(12) var<storage, read> wv: array<vec4<f32>>;\n\n\
             fn wload(i: u32) -> vec4<f32> {\n    return wv[i];\n}\n",
        );
    }
    if l.aligned {
        s.push_str(
            "// The net's input as vec4s (its width a multiple of 4).\n\
             @group(0) @binding(13) var<storage, read> x4: array<vec4<f32>>;\n\n\
             // Where layer l's rows start in wv, in vec4s.\n\
             fn w_start(l: u32) -> u32 {\n    return table[l].x / 4u;\n}\n\n",
        );
    } else {
        s.push_str(
            "fn w_start(l: u32) -> u32 {\n\
             \x20   if (l == 0u) {\n        return 0u;\n    }\n\
             \x20   return p.width * (p.in4 + (l - 1u) * p.w4);\n}\n\n\
             // The row-padded copy of the weights: layer l as [width, pad4(in_l) / 4]\n\
             // vec4s, zeros past in_l. One invocation per vec4.\n\
             @compute @workgroup_size(64)\n\
             fn pack_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {\n\
             \x20   let i = gid.x + gid.y * nwg.x * 64u;\n\
             \x20   if (i >= p.wt_len) {\n        return;\n    }\n\
             \x20   var l = 0u;\n    var local = i;\n    var fan_in = p.input;\n    var stride = p.in4;\n\
             \x20   let first = p.width * p.in4;\n\
             \x20   if (i >= first) {\n\
             \x20       l = 1u + (i - first) / (p.width * p.w4);\n\
             \x20       local = (i - first) % (p.width * p.w4);\n\
             \x20       fan_in = p.width;\n        stride = p.w4;\n    }\n\
             \x20   let o = local / stride;\n    let k = (local % stride) * 4u;\n\
             \x20   var v = vec4<f32>(0.0);\n\
             \x20   for (var e = 0u; e < 4u; e++) {\n\
             \x20       if (k + e < fan_in) {\n\
             \x20           v[e] = w[w_off(l) + o * fan_in + k + e];\n        }\n    }\n\
             \x20   wt[i] = v;\n}\n\n",
        );
    }

    if gathered {
        let elem = if l.aligned { "vec4<f32>" } else { "f32" };
        let _ = writeln!(
            s,
            "// The batch, gathered as the forward reads it: batch row r is row\n\
             // perm[offset + r] of the resident training split bound as the input\n\
             // (offset: word 5 of the step state the host writes before each step),\n\
             // clamped to the split's last row (word 6), which a ragged last chunk\n\
             // of an evaluation would read past.\n\
             // The forward writes the gathered rows and labels out for the kernels\n\
             // after it (the weight gradients read the rows, the output layer the\n\
             // labels).\n\
             @group(0) @binding(15) var<storage, read> perm: array<u32>;\n\
             @group(0) @binding(16) var<storage, read> step_words: array<u32>;\n\
             @group(0) @binding(17) var<storage, read> src_labels: array<f32>;\n\
             @group(0) @binding(18) var<storage, read_write> x_batch: array<{elem}>;\n\
             @group(0) @binding(19) var<storage, read_write> y_batch: array<f32>;\n\n\
             fn source_row(row: u32) -> u32 {{\n    return min(perm[step_words[5] + row], step_words[6]);\n}}\n"
        );
    } else {
        s.push_str("fn source_row(row: u32) -> u32 {\n    return row;\n}\n\n");
    }

    // Forward.
    s.push_str(
        "@compute @workgroup_size(S)\n\
         fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {\n\
         \x20   let row0 = wg.x * ROWS;\n\
         \x20   let width = p.width;\n",
    );
    declare(&mut s, l, &["a", "y"]);
    line(
        &mut s,
        4,
        "// The weight rows this invocation reads: its outputs, the last real one past the width.",
    );
    for c in 0..l.cpl {
        for (e, _) in E.iter().enumerate() {
            line(
                &mut s,
                4,
                &format!(
                    "let o{c}_{e} = min((lane + {}u) * 4u + {e}u, width - 1u);",
                    c * l.s
                ),
            );
        }
    }
    line(
        &mut s,
        4,
        "// The first layer reads the net's input: lane q loads rows q, q + S, ...",
    );
    line(&mut s, 4, "// and hands them to every lane.");
    for q in 0..l.rq() {
        line(
            &mut s,
            8,
            &format!(
                "let src{q} = source_row(min(row0 + {}u + lane, p.batch - 1u));",
                q * l.s
            ),
        );
    }
    if gathered {
        line(&mut s, 8, "// The labels of the rows this lane loads.");
        for q in 0..l.rq() {
            line(
                &mut s,
                8,
                &format!(
                    "if (row0 + {}u + lane < p.batch && {}u + lane < ROWS) {{",
                    q * l.s,
                    q * l.s
                ),
            );
            line(
                &mut s,
                12,
                &format!("y_batch[row0 + {}u + lane] = src_labels[src{q}];", q * l.s),
            );
            line(&mut s, 8, "}");
        }
    }
    // One loop over the layers, the first reading the net's input, so that
    // the epilogue is written out once: with a copy for the first layer,
    // lavapipe took 2.2-2.4x as long to compile the forward (its shader
    // cache empty: 7.8-8.1 s against 3.4-3.6 with the machine busy).
    line(&mut s, 4, "for (var l = 0u; l < p.layers; l++) {");
    line(&mut s, 8, "let start = w_start(l);");
    zero(&mut s, l, 8);
    line(&mut s, 8, "if (l == 0u) {");
    for c in 0..l.cpl {
        for e in 0..4 {
            line(
                &mut s,
                8,
                &format!("let r{c}_{e} = start + o{c}_{e} * p.in4;"),
            );
        }
    }
    line(&mut s, 8, "for (var k4 = 0u; k4 < p.in4; k4++) {");
    for q in 0..l.rq() {
        line(&mut s, 12, &format!("var xv{q} = vec4<f32>(0.0);"));
        line(&mut s, 12, "{");
        line(
            &mut s,
            16,
            &format!("let row = row0 + {}u + lane;", q * l.s),
        );
        line(&mut s, 16, "if (row < p.batch && row < row0 + ROWS) {");
        if l.aligned {
            line(&mut s, 20, &format!("xv{q} = x4[src{q} * p.in4 + k4];"));
            if gathered {
                line(&mut s, 20, &format!("x_batch[row * p.in4 + k4] = xv{q};"));
            }
        } else {
            line(&mut s, 20, "for (var e = 0u; e < 4u; e++) {");
            line(&mut s, 24, "if (k4 * 4u + e < p.input) {");
            line(
                &mut s,
                28,
                &format!("xv{q}[e] = x[src{q} * p.input + k4 * 4u + e];"),
            );
            if gathered {
                line(
                    &mut s,
                    28,
                    &format!("x_batch[row * p.input + k4 * 4u + e] = xv{q}[e];"),
                );
            }
            line(&mut s, 24, "}");
            line(&mut s, 20, "}");
        }
        line(&mut s, 16, "}");
        line(&mut s, 12, "}");
    }
    for c in 0..l.cpl {
        for e in 0..4 {
            line(&mut s, 12, &format!("let w{c}_{e} = wload(r{c}_{e} + k4);"));
        }
    }
    for r in 0..l.rows {
        line(
            &mut s,
            12,
            &format!("let h{r} = subgroupBroadcast(xv{}, {}u);", r / l.s, r % l.s),
        );
    }
    forward_fmas(&mut s, l, 12);
    line(&mut s, 8, "}");
    // A layer's epilogue: bias, activation, the stores, and the outputs
    // into the y registers (zero past the width).
    let epilogue = |s: &mut String, layer: &str, indent: usize| {
        // The registers go through a private array so that the activation
        // is written out once, in a loop, not once per register (which made
        // the kernels slow to compile).
        let n = l.rows * l.cpl;
        let i = indent + 4;
        line(s, indent, "{");
        line(s, i, &format!("var zb: array<vec4<f32>, {n}>;"));
        line(s, i, &format!("var bb: array<vec4<f32>, {}>;", l.cpl));
        for c in 0..l.cpl {
            line(s, i, "{");
            line(s, i + 4, &format!("let o = (lane + {}u) * 4u;", c * l.s));
            line(s, i + 4, "for (var e = 0u; e < 4u; e++) {");
            line(s, i + 8, "if (o + e < width) {");
            line(
                s,
                i + 12,
                &format!("bb[{c}][e] = bias[table[{layer}].y + o + e];"),
            );
            line(s, i + 8, "}");
            line(s, i + 4, "}");
            line(s, i, "}");
            for r in 0..l.rows {
                line(s, i, &format!("zb[{}] = a{r}_{c};", r * l.cpl + c));
            }
        }
        line(s, i, &format!("for (var k = 0u; k < {n}u; k++) {{"));
        let j = i + 4;
        line(s, j, &format!("let c = k % {}u;", l.cpl));
        line(s, j, &format!("let row = row0 + k / {}u;", l.cpl));
        line(s, j, "let o = (lane + c * S) * 4u;");
        line(s, j, "let zz = zb[k] + bb[c];");
        line(s, j, "var y = act4(zz);");
        line(s, j, "for (var e = 0u; e < 4u; e++) {");
        line(s, j + 4, "if (o + e < width && row < p.batch) {");
        line(s, j + 8, "let i = row * width + o + e;");
        line(s, j + 8, &format!("store_y({layer}, i, y[e]);"));
        line(s, j + 8, &format!("store_z({layer}, i, zz[e]);"));
        line(s, j + 8, &format!("if ({layer} + 1u == p.layers) {{"));
        line(s, j + 12, "io[i] = y[e];");
        line(s, j + 8, "}");
        line(s, j + 4, "} else {");
        line(s, j + 8, "y[e] = 0.0;");
        line(s, j + 4, "}");
        line(s, j, "}");
        line(s, j, "zb[k] = y;");
        line(s, i, "}");
        for r in 0..l.rows {
            for c in 0..l.cpl {
                line(s, i, &format!("y{r}_{c} = zb[{}];", r * l.cpl + c));
            }
        }
        line(s, indent, "}");
    };
    line(&mut s, 8, "} else {");
    for c in 0..l.cpl {
        for e in 0..4 {
            line(
                &mut s,
                8,
                &format!("let r{c}_{e} = start + o{c}_{e} * p.w4;"),
            );
        }
    }
    for slot in 0..l.cpl {
        line(
            &mut s,
            8,
            &format!("for (var src = 0u; src < {}u; src++) {{", l.groups_in(slot)),
        );
        line(&mut s, 12, &format!("let g = {}u + src;", slot * l.s));
        for c in 0..l.cpl {
            for e in 0..4 {
                line(&mut s, 12, &format!("let w{c}_{e} = wload(r{c}_{e} + g);"));
            }
        }
        for r in 0..l.rows {
            line(
                &mut s,
                12,
                &format!("let h{r} = subgroupShuffle(y{r}_{slot}, src);"),
            );
        }
        forward_fmas(&mut s, l, 12);
        line(&mut s, 8, "}");
    }
    line(&mut s, 8, "}");
    epilogue(&mut s, "l", 8);
    line(&mut s, 4, "}");
    s.push_str("}\n\n");

    // Backward.
    s.push_str(
        "// dz_l = dy_l * f'(saved_l), from the last layer to the first, with\n\
         // dy_{l-1} = dz_l . W_l (no gradient for the net's input).\n\
         @compute @workgroup_size(S)\n\
         fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {\n\
         \x20   let row0 = wg.x * ROWS;\n\
         \x20   let width = p.width;\n",
    );
    declare(&mut s, l, &["a", "d"]);
    line(
        &mut s,
        4,
        "// The input groups this invocation owns, the last real one past the width.",
    );
    for c in 0..l.cpl {
        line(
            &mut s,
            4,
            &format!("let kg{c} = min(lane + {}u, p.w4 - 1u);", c * l.s),
        );
    }
    line(
        &mut s,
        4,
        "// The last layer's gradient comes from the head.",
    );
    for c in 0..l.cpl {
        for r in 0..l.rows {
            line(&mut s, 4, "{");
            line(&mut s, 8, &format!("let o = (lane + {}u) * 4u;", c * l.s));
            line(&mut s, 8, &format!("let row = row0 + {r}u;"));
            line(&mut s, 8, "for (var e = 0u; e < 4u; e++) {");
            line(&mut s, 12, "if (o + e < width && row < p.batch) {");
            line(
                &mut s,
                16,
                &format!("a{r}_{c}[e] = io[row * width + o + e];"),
            );
            line(&mut s, 12, "}");
            line(&mut s, 8, "}");
            line(&mut s, 4, "}");
        }
    }
    s.push_str(
        "    var l = p.layers;\n    loop {\n        if (l == 0u) {\n            break;\n        }\n\
         \x20       l -= 1u;\n\
         \x20       // a holds dy_l: dz_l into the registers and global memory.\n",
    );
    for c in 0..l.cpl {
        for r in 0..l.rows {
            line(&mut s, 8, "{");
            line(&mut s, 12, &format!("let o = (lane + {}u) * 4u;", c * l.s));
            line(&mut s, 12, &format!("let row = row0 + {r}u;"));
            line(&mut s, 12, "var dv = vec4<f32>(0.0);");
            line(&mut s, 12, "for (var e = 0u; e < 4u; e++) {");
            line(&mut s, 16, "if (o + e < width && row < p.batch) {");
            line(&mut s, 20, "let i = row * width + o + e;");
            line(
                &mut s,
                20,
                &format!(
                    "dv[e] = flush_subnormal(a{r}_{c}[e] * derivative_from_saved(saved_at(l, i)));"
                ),
            );
            line(&mut s, 20, "dz[l * p.act_stride + i] = dv[e];");
            line(&mut s, 16, "}");
            line(&mut s, 12, "}");
            line(&mut s, 12, &format!("d{r}_{c} = dv;"));
            line(&mut s, 8, "}");
        }
    }
    line(&mut s, 8, "if (l == 0u) {");
    line(&mut s, 12, "break;");
    line(&mut s, 8, "}");
    line(
        &mut s,
        8,
        "// dy_{l-1}[r][k..k+3] = sum over o of dz_l[r][o] * W_l[o][k..k+3].",
    );
    line(&mut s, 8, "let start = w_start(l);");
    zero(&mut s, l, 8);
    for slot in 0..l.cpl {
        line(
            &mut s,
            8,
            &format!("for (var src = 0u; src < {}u; src++) {{", l.groups_in(slot)),
        );
        line(
            &mut s,
            12,
            &format!("let o = ({}u + src) * 4u;", slot * l.s),
        );
        // Rows o + e past the width do not exist: the last real one is read
        // and multiplied by a zero dz.
        for e in 0..4 {
            for c in 0..l.cpl {
                let row = if l.width.is_multiple_of(4) {
                    format!("o + {e}u")
                } else {
                    format!("min(o + {e}u, width - 1u)")
                };
                line(
                    &mut s,
                    12,
                    &format!("let w{c}_{e} = wload(start + ({row}) * p.w4 + kg{c});"),
                );
            }
        }
        for r in 0..l.rows {
            line(
                &mut s,
                12,
                &format!("let h{r} = subgroupShuffle(d{r}_{slot}, src);"),
            );
        }
        for (e, en) in E.iter().enumerate() {
            for r in 0..l.rows {
                for c in 0..l.cpl {
                    line(
                        &mut s,
                        12,
                        &format!("a{r}_{c} = fma(vec4<f32>(h{r}.{en}), w{c}_{e}, a{r}_{c});"),
                    );
                }
            }
        }
        line(&mut s, 8, "}");
    }
    s.push_str("    }\n}\n");
    s
}

/// What the weight-gradient kernel does with the gradients it makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GradsOut {
    /// Stores them in the gradient arena (binding 4).
    Store,
    /// Stores them and applies plain SGD to each weight and bias in the
    /// parameter arena (binding 7, with `shaders/sgd_fold.wgsl`'s
    /// bindings), flagging non-finite gradients, updated parameters and
    /// layer inputs as the optimizer's dispatch and the finite check would:
    /// the step then needs neither (aligned layouts only).
    StoreAndUpdate,
    /// Applies SGD as `StoreAndUpdate` does without storing the gradients
    /// (binding 4 unbound): on an unlogged step nothing reads them.
    Update,
}

impl GradsOut {
    /// Whether the gradients land in the gradient arena.
    pub(crate) fn stores(self) -> bool {
        self != GradsOut::Update
    }

    /// Whether the kernel applies SGD (and binds `shaders/sgd_fold.wgsl`'s).
    pub(crate) fn updates(self) -> bool {
        self != GradsOut::Store
    }
}

/// The weight-gradient kernel for `layout`, to follow the activation
/// prelude: the bindings of `shaders/fused_mlp_grads.wgsl` with its own
/// parameters, doing what `out` says with the gradients.
pub(crate) fn grads_kernel(l: &SgLayout, out: GradsOut) -> String {
    let update = out.updates();
    debug_assert!(l.aligned || !update, "the folded update needs vec4 rows");
    let ob = l.grad_ob;
    let elem = if l.aligned { "vec4<f32>" } else { "f32" };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "const S: u32 = {}u;\nconst OB: u32 = {ob}u;\n\n\
         struct SgGradParams {{\n\
         \x20   batch: u32,\n\
         \x20   input: u32,\n\
         \x20   width: u32,\n\
         \x20   layers: u32,\n\
         \x20   // Column tiles (4 S inputs each) of layer 0 and of the others,\n\
         \x20   // and row tiles (4 OB outputs each) of every layer.\n\
         \x20   k_tiles0: u32,\n\
         \x20   k_tiles: u32,\n\
         \x20   o_tiles: u32,\n\
         \x20   // Floats per layer in gdz (layer l at l * act_stride), gys0 and gys1.\n\
         \x20   act_stride: u32,\n\
         }}\n\n\
         @group(0) @binding(0) var<storage, read> gp: SgGradParams;\n\
         @group(0) @binding(1) var<storage, read> gx: array<{elem}>;\n\
         @group(0) @binding(2) var<storage, read> gys0: array<{elem}>;\n\
         @group(0) @binding(6) var<storage, read> gys1: array<{elem}>;\n\
         @group(0) @binding(3) var<storage, read> gdz: array<{elem}>;\n\
         @group(0) @binding(4) var<storage, read_write> grads: array<{elem}>;\n\
         @group(0) @binding(5) var<storage, read> table: array<vec4<u32>>;\n",
        l.s
    );
    if update {
        s.push_str("@group(0) @binding(7) var<storage, read_write> arena: array<vec4<f32>>;\n\n");
    }
    if l.aligned {
        // Every width a multiple of 4 and every layer's block aligned: whole
        // vec4s, clamped into the buffer and zeroed past the edge.
        s.push_str(
            "// Inputs k..k+3 of layer l at row r (zero past fan_in).\n\
             fn x4_at(l: u32, r: u32, k: u32, fan_in: u32) -> vec4<f32> {\n\
             \x20   let kk = min(k, fan_in - 4u);\n\
             \x20   var v: vec4<f32>;\n\
             \x20   if (l == 0u) {\n\
             \x20       v = gx[(r * fan_in + kk) / 4u];\n\
             \x20   } else {\n\
             \x20       let at = (((l - 1u) / 2u) * gp.act_stride + r * gp.width + kk) / 4u;\n\
             \x20       if ((l - 1u) % 2u == 0u) {\n\
             \x20           v = gys0[at];\n\
             \x20       } else {\n\
             \x20           v = gys1[at];\n\
             \x20       }\n\
             \x20   }\n\
             \x20   return select(vec4<f32>(0.0), v, k < fan_in);\n\
             }\n\n\
             // dz of outputs o..o+3 of layer l at row r (zero past the width).\n\
             fn dz4_at(l: u32, r: u32, o: u32) -> vec4<f32> {\n\
             \x20   let oo = min(o, gp.width - 4u);\n\
             \x20   let v = gdz[(l * gp.act_stride + r * gp.width + oo) / 4u];\n\
             \x20   return select(vec4<f32>(0.0), v, o < gp.width);\n\
             }\n\n",
        );
    } else {
        s.push_str(
            "fn x_at(l: u32, r: u32, k: u32, fan_in: u32) -> f32 {\n\
             \x20   if (k >= fan_in) {\n        return 0.0;\n    }\n\
             \x20   if (l == 0u) {\n        return gx[r * fan_in + k];\n    }\n\
             \x20   let at = ((l - 1u) / 2u) * gp.act_stride + r * gp.width + k;\n\
             \x20   if ((l - 1u) % 2u == 0u) {\n        return gys0[at];\n    }\n\
             \x20   return gys1[at];\n}\n\n\
             fn x4_at(l: u32, r: u32, k: u32, fan_in: u32) -> vec4<f32> {\n\
             \x20   return vec4<f32>(x_at(l, r, k, fan_in), x_at(l, r, k + 1u, fan_in), x_at(l, r, k + 2u, fan_in), x_at(l, r, k + 3u, fan_in));\n}\n\n\
             fn dz4_at(l: u32, r: u32, o: u32) -> vec4<f32> {\n\
             \x20   var v = vec4<f32>(0.0);\n\
             \x20   for (var e = 0u; e < 4u; e++) {\n\
             \x20       if (o + e < gp.width) {\n\
             \x20           v[e] = gdz[l * gp.act_stride + r * gp.width + o + e];\n        }\n    }\n\
             \x20   return v;\n}\n\n",
        );
    }
    s.push_str(
        "@compute @workgroup_size(S)\n\
         fn weight_grads(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {\n\
         \x20   let width = gp.width;\n\
         \x20   var i = wg.x + wg.y * nwg.x;\n\
         \x20   var l = 0u;\n\
         \x20   var k_tiles = gp.k_tiles0;\n\
         \x20   var fan_in = gp.input;\n\
         \x20   let first = gp.o_tiles * gp.k_tiles0;\n\
         \x20   if (i >= first) {\n\
         \x20       let per = gp.o_tiles * gp.k_tiles;\n\
         \x20       l = 1u + (i - first) / per;\n\
         \x20       i = (i - first) % per;\n\
         \x20       k_tiles = gp.k_tiles;\n\
         \x20       fan_in = width;\n\
         \x20   }\n\
         \x20   if (l >= gp.layers) {\n\
         \x20       return;\n\
         \x20   }\n\
         \x20   let k_tile = i % k_tiles;\n\
         \x20   let o0 = (i / k_tiles) * 4u * OB;\n\
         \x20   let k = (k_tile * S + lane) * 4u;\n\
         \x20   // The tile's dz: lane `lane` loads output group `lane + S d` into\n\
         \x20   // dv{d} (a clamped duplicate past OB).\n",
    );
    for d in 0..l.grad_dz() {
        line(
            &mut s,
            4,
            &format!("let my_o{d} = o0 + min({}, OB - 1u) * 4u;", l.lane_plus(d)),
        );
        line(&mut s, 4, &format!("var db{d} = vec4<f32>(0.0);"));
    }
    for o in 0..4 * ob {
        line(&mut s, 4, &format!("var a{o} = vec4<f32>(0.0);"));
    }
    if update {
        // Whether any input this invocation read is not finite.
        line(&mut s, 4, "var seen = false;");
    }
    line(&mut s, 4, "for (var r = 0u; r < gp.batch; r++) {");
    for d in 0..l.grad_dz() {
        line(&mut s, 8, &format!("let dv{d} = dz4_at(l, r, my_o{d});"));
        line(&mut s, 8, &format!("db{d} += dv{d};"));
    }
    line(&mut s, 8, "let xv = x4_at(l, r, k, fan_in);");
    if update {
        line(&mut s, 8, "seen = seen | nonfinite4(xv);");
    }
    for b in 0..ob {
        line(
            &mut s,
            8,
            &format!("let g{b} = subgroupBroadcast(dv{}, {}u);", b / l.s, b % l.s),
        );
        for (j, e) in E.iter().enumerate() {
            let o = b * 4 + j as u32;
            line(
                &mut s,
                8,
                &format!("a{o} = fma(vec4<f32>(g{b}.{e}), xv, a{o});"),
            );
        }
    }
    s.push_str("    }\n");
    if update {
        line(&mut s, 4, "let rule = sgd_step();");
        line(&mut s, 4, "var mask = 0u;");
    }
    if l.aligned {
        // Whole vec4s (every width a multiple of 4 and every block aligned,
        // so k < fan_in holds for all four), one store each and, updating,
        // the weights' SGD step beside it.
        let body = |grad: &str, weight: &str, v: &str| {
            let mut b = String::new();
            if out.stores() {
                b += &format!("\n        grads[({grad}) / 4u] = {v};");
            }
            if update {
                b += &format!("\n        mask |= sgd_at(({weight}) / 4u, {v}, rule);");
            }
            b
        };
        for o in 0..4 * ob {
            let row = format!("(o0 + {o}u) * fan_in + k");
            let _ = writeln!(
                s,
                "    if (o0 + {o}u < width && k < fan_in) {{{}\n    }}",
                body(
                    &format!("table[l].z + {row}"),
                    &format!("table[l].x + {row}"),
                    &format!("a{o}")
                )
            );
        }
        for d in 0..l.grad_dz() {
            let _ = writeln!(
                s,
                "    if (k_tile == 0u && {} < OB && my_o{d} < width) {{{}\n    }}",
                l.lane_plus(d),
                body(
                    &format!("table[l].w + my_o{d}"),
                    &format!("table[l].y + my_o{d}"),
                    &format!("db{d}")
                )
            );
        }
    } else {
        for o in 0..4 * ob {
            let _ = writeln!(
                s,
                "    if (o0 + {o}u < width) {{\n\
                 \x20       let row = table[l].z + (o0 + {o}u) * fan_in;\n\
                 \x20       for (var e = 0u; e < 4u; e++) {{\n\
                 \x20           if (k + e < fan_in) {{\n\
                 \x20               grads[row + k + e] = a{o}[e];\n\
                 \x20           }}\n\
                 \x20       }}\n\
                 \x20   }}"
            );
        }
        for d in 0..l.grad_dz() {
            let _ = writeln!(
                s,
                "    if (k_tile == 0u && {} < OB) {{\n\
                 \x20       for (var e = 0u; e < 4u; e++) {{\n\
                 \x20           if (my_o{d} + e < width) {{\n\
                 \x20               grads[table[l].w + my_o{d} + e] = db{d}[e];\n\
                 \x20           }}\n\
                 \x20       }}\n\
                 \x20   }}",
                l.lane_plus(d)
            );
        }
    }
    if update {
        s.push_str(
            "    // Slots 3 l + 1 and 3 l + 2: this layer's gradients and parameters;\n\
             \x20   // 3 (l - 1): its input, the previous layer's output (every tile\n\
             \x20   // of outputs reads all of it).\n\
             \x20   flag_slot(3u * l + 1u, (mask & 1u) != 0u);\n\
             \x20   flag_slot(3u * l + 2u, (mask & 2u) != 0u);\n\
             \x20   if (l > 0u) {\n\
             \x20       flag_slot(3u * (l - 1u), seen);\n\
             \x20   }\n",
        );
    }
    s.push_str("}\n");
    s
}
