// Reductions for gradient clipping and gradient-flow diagnostics. Every sum
// runs in a fixed order (each invocation looping over its chunk or its
// list), so a run is bit-for-bit repeatable. CPU twin: reference::optim.

@group(0) @binding(3) var<storage, read_write> norms: array<f32>;

struct ClipParams {
    first: u32,
    count: u32,
    // Where the global norm goes in `norms`.
    out_slot: u32,
    max_norm: f32,
}

@group(0) @binding(4) var<storage, read> cp: ClipParams;
@group(0) @binding(5) var<storage, read_write> clip_norms: array<f32>;
// The optimizer's step state; index 3 is the gradient scale.
@group(0) @binding(6) var<storage, read_write> step_state: array<f32>;

// PyTorch's clip_grad_norm_: scale = min(1, max_norm / (norm + 1e-6)).
// max_norm <= 0 only records the norm.
@compute @workgroup_size(1)
fn clip_scale() {
    var total = 0.0;
    for (var i = 0u; i < cp.count; i = i + 1u) {
        total = total + clip_norms[cp.first + i];
    }
    let norm = sqrt(total);
    clip_norms[cp.out_slot] = norm;
    if (cp.max_norm > 0.0) {
        step_state[3] = min(1.0, cp.max_norm / (norm + 1.0e-6));
    }
}

// Sums of squares of segments of the arenas in two barrier-free passes,
// each sum in a fixed order: `sumsq_chunks` gives each invocation one chunk
// (at most NORM_CHUNK floats of one segment) to sum serially, and
// `sumsq_segments` gives each invocation one segment, whose chunks' sums
// it adds in order. A tree of barriers in one workgroup per segment cost
// SwiftShader (the browser's software adapter) 24-28 ms for the main job's
// 85 segments; these two passes cost it 1.4-2.6 ms. Every per-tensor norm a
// logged step reports comes from one such pair of dispatches; the global
// gradient norm that clipping reads is the gradient segments' sums added in
// slot order (clip_scale).
struct Chunk {
    // Where the chunk starts in its arena, and its length, in floats.
    offset: u32,
    len: u32,
    // 0: Σ g² over the gradients; 1: Σ w² over the saved (pre-update)
    // parameters; 2: Σ (w - w_prev)² (the update).
    source: u32,
    pad: u32,
}

struct Segment {
    // The segment's chunks: `count` of them from `first`.
    first: u32,
    count: u32,
    // Where in `norms` the result goes.
    slot: u32,
    pad: u32,
}

@group(0) @binding(7) var<storage, read> chunks: array<Chunk>;
@group(0) @binding(8) var<storage, read_write> chunk_sums: array<f32>;
@group(0) @binding(10) var<storage, read> segments: array<Segment>;
// The arenas as vec4s (every tensor starts at an aligned float, a multiple
// of 4, and every arena's length is one too).
@group(0) @binding(11) var<storage, read> seg_grads: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> seg_params: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read> seg_prev: array<vec4<f32>>;

fn segment_value(source: u32, i: u32) -> vec4<f32> {
    if (source == 0u) {
        return seg_grads[i];
    }
    if (source == 1u) {
        return seg_prev[i];
    }
    return seg_params[i] - seg_prev[i];
}

@compute @workgroup_size(64)
fn sumsq_chunks(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= arrayLength(&chunks)) {
        return;
    }
    let c = chunks[gid.x];
    let base = c.offset / 4u;
    let whole = c.len / 4u;
    var acc = 0.0;
    for (var i = 0u; i < whole; i = i + 1u) {
        let v = segment_value(c.source, base + i);
        acc = acc + dot(v, v);
    }
    // The last vec4's floats past the chunk (the next tensor's or the
    // alignment gap's) count as zeros.
    let rest = c.len % 4u;
    if (rest > 0u) {
        let keep = vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(rest);
        let v = select(vec4<f32>(0.0), segment_value(c.source, base + whole), keep);
        acc = acc + dot(v, v);
    }
    chunk_sums[gid.x] = acc;
}

@compute @workgroup_size(64)
fn sumsq_segments(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= arrayLength(&segments)) {
        return;
    }
    let s = segments[gid.x];
    var total = 0.0;
    for (var i = 0u; i < s.count; i = i + 1u) {
        total = total + chunk_sums[s.first + i];
    }
    norms[s.slot] = total;
}
