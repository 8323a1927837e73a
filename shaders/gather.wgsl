// Mini-batch gather: dst[r, :] = src[perm[offset + r], :] and the label with
// it. The data set stays on the device; each step only moves one batch.
// CPU twin: Dataset::subset (src/data).

struct GatherParams {
    rows: u32,
    cols: u32,
    offset: u32,
    // 1: the offset is the step's, word 5 of the step state (a training
    // step writes it with its other per-step values, so its gather needs
    // no parameters of its own).
    offset_from_step: u32,
}

@group(0) @binding(0) var<storage, read> p: GatherParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> src_labels: array<f32>;
@group(0) @binding(3) var<storage, read> perm: array<u32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;
@group(0) @binding(5) var<storage, read_write> dst_labels: array<f32>;
@group(0) @binding(6) var<storage, read> step_words: array<u32>;

// x runs along a row's features; y is the batch row.
@compute @workgroup_size(64)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let r = gid.y;
    if (r >= p.rows || c >= p.cols) {
        return;
    }
    let offset = select(p.offset, step_words[5], p.offset_from_step == 1u);
    let s = perm[offset + r];
    dst[r * p.cols + c] = src[s * p.cols + c];
    if (c == 0u) {
        dst_labels[r] = src_labels[s];
    }
}
