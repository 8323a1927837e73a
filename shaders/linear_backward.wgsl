// The activation step of a linear layer's backward pass, with the bias
// gradient fused in. CPU twin: reference::linear_backward.
//
//   dz[b, o] = dzt[o, b] = dy[b, o] * f'(saved[b, o])     (dz with a padded row stride)      saved = z, or y for the ReLU family
//   db[o]    = sum over b of dz[b, o]           (a fixed order: deterministic)
//
// One invocation per output column; neighbouring invocations read
// neighbouring columns. dz is then the A operand of the dX GEMM and its
// transpose dzt, written here rather than by a separate transpose pass, the
// A operand of the dW GEMM.
// (Measured on lavapipe: writing dz once and running plain GEMMs beats
// recomputing f' inside both GEMMs, which evaluate it (in / tile) and
// (out / tile) times per element.)

struct DzParams {
    batch: u32,
    cols: u32,
    // Row stride of dz: cols rounded up to a multiple of 4 (the padding
    // stays zero), so the GEMMs can read dz with vec4 loads.
    dz_stride: u32,
    // Row stride of dzt: batch rounded up to a multiple of 4.
    dzt_stride: u32,
}

@group(0) @binding(0) var<storage, read> p: DzParams;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> saved: array<f32>;
@group(0) @binding(3) var<storage, read_write> dz: array<f32>;
@group(0) @binding(4) var<storage, read_write> db: array<f32>;
@group(0) @binding(5) var<storage, read_write> dzt: array<f32>;

// dz of element i (row-major [batch, cols]). derivative_from_saved is
// generated per activation: f'(z), or f' from y for the ReLU family
// (src/gpu/shader.rs). Tiny products are flushed like activations' results
// (see flush_subnormal in activations.wgsl): they feed two GEMMs.
fn dz_at(i: u32) -> f32 {
    return flush_subnormal(dy[i] * derivative_from_saved(saved[i]));
}

@compute @workgroup_size(64)
fn dz_and_bias_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o = gid.x;
    if (o >= p.cols) {
        return;
    }
    var sum = 0.0;
    for (var bi = 0u; bi < p.batch; bi = bi + 1u) {
        let d = dz_at(bi * p.cols + o);
        dz[bi * p.dz_stride + o] = d;
        dzt[o * p.dzt_stride + bi] = d;
        sum = sum + d;
    }
    db[o] = sum;
}

// The same step for the texture GEMM kinds: dz and dzt go straight into
// their packed rgba32float textures (texel (t, r) = elements 4t..4t+4 of
// row r), so neither is written to a buffer and packed again. One
// invocation per 4x4 block (4 output columns by 4 rows) writes one dz texel
// per row and one dzt texel per column; texels past the batch or the
// columns hold zeros, as the GEMMs require. db is a second pass over dzt.
@group(0) @binding(6) var dz_packed: texture_storage_2d<rgba32float, write>;
@group(0) @binding(7) var dzt_packed: texture_storage_2d<rgba32float, write>;
@group(0) @binding(8) var dzt_read: texture_storage_2d<rgba32float, read>;

// dz[4 b4 + r, 4 c4 .. 4 c4 + 4] for r < 4, each row's texel stored in
// dz_packed (rows past the batch are left out and returned as zeros).
fn dz_block(c4: u32, b4: u32) -> array<vec4<f32>, 4> {
    var rows = array<vec4<f32>, 4>();
    for (var r = 0u; r < 4u; r = r + 1u) {
        let b = 4u * b4 + r;
        if (b >= p.batch) {
            break;
        }
        var v = vec4<f32>(0.0);
        for (var c = 0u; c < 4u; c = c + 1u) {
            let o = 4u * c4 + c;
            if (o < p.cols) {
                v[c] = dz_at(b * p.cols + o);
            }
        }
        textureStore(dz_packed, vec2<u32>(c4, b), v);
        rows[r] = v;
    }
    return rows;
}

@compute @workgroup_size(64)
fn dz_packed_blocks(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c4 = gid.x;
    let b4 = gid.y;
    if (4u * c4 >= p.cols || 4u * b4 >= p.batch) {
        return;
    }
    let rows = dz_block(c4, b4);
    for (var c = 0u; c < 4u; c = c + 1u) {
        let o = 4u * c4 + c;
        if (o < p.cols) {
            let t = vec4<f32>(rows[0][c], rows[1][c], rows[2][c], rows[3][c]);
            textureStore(dzt_packed, vec2<u32>(b4, o), t);
        }
    }
}

// dz alone, for the backward GEMMs that read B along n (src/gpu/gemm_kn.rs):
// they read dz both ways, so no transpose is written.
@compute @workgroup_size(64)
fn dz_packed_only(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c4 = gid.x;
    let b4 = gid.y;
    if (4u * c4 >= p.cols || 4u * b4 >= p.batch) {
        return;
    }
    _ = dz_block(c4, b4);
}

// db[o] = the sum of dzt's row o, in the same order as dz_and_bias_grad.
@compute @workgroup_size(64)
fn bias_grad_packed(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o = gid.x;
    if (o >= p.cols) {
        return;
    }
    var sum = 0.0;
    for (var b4 = 0u; 4u * b4 < p.batch; b4 = b4 + 1u) {
        let t = textureLoad(dzt_read, vec2<u32>(b4, o));
        for (var c = 0u; c < 4u; c = c + 1u) {
            if (4u * b4 + c < p.batch) {
                sum = sum + t[c];
            }
        }
    }
    db[o] = sum;
}
