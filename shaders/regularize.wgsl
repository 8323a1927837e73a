// Dropout (inverted, or alpha dropout for SELU nets) and residual
// connections, applied after a hidden layer's activation:
//   out = skip + drop(y)        (skip = the layer's input when residual, else 0)
// and their backward:
//   dy = d_out * drop'(i)       and, when residual, d_skip += d_out.
// The keep mask is a hash of (seed, step, element): nothing is stored, the
// backward recomputes it, and the CPU twin (reference::mlp) computes the
// same bits. The step number is read from the trainer's step state, which
// the host writes before each step, so a step's passes are the same every
// step. CPU twin: reference::mlp::dropout_keep.

struct RegParams {
    len: u32,
    row_stride: u32,
    // Seed of this layer's masks.
    seed: u32,
    _pad0: u32,
    // Keep an element when (hash >> 8) >= drop_threshold (p·2^24); 0 = no dropout.
    drop_threshold: u32,
    // 1 when the layer adds its input (residual).
    residual: u32,
    // Inverted dropout: kept elements times `scale` (1/(1-p)). Alpha dropout:
    // kept y and dropped alpha_prime both go through a·v + b.
    alpha: u32,
    _pad: u32,
    scale: f32,
    alpha_prime: f32,
    affine_a: f32,
    affine_b: f32,
}

@group(0) @binding(0) var<storage, read> p: RegParams;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> skip: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// The trainer's step state (trainer::StepState); its fifth word is the step
// being taken. Passes that drop nothing may bind any 32 bytes.
@group(0) @binding(17) var<storage, read> step_state: array<u32, 8>;

// murmur3's finaliser over the mixed seed, step and index.
fn keep_hash(i: u32) -> u32 {
    var h = p.seed ^ (i * 0x9e3779b9u) ^ (step_state[4] * 0x85ebca6bu);
    h = h ^ (h >> 16u);
    h = h * 0x85ebca6bu;
    h = h ^ (h >> 13u);
    h = h * 0xc2b2ae35u;
    h = h ^ (h >> 16u);
    return h;
}

fn kept(i: u32) -> bool {
    return (keep_hash(i) >> 8u) >= p.drop_threshold;
}

fn index(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * p.row_stride;
}

@compute @workgroup_size(256)
fn regularize_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i >= p.len) {
        return;
    }
    var v = y[i];
    if (p.drop_threshold > 0u) {
        if (p.alpha == 1u) {
            v = p.affine_a * select(p.alpha_prime, v, kept(i)) + p.affine_b;
        } else {
            v = select(0.0, v * p.scale, kept(i));
        }
    }
    if (p.residual == 1u) {
        v = v + skip[i];
    }
    out[i] = v;
}

@group(0) @binding(4) var<storage, read> d_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> d_y: array<f32>;

// d_y = d_out · drop'(i): the scale for kept elements, 0 for dropped ones.
@compute @workgroup_size(256)
fn dropout_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i >= p.len) {
        return;
    }
    var factor = p.scale;
    if (p.alpha == 1u) {
        factor = p.affine_a;
    }
    d_y[i] = select(0.0, d_out[i] * factor, kept(i));
}

@group(0) @binding(6) var<storage, read> d_more: array<f32>;
@group(0) @binding(7) var<storage, read_write> d_skip: array<f32>;

// The residual path of the backward: d_skip += d_more.
@compute @workgroup_size(256)
fn residual_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i >= p.len) {
        return;
    }
    d_skip[i] = d_skip[i] + d_more[i];
}

// Learned PReLU (slopes in a buffer: one per layer, or one per unit).
// y = z > 0 ? z : a·z. Backward (PyTorch's conventions at 0): dz = dy for
// z > 0, else a·dy; da = Σ over the batch (and units, per layer) of dy·z
// where z <= 0. CPU twin: reference::mlp (learned slopes).

struct PreluParams {
    rows: u32,
    cols: u32,
    // 1 when every unit has its own slope.
    per_unit: u32,
    // Invocations per row of the forward's dispatch grid.
    row_stride: u32,
}

@group(0) @binding(8) var<storage, read> pp: PreluParams;
@group(0) @binding(9) var<storage, read> slopes: array<f32>;
@group(0) @binding(10) var<storage, read> pz: array<f32>;
@group(0) @binding(11) var<storage, read_write> py: array<f32>;

fn slope_of(c: u32) -> f32 {
    return slopes[select(0u, c, pp.per_unit == 1u)];
}

@compute @workgroup_size(256)
fn prelu_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * pp.row_stride;
    if (i >= pp.rows * pp.cols) {
        return;
    }
    let z = pz[i];
    py[i] = select(slope_of(i % pp.cols) * z, z, z > 0.0);
}

@group(0) @binding(12) var<storage, read> pdy: array<f32>;
@group(0) @binding(13) var<storage, read_write> pdz: array<f32>;
// Per unit: Σ over the batch of dy·z where z <= 0.
@group(0) @binding(14) var<storage, read_write> pda_units: array<f32>;

// One invocation per unit, looping over the batch in order (deterministic).
@compute @workgroup_size(64)
fn prelu_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= pp.cols) {
        return;
    }
    let a = slope_of(c);
    var da = 0.0;
    for (var r = 0u; r < pp.rows; r = r + 1u) {
        let i = r * pp.cols + c;
        let z = pz[i];
        let g = pdy[i];
        if (z > 0.0) {
            pdz[i] = g;
        } else {
            pdz[i] = a * g;
            da = da + g * z;
        }
    }
    pda_units[c] = da;
}

@group(0) @binding(15) var<storage, read> pda_in: array<f32>;
@group(0) @binding(16) var<storage, read_write> pda: array<f32>;

// The slope gradient: per unit as is, per layer summed over units in order.
@compute @workgroup_size(1)
fn prelu_slope_grad() {
    if (pp.per_unit == 1u) {
        for (var c = 0u; c < pp.cols; c = c + 1u) {
            pda[c] = pda_in[c];
        }
    } else {
        var s = 0.0;
        for (var c = 0u; c < pp.cols; c = c + 1u) {
            s = s + pda_in[c];
        }
        pda[0] = s;
    }
}
