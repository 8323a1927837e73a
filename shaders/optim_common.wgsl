// What the optimizer's dispatch (shaders/optimizer.wgsl) shares with the
// kernels that fold plain SGD into the step's last pass over a tensor (the
// fused path's output layer, shaders/head4.wgsl, and its weight-gradient
// kernel, gpu::fused_sg): the settings, the step state, the SGD rule and
// the finite test. One rule, so an update folded into another kernel is the
// update the optimizer's dispatch makes.

struct OptimParams {
    // Chunks in the table.
    chunks: u32,
    _pad0: u32,
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
    _pad1: u32,
    _pad2: u32,
}

// [learning rate, 1 - beta1^t, 1 - beta2^t, gradient scale from clipping,
// step number, batch offset, last row of the training split]
struct StepState {
    lr: f32,
    bias_correction1: f32,
    bias_correction2: f32,
    clip_scale: f32,
    step: u32,
    batch_offset: u32,
    // The training split's last row (a gathering forward clamps to it).
    last_row: u32,
    _pad1: u32,
}

// PyTorch's SGD on 4 elements: weight decay added to the gradient (scaled
// by clipping), then momentum (buf = momentum·buf + g; Nesterov: g +
// momentum·buf). `buf` is the momentum buffer's old value (read only
// where momentum is on); the result holds the new weights and buffer.
struct SgdNext {
    w: vec4<f32>,
    buf: vec4<f32>,
}

fn sgd_rule(w: vec4<f32>, raw: vec4<f32>, buf: vec4<f32>, lr: f32, scale: f32, momentum: f32, decay: f32, nesterov: bool) -> SgdNext {
    var g = raw * scale + decay * w;
    var b = buf;
    if (momentum != 0.0) {
        b = momentum * buf + g;
        g = select(b, g + momentum * b, nesterov);
    }
    return SgdNext(w - lr * g, b);
}

// Whether any of `v` is infinite or NaN (an all-ones exponent).
fn nonfinite4(v: vec4<f32>) -> bool {
    let inf = vec4<u32>(0x7f800000u);
    return any((bitcast<vec4<u32>>(v) & inf) == inf);
}

// Bit 0: a non-finite gradient; bit 1: a non-finite updated parameter.
fn bad_mask(g: vec4<f32>, w: vec4<f32>) -> u32 {
    return select(0u, 1u, nonfinite4(g)) | select(0u, 2u, nonfinite4(w));
}
