// The weight and bias gradients of every layer of the fully fused MLP
// (fused_mlp.wgsl) in one dispatch. CPU twin: reference::fused_mlp.
//
//   dW_l[o][k] = sum over rows of dz_l[row][o] * X_l[row][k]
//   db_l[o]    = sum over rows of dz_l[row][o]      (column k = in_l, X = 1)
//
// X_0 is the net's input, X_l = y_{l-1}. An invocation owns a 4 x 4 tile
// (4 rows o, a vec4 of columns k) of one layer's [width, in_l + 1] matrix
// and sums over the rows in order: deterministic, and no invocation waits
// for another. Layer 0's tiles come first in the grid, then every later
// layer's. dW (row-major [width, in_l]) and db land where the table says.

struct GradParams {
    batch: u32,
    input: u32,
    width: u32,
    layers: u32,
    // Tiles per layer: row tiles (width / 4, rounded up) times column tiles.
    row_tiles: u32,
    col_tiles0: u32,
    col_tiles: u32,
    // Floats per layer in gdz (layer l at l * act_stride), gys0 and gys1.
    act_stride: u32,
}

@group(0) @binding(0) var<storage, read> gp: GradParams;
@group(0) @binding(1) var<storage, read> gx: array<f32>;
// Layer outputs: even layers in gys0, odd in gys1, layer l at (l / 2) * act_stride.
@group(0) @binding(2) var<storage, read> gys0: array<f32>;
@group(0) @binding(6) var<storage, read> gys1: array<f32>;
@group(0) @binding(3) var<storage, read> gdz: array<f32>;
@group(0) @binding(4) var<storage, read_write> grads: array<f32>;
// Per layer: z and w are where its dW ([width, in_l] row-major) and db start
// in grads (x and y locate the weights, for the forward).
@group(0) @binding(5) var<storage, read> table: array<vec4<u32>>;

// Column k of layer l's input at row r: X_l[r][k], 1 for the bias column,
// 0 past it.
fn x_at(l: u32, r: u32, k: u32, fan_in: u32) -> f32 {
    if (k < fan_in) {
        if (l == 0u) {
            return gx[r * fan_in + k];
        }
        let at = ((l - 1u) / 2u) * gp.act_stride + r * gp.width + k;
        if ((l - 1u) % 2u == 0u) {
            return gys0[at];
        }
        return gys1[at];
    }
    return select(0.0, 1.0, k == fan_in);
}

@compute @workgroup_size(64)
fn weight_grads(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let width = gp.width;
    var i = gid.x + gid.y * nwg.x * 64u;
    var l = 0u;
    var col_tiles = gp.col_tiles0;
    var fan_in = gp.input;
    let first = gp.row_tiles * gp.col_tiles0;
    if (i >= first) {
        let per = gp.row_tiles * gp.col_tiles;
        l = 1u + (i - first) / per;
        i = (i - first) % per;
        col_tiles = gp.col_tiles;
        fan_in = width;
    }
    if (l >= gp.layers) {
        return;
    }
    let o0 = (i / col_tiles) * 4u;
    let k0 = (i % col_tiles) * 4u;
    var acc: array<vec4<f32>, 4>;
    for (var c = 0u; c < 4u; c++) {
        acc[c] = vec4<f32>(0.0);
    }
    for (var r = 0u; r < gp.batch; r++) {
        var dv = vec4<f32>(0.0);
        let drow = l * gp.act_stride + r * width;
        for (var c = 0u; c < 4u; c++) {
            if (o0 + c < width) {
                dv[c] = gdz[drow + o0 + c];
            }
        }
        var xv = vec4<f32>(0.0);
        for (var c = 0u; c < 4u; c++) {
            xv[c] = x_at(l, r, k0 + c, fan_in);
        }
        for (var c = 0u; c < 4u; c++) {
            acc[c] += dv[c] * xv;
        }
    }
    for (var c = 0u; c < 4u; c++) {
        let o = o0 + c;
        for (var c2 = 0u; c2 < 4u; c2++) {
            let k = k0 + c2;
            if (o < width && k < fan_in) {
                grads[table[l].z + o * fan_in + k] = acc[c][c2];
            } else if (o < width && k == fan_in) {
                grads[table[l].w + o] = acc[c][c2];
            }
        }
    }
}
