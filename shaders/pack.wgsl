// Packs a GEMM operand into the rgba32float texture layout of the texture
// GEMM kinds: texel (t, r) holds elements 4t..4t+4 of operand row r along
// k, zero past k (whatever the source's row padding holds).
// columns = 0: operand row r, element kk at src[r * ld + kk] (row-major).
// columns = 1: operand row r, element kk at src[kk * ld + r] (the transpose
// of a row-major matrix, packed without a transpose pass).
// CPU twin: the GEMM reference in the tests (the texture kinds must equal it).

struct PackParams {
    // Operand rows (the texture rows written).
    rows: u32,
    // Operand depth.
    k: u32,
    // Source row stride in floats.
    ld: u32,
    // Texels per operand row: ceil(k / 4).
    texels: u32,
    columns: u32,
}

@group(0) @binding(0) var<storage, read> p: PackParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var dst: texture_storage_2d<rgba32float, write>;

// x runs along the source's rows (k for row-major operands, the operand
// rows for transposed ones), so neighbouring invocations read neighbouring
// floats.
@compute @workgroup_size(64, 1, 1)
fn pack(@builtin(global_invocation_id) gid: vec3<u32>) {
    let columns = p.columns != 0u;
    let t = select(gid.x, gid.y, columns);
    let r = select(gid.y, gid.x, columns);
    if (t >= p.texels || r >= p.rows) {
        return;
    }
    var v = vec4<f32>(0.0);
    for (var c = 0u; c < 4u; c = c + 1u) {
        let kk = 4u * t + c;
        if (kk < p.k) {
            v[c] = src[select(r * p.ld + kk, kk * p.ld + r, columns)];
        }
    }
    textureStore(dst, vec2<u32>(t, r), v);
}
