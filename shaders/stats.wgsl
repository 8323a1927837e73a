// Reductions for gradient clipping and gradient-flow diagnostics. Every sum
// runs in a fixed order (workgroup trees, or one invocation looping), so a
// run is bit-for-bit repeatable; histogram counts are integer atomics, which
// commute. CPU twin: reference::mlp (diagnostics) and reference::optim (norms).

@group(0) @binding(3) var<storage, read_write> norms: array<f32>;

var<workgroup> partial: array<f32, 256>;

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

// Sums of squares of segments of the arenas, one workgroup per segment:
// strided partial sums, then a tree, in a fixed order. Every per-tensor
// norm a logged step reports is one dispatch; the global gradient norm that
// clipping reads is one segment, the whole gradient arena.
struct Segment {
    // Where the tensor starts in its arena, and its length, in floats.
    offset: u32,
    len: u32,
    // Where in `norms` the result goes.
    slot: u32,
    // 0: Σ g² over the gradients; 1: Σ w² over the saved (pre-update)
    // parameters; 2: Σ (w - w_prev)² (the update).
    source: u32,
}

@group(0) @binding(10) var<storage, read> segments: array<Segment>;
@group(0) @binding(11) var<storage, read> seg_grads: array<f32>;
@group(0) @binding(12) var<storage, read> seg_params: array<f32>;
@group(0) @binding(13) var<storage, read> seg_prev: array<f32>;

fn segment_value(source: u32, i: u32) -> f32 {
    if (source == 0u) {
        return seg_grads[i];
    }
    if (source == 1u) {
        return seg_prev[i];
    }
    return seg_params[i] - seg_prev[i];
}

@compute @workgroup_size(256)
fn sumsq_segments(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let s = segments[wg.x];
    var acc = 0.0;
    for (var i = lid; i < s.len; i = i + 256u) {
        let v = segment_value(s.source, s.offset + i);
        acc = acc + v * v;
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var width = 128u; width > 0u; width = width / 2u) {
        if (lid < width) {
            partial[lid] = partial[lid] + partial[lid + width];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        norms[s.slot] = partial[0];
    }
}
