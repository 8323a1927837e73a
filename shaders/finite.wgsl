// Divergence detection for a whole training step: every hidden layer's
// output, the logits and the per-row losses are scanned for NaN or
// infinity here (every gradient and every updated parameter is checked by
// the optimizer's dispatch, shaders/optimizer.wgsl; where plain SGD is
// folded into the kernels that make the gradients, shaders/sgd_fold.wgsl,
// those kernels check all of it and neither dispatch runs), and for each
// (layer, kind) slot the first step that produced one is kept. The minimum
// over steps does not depend on the order the invocations run in, so the
// flags are deterministic. CPU side: train::trainer::logs (the slots'
// causal order).
//
// Slots: 3 l + 0 the activation of layer l, 3 l + 1 its gradients, 3 l + 2
// its parameters, 3 n the loss (n linear layers).
//
// One workgroup per chunk of the table: a chunk lies in one slot's span of
// one buffer, so no invocation searches for its slot, and nothing in the
// scan branches on a value (on llvmpipe a branch costs both of its sides):
// each invocation folds what it saw into one flag and sets the slot once.

// A chunk: [start, end) in the buffer's units (vec4s of the hidden outputs,
// floats of the logits and the losses), the slot, the buffer (0: even
// hidden layers' outputs, 1: odd ones', 2: logits, 3: row losses).
struct Chunk {
    start: u32,
    end: u32,
    slot: u32,
    buffer: u32,
}

@group(0) @binding(0) var<storage, read> chunks: array<Chunk>;
@group(0) @binding(1) var<storage, read> acts0: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> acts1: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> logits: array<f32>;
@group(0) @binding(6) var<storage, read> losses: array<f32>;
// The step state; word 4 holds the step number.
@group(0) @binding(7) var<storage, read> step_words: array<u32>;
// Per slot: the first step at which a non-finite value was seen (u32 max: none).
@group(0) @binding(9) var<storage, read_write> first_bad: array<atomic<u32>>;

// Invocations per workgroup, and each one's elements per chunk.
const WIDTH: u32 = 64u;
const PER_INVOCATION: u32 = 4u;

// An all-ones exponent means infinity or NaN.
fn bad4(v: vec4<f32>) -> bool {
    return any((bitcast<vec4<u32>>(v) & vec4<u32>(0x7f800000u)) == vec4<u32>(0x7f800000u));
}

fn bad1(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u;
}

// The grid is one workgroup per chunk (x + y · 65535 past the dispatch limit).
@compute @workgroup_size(64)
fn check_all_finite(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let index = wid.x + wid.y * nwg.x;
    if (index >= arrayLength(&chunks)) {
        return;
    }
    let c = chunks[index];
    var bad = false;
    for (var k = 0u; k < PER_INVOCATION; k++) {
        let i = min(c.start + lid + k * WIDTH, c.end - 1u);
        switch c.buffer {
            case 0u: { bad = bad | bad4(acts0[i]); }
            case 1u: { bad = bad | bad4(acts1[i]); }
            case 2u: { bad = bad | bad1(logits[i]); }
            default: { bad = bad | bad1(losses[i]); }
        }
    }
    if (bad) {
        atomicMin(&first_bad[c.slot], step_words[4]);
    }
}
