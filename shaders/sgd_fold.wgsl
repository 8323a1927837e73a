// Plain SGD folded into the kernel that makes a tensor's gradients (the
// fused path's output layer, shaders/head4.wgsl, and its weight-gradient
// kernel, gpu::fused_sg), so a step needs no optimizer dispatch: the same
// rule as the optimizer's (shaders/optim_common.wgsl) on the parameter
// arena, which the including kernel declares as `arena`, a read_write
// array<vec4<f32>>. The kernel also flags what the step's finite check and
// the optimizer's dispatch would have: the tensors it reads and makes.
// CPU twin: reference::optim.

// The step state: the learning rate, the clipping scale (1 where this
// runs) and the step number.
@group(0) @binding(10) var<storage, read> step: StepState;
// The momentum buffers, laid out as the arena (read only with momentum on).
@group(0) @binding(11) var<storage, read_write> momentum_buf: array<vec4<f32>>;
// Per (layer, kind) slot: the first step that produced a non-finite value
// (see shaders/finite.wgsl).
@group(0) @binding(12) var<storage, read_write> first_bad: array<atomic<u32>>;
// Momentum, Nesterov and weight decay.
@group(0) @binding(13) var<storage, read> sgd: OptimParams;

// The step's settings, loaded once per invocation (on llvmpipe every
// storage load is a loop over the SIMD lanes).
struct SgdStep {
    lr: f32,
    scale: f32,
    momentum: f32,
    decay: f32,
    nesterov: bool,
}

fn sgd_step() -> SgdStep {
    return SgdStep(step.lr, step.clip_scale, sgd.momentum, sgd.weight_decay, sgd.nesterov == 1u);
}

// Updates the arena's vec4 `i` from its gradient `raw`: bit 0 of the
// result says the gradient was not finite, bit 1 the updated weights.
fn sgd_at(i: u32, raw: vec4<f32>, s: SgdStep) -> u32 {
    var buf = vec4<f32>(0.0);
    if (s.momentum != 0.0) {
        buf = momentum_buf[i];
    }
    let next = sgd_rule(arena[i], raw, buf, s.lr, s.scale, s.momentum, s.decay, s.nesterov);
    if (s.momentum != 0.0) {
        momentum_buf[i] = next.buf;
    }
    arena[i] = next.w;
    return bad_mask(raw, next.w);
}

// Keeps this step as the first non-finite one of `slot` if `bad`.
fn flag_slot(slot: u32, bad: bool) {
    if (bad) {
        atomicMin(&first_bad[slot], step.step);
    }
}
