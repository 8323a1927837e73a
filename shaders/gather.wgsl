// Mini-batch gather: dst[r, :] = src[perm[offset + r], :] and the label with
// it. The data set stays on the device; each step only moves one batch.
// CPU twin: Dataset::subset (src/data).

struct GatherParams {
    rows: u32,
    cols: u32,
    offset: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> p: GatherParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> src_labels: array<f32>;
@group(0) @binding(3) var<storage, read> perm: array<u32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;
@group(0) @binding(5) var<storage, read_write> dst_labels: array<f32>;

// x runs along a row's features; y is the batch row.
@compute @workgroup_size(64)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let r = gid.y;
    if (r >= p.rows || c >= p.cols) {
        return;
    }
    let s = perm[p.offset + r];
    dst[r * p.cols + c] = src[s * p.cols + c];
    if (c == 0u) {
        dst_labels[r] = src_labels[s];
    }
}
