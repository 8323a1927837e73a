// The weight and bias gradients of every layer of the fully fused MLP
// (fused_mlp.wgsl) in one dispatch. CPU twin: reference::fused_mlp.
//
//   dW_l[o][k] = sum over rows of dz_l[row][o] * X_l[row][k]
//   db_l[o]    = sum over rows of dz_l[row][o]      (column k = in_l)
// X_0 is the net's input, X_l = y_{l-1} (recomputed from z where z is
// saved). One invocation per element, rows summed in order: deterministic.
// Workgroup wg covers an 8 x 8 tile of the [width, in_l + 1] matrix of
// the layer its index falls in (layer 0's tiles first); grads is [dW_0 | db_0 | dW_1 | db_1 | ...] with
// each layer's dW row-major [width, in_l] followed by its db [width].

struct GradParams {
    batch: u32,
    input: u32,
    width: u32,
    layers: u32,
    // Tiles of layer 0 ([width, input + 1] in 8 x 8 tiles); every later
    // layer has hidden_tiles.
    first_tiles: u32,
    hidden_tiles: u32,
    tiles_k0: u32,
    tiles_k: u32,
}

@group(0) @binding(0) var<storage, read> gp: GradParams;
@group(0) @binding(1) var<storage, read> gx: array<f32>;
@group(0) @binding(2) var<storage, read> gsaved: array<f32>;
@group(0) @binding(3) var<storage, read> gdz: array<f32>;
@group(0) @binding(4) var<storage, read_write> grads: array<f32>;

fn value_from_saved(s: f32) -> f32 {
    if (SAVES_Z) {
        return activation(s);
    }
    return s;
}

const RC: u32 = 32u;
var<workgroup> dzc: array<f32, 256>;
var<workgroup> xcc: array<f32, 256>;

@compute @workgroup_size(64)
fn weight_grads(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let width = gp.width;
    var tile = wg.x;
    var l = 0u;
    var tiles_k = gp.tiles_k0;
    var fan_in = gp.input;
    var out_base = 0u;
    if (tile >= gp.first_tiles) {
        tile -= gp.first_tiles;
        l = 1u + tile / gp.hidden_tiles;
        tile = tile % gp.hidden_tiles;
        tiles_k = gp.tiles_k;
        fan_in = width;
        out_base = width * (gp.input + 1u) + (l - 1u) * width * (width + 1u);
    }
    if (l >= gp.layers) {
        return;
    }
    let o0 = (tile / tiles_k) * 8u;
    let k0 = (tile % tiles_k) * 8u;
    let lo = t / 8u;
    let lk = t % 8u;
    let o = o0 + lo;
    let k = k0 + lk;
    var acc = 0.0;
    for (var r0 = 0u; r0 < gp.batch; r0 += RC) {
        // Stage RC rows of dz (8 columns) and of X (8 columns).
        for (var i = t; i < RC * 8u; i += 64u) {
            let r = r0 + i / 8u;
            let oo = o0 + i % 8u;
            let kk = k0 + i % 8u;
            var dv = 0.0;
            var xv = 0.0;
            if (r < gp.batch) {
                if (oo < width) {
                    dv = gdz[(l * gp.batch + r) * width + oo];
                }
                if (kk < fan_in) {
                    if (l == 0u) {
                        xv = gx[r * fan_in + kk];
                    } else {
                        xv = value_from_saved(gsaved[((l - 1u) * gp.batch + r) * width + kk]);
                    }
                } else if (kk == fan_in) {
                    xv = 1.0;
                }
            }
            dzc[i] = dv;
            xcc[i] = xv;
        }
        workgroupBarrier();
        let n = min(RC, gp.batch - r0);
        for (var q = 0u; q < n; q++) {
            acc += dzc[q * 8u + lo] * xcc[q * 8u + lk];
        }
        workgroupBarrier();
    }
    if (o < width && k <= fan_in) {
        if (k < fan_in) {
            grads[out_base + o * fan_in + k] = acc;
        } else {
            grads[out_base + width * fan_in + o] = acc;
        }
    }
}
