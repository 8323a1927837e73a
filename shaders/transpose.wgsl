// dst[c, r] = src[r, c]: src is [rows, cols] with row stride src_stride,
// dst is [cols, rows] with row stride dst_stride (>= rows; the padding
// columns are left untouched, zero from allocation). The backward GEMMs
// read their operands through this so every GEMM is k-contiguous.
// CPU twin: a plain double loop (reference::linear_backward needs none).

struct TransposeParams {
    rows: u32,
    cols: u32,
    src_stride: u32,
    dst_stride: u32,
}

@group(0) @binding(0) var<storage, read> p: TransposeParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

// One invocation per destination element; x runs along the destination row
// so the writes of neighbouring invocations are contiguous.
@compute @workgroup_size(64, 1, 1)
fn transpose(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    let c = gid.y + gid.z * 65535u;
    if (r >= p.rows || c >= p.cols) {
        return;
    }
    dst[c * p.dst_stride + r] = src[r * p.src_stride + c];
}
