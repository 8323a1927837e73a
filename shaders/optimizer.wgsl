// Optimizer updates, one invocation per parameter element, following
// PyTorch's torch.optim formulas. CPU twin: reference::optim.
//
// The step state is written by the host before each step (learning rate and
// Adam's bias corrections, known without reading anything back) and by the
// clipping kernel (the global-norm scale, computed on the GPU).

struct OptimParams {
    len: u32,
    // Invocations per row of the dispatch grid.
    row_stride: u32,
    // SGD: 1 = Nesterov.
    nesterov: u32,
    // Adam: 1 = decoupled weight decay (AdamW).
    decoupled: u32,
    momentum: f32,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    alpha: f32,
    _pad0: f32,
    _pad1: f32,
}

// [learning rate, 1 - beta1^t, 1 - beta2^t, gradient scale from clipping]
struct StepState {
    lr: f32,
    bias_correction1: f32,
    bias_correction2: f32,
    clip_scale: f32,
}

@group(0) @binding(0) var<storage, read> p: OptimParams;
@group(0) @binding(1) var<storage, read> step: StepState;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> state1: array<f32>;
@group(0) @binding(5) var<storage, read_write> state2: array<f32>;

fn element(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * p.row_stride;
}

// SGD with momentum (PyTorch: buf = momentum·buf + g; Nesterov: g + momentum·buf)
// and L2 weight decay added to the gradient.
@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = element(gid);
    if (i >= p.len) {
        return;
    }
    var g = grad[i] * step.clip_scale + p.weight_decay * param[i];
    if (p.momentum != 0.0) {
        let buf = p.momentum * state1[i] + g;
        state1[i] = buf;
        g = select(buf, g + p.momentum * buf, p.nesterov == 1u);
    }
    param[i] = param[i] - step.lr * g;
}

// Adam and AdamW.
@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = element(gid);
    if (i >= p.len) {
        return;
    }
    var w = param[i];
    var g = grad[i] * step.clip_scale;
    if (p.decoupled == 1u) {
        w = w * (1.0 - step.lr * p.weight_decay);
    } else {
        g = g + p.weight_decay * w;
    }
    let m = p.beta1 * state1[i] + (1.0 - p.beta1) * g;
    let v = p.beta2 * state2[i] + (1.0 - p.beta2) * g * g;
    state1[i] = m;
    state2[i] = v;
    let m_hat = m / step.bias_correction1;
    let v_hat = v / step.bias_correction2;
    param[i] = w - step.lr * m_hat / (sqrt(v_hat) + p.eps);
}

// RMSprop (not centred): v = alpha·v + (1 - alpha)·g², w -= lr·g / (sqrt(v) + eps),
// with optional momentum on the scaled step.
@compute @workgroup_size(256)
fn rmsprop(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = element(gid);
    if (i >= p.len) {
        return;
    }
    let g = grad[i] * step.clip_scale + p.weight_decay * param[i];
    let v = p.alpha * state2[i] + (1.0 - p.alpha) * g * g;
    state2[i] = v;
    var update = g / (sqrt(v) + p.eps);
    if (p.momentum != 0.0) {
        let buf = p.momentum * state1[i] + update;
        state1[i] = buf;
        update = buf;
    }
    param[i] = param[i] - step.lr * update;
}
