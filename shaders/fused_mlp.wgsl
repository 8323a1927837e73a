// The fully fused MLP: every hidden layer of a narrow net (width <= 128) in
// one dispatch forward, and the activation gradients of every layer in one
// dispatch backward, the rows of a block kept in workgroup memory from
// layer to layer. CPU twin: reference::fused_mlp.
//
// Generated constants (src/gpu/fused.rs prepends them):
//   WP    the hidden width rounded up to 16, 32, 64 or 128 (lanes per row)
//   ROWS  batch rows per workgroup (16)
//   ACC   rows each invocation accumulates: ROWS * WP / 128
//   KC    the k-chunk of weights staged in workgroup memory (8)
// An invocation t owns column o = t % WP of rows g, g + G, g + 2G, ... where
// g = t / WP and G = 128 / WP. Columns >= width hold zeros, so the padding
// never reaches a sum.
//
// Layout of the packed parameters: layer l's weight [width, in_l] row-major
// at w_off(l) (in_0 = the net's input width, in_l = width after), its bias
// at l * width. saved[l] is [batch, width] at l * batch * width: z where the
// activation's derivative needs it, y otherwise (derivative_from_saved).

struct FusedParams {
    batch: u32,
    input: u32,
    width: u32,
    layers: u32,
}

@group(0) @binding(0) var<storage, read> p: FusedParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
// forward: saved (written) and y_last (written, [batch, width]);
// backward: saved (read), dy_last (read) and dz (written, [layers, batch, width]).
@group(0) @binding(4) var<storage, read_write> saved: array<f32>;
@group(0) @binding(5) var<storage, read_write> io: array<f32>;
@group(0) @binding(6) var<storage, read_write> dz: array<f32>;

const G: u32 = 128u / WP;

// The rows of the block: the current layer's input (forward) or gradient
// (backward), [ROWS, WP].
var<workgroup> h: array<f32, ROWS * WP>;
// A chunk of KC weight columns (forward: wt[kk][o] = W[o][k0 + kk]) or rows
// (backward: wt[kk][k] = W[o0 + kk][k]), [KC, WP].
var<workgroup> wt: array<f32, KC * WP>;
// A chunk of the net's input, [ROWS, KC] (the first layer only).
var<workgroup> xc: array<f32, ROWS * KC>;

fn w_off(l: u32) -> u32 {
    if (l == 0u) {
        return 0u;
    }
    return p.width * p.input + (l - 1u) * p.width * p.width;
}

@compute @workgroup_size(128)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let o = t % WP;
    let g = t / WP;
    let row0 = wg.x * ROWS;
    let width = p.width;
    var acc: array<f32, ACC>;

    // Layer 0: the input comes from global memory, KC columns at a time.
    for (var j = 0u; j < ACC; j++) {
        acc[j] = 0.0;
    }
    for (var k0 = 0u; k0 < p.input; k0 += KC) {
        for (var i = t; i < KC * WP; i += 128u) {
            let kk = i / WP;
            let oo = i % WP;
            let k = k0 + kk;
            wt[i] = select(0.0, w[oo * p.input + k], oo < width && k < p.input);
        }
        for (var i = t; i < ROWS * KC; i += 128u) {
            let r = i / KC;
            let k = k0 + i % KC;
            let row = row0 + r;
            xc[i] = select(0.0, x[row * p.input + k], row < p.batch && k < p.input);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KC; kk++) {
            let wv = wt[kk * WP + o];
            for (var j = 0u; j < ACC; j++) {
                acc[j] += xc[(g + j * G) * KC + kk] * wv;
            }
        }
        workgroupBarrier();
    }

    for (var l = 0u; l < p.layers; l++) {
        if (l > 0u) {
            // Hidden layer l: its input is the block in h.
            for (var j = 0u; j < ACC; j++) {
                acc[j] = 0.0;
            }
            let base = w_off(l);
            for (var k0 = 0u; k0 < width; k0 += KC) {
                for (var i = t; i < KC * WP; i += 128u) {
                    let kk = i / WP;
                    let oo = i % WP;
                    let k = k0 + kk;
                    wt[i] = select(0.0, w[base + oo * width + k], oo < width && k < width);
                }
                workgroupBarrier();
                for (var kk = 0u; kk < KC; kk++) {
                    let wv = wt[kk * WP + o];
                    let k = k0 + kk;
                    for (var j = 0u; j < ACC; j++) {
                        acc[j] += h[(g + j * G) * WP + k] * wv;
                    }
                }
                workgroupBarrier();
            }
        }
        // Epilogue: bias and activation, saved for the backward, and the
        // block's new rows (every read of the old ones is behind the last
        // barrier of the loop above).
        let b = select(0.0, bias[l * width + o], o < width);
        for (var j = 0u; j < ACC; j++) {
            let r = g + j * G;
            let row = row0 + r;
            let zz = acc[j] + b;
            let y = activation(zz);
            if (o < width && row < p.batch) {
                let at = (l * p.batch + row) * width + o;
                if (SAVES_Z) {
                    saved[at] = zz;
                } else {
                    saved[at] = y;
                }
                if (l + 1u == p.layers) {
                    io[row * width + o] = y;
                }
            }
            h[r * WP + o] = select(0.0, y, o < width && row < p.batch);
        }
        workgroupBarrier();
    }
}

// dz_l = dy_l * f'(saved_l), from the last layer to the first, with
// dy_{l-1} = dz_l . W_l (no dx for the net's input).
@compute @workgroup_size(128)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let k = t % WP;
    let g = t / WP;
    let row0 = wg.x * ROWS;
    let width = p.width;
    var acc: array<f32, ACC>;
    // The last layer's gradient comes from the head.
    for (var j = 0u; j < ACC; j++) {
        let row = row0 + g + j * G;
        acc[j] = select(0.0, io[row * width + k], k < width && row < p.batch);
    }
    var l = p.layers;
    loop {
        if (l == 0u) {
            break;
        }
        l -= 1u;
        // acc holds dy_l for column k: dz_l into h and global memory.
        for (var j = 0u; j < ACC; j++) {
            let r = g + j * G;
            let row = row0 + r;
            var d = 0.0;
            if (k < width && row < p.batch) {
                let at = (l * p.batch + row) * width + k;
                d = flush_subnormal(acc[j] * derivative_from_saved(saved[at]));
                dz[at] = d;
            }
            h[r * WP + k] = d;
        }
        workgroupBarrier();
        if (l == 0u) {
            break;
        }
        // dy_{l-1}[r][k] = sum over o of dz_l[r][o] * W_l[o][k].
        for (var j = 0u; j < ACC; j++) {
            acc[j] = 0.0;
        }
        let base = w_off(l);
        for (var o0 = 0u; o0 < width; o0 += KC) {
            for (var i = t; i < KC * WP; i += 128u) {
                let oo = o0 + i / WP;
                let kk = i % WP;
                wt[i] = select(0.0, w[base + oo * width + kk], oo < width && kk < width);
            }
            workgroupBarrier();
            for (var q = 0u; q < KC; q++) {
                let wv = wt[q * WP + k];
                let o = o0 + q;
                for (var j = 0u; j < ACC; j++) {
                    acc[j] += h[(g + j * G) * WP + o] * wv;
                }
            }
            workgroupBarrier();
        }
    }
}
