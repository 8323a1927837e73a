// Optimizer updates over the whole parameter arena in one dispatch,
// following PyTorch's torch.optim formulas, with the step's finite check of
// every gradient and every updated parameter folded in. CPU twin:
// reference::optim.
//
// The step state is written by the host before each step (learning rate and
// Adam's bias corrections, known without reading anything back) and by the
// clipping kernel (the global-norm scale, computed on the GPU).
//
// Multi-tensor, in the spirit of apex's multi_tensor_apply: one workgroup
// per chunk of the table, a chunk being up to WIDTH · PER_INVOCATION vec4s
// of one layer's tensors, so each invocation knows its layer's finite-check
// slots without searching. Every setting is loaded once per invocation (on
// llvmpipe each storage load is a loop over the SIMD lanes, so loads per
// element are the cost), and nothing in the update branches on a value (on
// llvmpipe a branch costs both of its sides): each invocation folds what it
// saw into one mask and sets the slots once. The arena's length is a
// multiple of 64 floats (its tensors start at aligned offsets and the gaps
// hold zeros, which every update keeps at zero).

// OptimParams, StepState, sgd_rule and bad_mask: shaders/optim_common.wgsl.

@group(0) @binding(0) var<storage, read> p: OptimParams;
@group(0) @binding(1) var<storage, read> step: StepState;
@group(0) @binding(2) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> state1: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> state2: array<vec4<f32>>;
// Where each layer's tensors start in the arena, in floats (layers + 1).
// [start, end) in vec4s of the arena, and the first slot of the layer the
// chunk belongs to (3 l; see shaders/finite.wgsl).
@group(0) @binding(6) var<storage, read> chunks: array<vec4<u32>>;
// Per (layer, kind) slot: the first step that produced a non-finite value.
@group(0) @binding(7) var<storage, read_write> first_bad: array<atomic<u32>>;

const WIDTH: u32 = 64u;
// The chunk size is OPTIM_CHUNK in src/train/trainer/mod.rs.
const PER_INVOCATION: u32 = 16u;

// Sets the chunk's layer's slots for what `mask` says (once per invocation).
fn flag(c: vec4<u32>, mask: u32, step_number: u32) {
    if (mask != 0u) {
        if ((mask & 1u) != 0u) {
            atomicMin(&first_bad[c.z + 1u], step_number);
        }
        if ((mask & 2u) != 0u) {
            atomicMin(&first_bad[c.z + 2u], step_number);
        }
    }
}

// The invocation's chunk (x + y · row of the grid past the dispatch limit),
// or None: a zero-length chunk past the table's end.
fn chunk_of(wid: vec3<u32>, nwg: vec3<u32>) -> vec4<u32> {
    let index = wid.x + wid.y * nwg.x;
    if (index >= p.chunks) {
        return vec4<u32>(0u);
    }
    return chunks[index];
}

// SGD with momentum (PyTorch: buf = momentum·buf + g; Nesterov: g + momentum·buf)
// and L2 weight decay added to the gradient.
@compute @workgroup_size(64)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = chunk_of(wid, nwg);
    let momentum = p.momentum;
    let nesterov = p.nesterov == 1u;
    let decay = p.weight_decay;
    let lr = step.lr;
    let scale = step.clip_scale;
    let step_number = step.step;
    var mask = 0u;
    for (var k = 0u; k < PER_INVOCATION; k++) {
        let i = c.x + lid + k * WIDTH;
        if (i >= c.y) {
            break;
        }
        let raw = grad[i];
        var buf = vec4<f32>(0.0);
        if (momentum != 0.0) {
            buf = state1[i];
        }
        let next = sgd_rule(param[i], raw, buf, lr, scale, momentum, decay, nesterov);
        if (momentum != 0.0) {
            state1[i] = next.buf;
        }
        param[i] = next.w;
        mask |= bad_mask(raw, next.w);
    }
    flag(c, mask, step_number);
}

// Adam and AdamW.
@compute @workgroup_size(64)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = chunk_of(wid, nwg);
    let decoupled = p.decoupled == 1u;
    let decay = p.weight_decay;
    let beta1 = p.beta1;
    let beta2 = p.beta2;
    let eps = p.eps;
    let lr = step.lr;
    let scale = step.clip_scale;
    let bc1 = step.bias_correction1;
    let bc2 = step.bias_correction2;
    let step_number = step.step;
    var mask = 0u;
    for (var k = 0u; k < PER_INVOCATION; k++) {
        let i = c.x + lid + k * WIDTH;
        if (i >= c.y) {
            break;
        }
        let raw = grad[i];
        var w = param[i];
        var g = raw * scale;
        if (decoupled) {
            w = w * (1.0 - lr * decay);
        } else {
            g = g + decay * w;
        }
        let m = beta1 * state1[i] + (1.0 - beta1) * g;
        let v = beta2 * state2[i] + (1.0 - beta2) * g * g;
        state1[i] = m;
        state2[i] = v;
        let m_hat = m / bc1;
        let v_hat = v / bc2;
        w = w - lr * m_hat / (sqrt(v_hat) + eps);
        param[i] = w;
        mask |= bad_mask(raw, w);
    }
    flag(c, mask, step_number);
}

// RMSprop (not centred): v = alpha·v + (1 - alpha)·g², w -= lr·g / (sqrt(v) + eps),
// with optional momentum on the scaled step.
@compute @workgroup_size(64)
fn rmsprop(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = chunk_of(wid, nwg);
    let momentum = p.momentum;
    let decay = p.weight_decay;
    let alpha = p.alpha;
    let eps = p.eps;
    let lr = step.lr;
    let scale = step.clip_scale;
    let step_number = step.step;
    var mask = 0u;
    for (var k = 0u; k < PER_INVOCATION; k++) {
        let i = c.x + lid + k * WIDTH;
        if (i >= c.y) {
            break;
        }
        let raw = grad[i];
        var w = param[i];
        let g = raw * scale + decay * w;
        let v = alpha * state2[i] + (1.0 - alpha) * g * g;
        state2[i] = v;
        var update = g / (sqrt(v) + eps);
        if (momentum != 0.0) {
            let buf = momentum * state1[i] + update;
            state1[i] = buf;
            update = buf;
        }
        w = w - lr * update;
        param[i] = w;
        mask |= bad_mask(raw, w);
    }
    flag(c, mask, step_number);
}
