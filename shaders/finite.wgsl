// Divergence detection for a whole training step in one dispatch: every
// hidden layer's output, the logits, every gradient and every parameter
// (the two arenas) and the per-row losses are scanned for NaN or
// infinity, and for each (layer, kind) slot the first step that produced
// one is kept. The minimum over steps does not depend on the order the
// invocations run in, so the flags are deterministic. CPU side:
// train::trainer::logs (the slots' causal order).
//
// Slots: 3 l + 0 the activation of layer l, 3 l + 1 its gradients, 3 l + 2
// its parameters, 3 n the loss (n linear layers).

struct FiniteParams {
    // Linear layers (the output layer included).
    layers: u32,
    // Floats in each segment: hidden outputs (even layers, odd layers),
    // logits, the gradient arena, the parameter arena, the row losses.
    len_acts0: u32,
    len_acts1: u32,
    len_logits: u32,
    len_arena: u32,
    len_loss: u32,
    // Invocations along x (the stride of each invocation's loop).
    stride: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> fp: FiniteParams;
@group(0) @binding(1) var<storage, read> acts0: array<f32>;
@group(0) @binding(2) var<storage, read> acts1: array<f32>;
@group(0) @binding(3) var<storage, read> logits: array<f32>;
@group(0) @binding(4) var<storage, read> grads: array<f32>;
@group(0) @binding(5) var<storage, read> params: array<f32>;
@group(0) @binding(6) var<storage, read> losses: array<f32>;
// The step state; word 4 holds the step number.
@group(0) @binding(7) var<storage, read> step_words: array<u32>;
// Where each layer's tensors start in the arenas (layers + 1 entries),
// then where each hidden layer's output starts in its buffer (even layers
// in acts0, odd in acts1).
@group(0) @binding(8) var<storage, read> starts: array<u32>;
// Per slot: the first step at which a non-finite value was seen (u32 max: none).
@group(0) @binding(9) var<storage, read_write> first_bad: array<atomic<u32>>;

fn is_bad(v: f32) -> bool {
    // An all-ones exponent means infinity or NaN.
    return (bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u;
}

fn value(segment: u32, i: u32) -> f32 {
    switch segment {
        case 0u: { return acts0[i]; }
        case 1u: { return acts1[i]; }
        case 2u: { return logits[i]; }
        case 3u: { return grads[i]; }
        case 4u: { return params[i]; }
        default: { return losses[i]; }
    }
}

fn segment_len(segment: u32) -> u32 {
    switch segment {
        case 0u: { return fp.len_acts0; }
        case 1u: { return fp.len_acts1; }
        case 2u: { return fp.len_logits; }
        case 3u, 4u: { return fp.len_arena; }
        default: { return fp.len_loss; }
    }
}

// The slot of element i of a segment, and where that slot's elements end
// in the segment.
fn slot_of(segment: u32, i: u32) -> vec2<u32> {
    let n = fp.layers;
    switch segment {
        case 0u, 1u: {
            // The hidden layer of this parity whose output starts last at
            // or before i; it ends where the next layer of its parity starts.
            var layer = segment;
            for (var l = segment; l + 1u < n; l += 2u) {
                if (starts[n + 1u + l] <= i) {
                    layer = l;
                }
            }
            var end = segment_len(segment);
            if (layer + 3u < n) {
                end = starts[n + 1u + layer + 2u];
            }
            return vec2<u32>(3u * layer, end);
        }
        case 2u: { return vec2<u32>(3u * (n - 1u), fp.len_logits); }
        case 3u, 4u: {
            var layer = 0u;
            for (var l = 0u; l < n; l++) {
                if (starts[l] <= i) {
                    layer = l;
                }
            }
            return vec2<u32>(3u * layer + segment - 2u, starts[layer + 1u]);
        }
        default: { return vec2<u32>(3u * n, fp.len_loss); }
    }
}

// x strides over a segment, y picks the segment. Once a slot is flagged,
// an invocation skips the rest of that slot's elements: a diverged step
// costs no more than a healthy one.
@compute @workgroup_size(256)
fn check_all_finite(@builtin(global_invocation_id) gid: vec3<u32>) {
    let segment = gid.y;
    let len = segment_len(segment);
    let step = step_words[4];
    var i = gid.x;
    loop {
        if (i >= len) {
            break;
        }
        if (is_bad(value(segment, i))) {
            let found = slot_of(segment, i);
            atomicMin(&first_bad[found.x], step);
            if (found.y <= i) {
                break;
            }
            // The first index at or past the slot's end that is this
            // invocation's.
            i += (found.y - i + fp.stride - 1u) / fp.stride * fp.stride;
        } else {
            i += fp.stride;
        }
    }
}
