// LayerNorm over each row's features (as torch.nn.LayerNorm) and
// BatchNorm1d over the batch, per feature (as torch.nn.BatchNorm1d: batch
// statistics and running estimates in training, the running estimates in
// evaluation), both with eps 1e-5 and a learnable scale and shift. Placed
// before the activation (the layer's linear part writes z, this writes
// n = norm(z) and y = f(n)) or after it (this normalises y). Assembled with
// the layer's activation.
// CPU twin: reference::mlp (layer_norm, batch_norm).

struct NormParams {
    rows: u32,
    cols: u32,
    // 1: before the activation (also apply f, keep n for f'); 0: after.
    before: u32,
    eps: f32,
    // BatchNorm: 1 in training (batch statistics, running estimates
    // updated), 0 in evaluation (running estimates used).
    training: u32,
    momentum: f32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read> p: NormParams;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read> a: array<f32>;
// The normalised input x̂ and each row's 1/σ, kept for the backward.
@group(0) @binding(4) var<storage, read_write> xhat: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd: array<f32>;
// n = γ·x̂ + β (before: the activation's input).
@group(0) @binding(6) var<storage, read_write> n_out: array<f32>;
// before: f(n); after: unused.
@group(0) @binding(7) var<storage, read_write> y_out: array<f32>;

// The mean and biased variance of a[start + k·stride] for k < count, summed
// in order of k (deterministic), two passes.
fn moments(start: u32, stride: u32, count: u32) -> vec2<f32> {
    var mean = 0.0;
    for (var k = 0u; k < count; k = k + 1u) {
        mean = mean + a[start + k * stride];
    }
    mean = mean / f32(count);
    var variance = 0.0;
    for (var k = 0u; k < count; k = k + 1u) {
        let d = a[start + k * stride] - mean;
        variance = variance + d * d;
    }
    return vec2<f32>(mean, variance / f32(count));
}

// One invocation per row; sums in column order (deterministic).
@compute @workgroup_size(64)
fn layernorm_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    let m = moments(base, 1u, p.cols);
    let mean = m.x;
    let s = 1.0 / sqrt(m.y + p.eps);
    rstd[r] = s;
    for (var c = 0u; c < p.cols; c = c + 1u) {
        let xh = (a[base + c] - mean) * s;
        xhat[base + c] = xh;
        let nv = gamma[c] * xh + beta[c];
        n_out[base + c] = nv;
        if (p.before == 1u) {
            y_out[base + c] = activation(nv);
        }
    }
}

@group(0) @binding(8) var<storage, read> g_out: array<f32>;
// dL/dn (before: dy·f'(n)), kept for the scale and shift gradients.
@group(0) @binding(9) var<storage, read_write> dn: array<f32>;
@group(0) @binding(10) var<storage, read_write> d_in: array<f32>;
@group(0) @binding(11) var<storage, read> n_in: array<f32>;
@group(0) @binding(12) var<storage, read> xhat_in: array<f32>;
@group(0) @binding(13) var<storage, read> rstd_in: array<f32>;

// dx = (1/σ)·(g − mean(g) − x̂·mean(g·x̂)) with g = dn·γ, per row.
@compute @workgroup_size(64)
fn layernorm_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    var mean_g = 0.0;
    var mean_gx = 0.0;
    for (var c = 0u; c < p.cols; c = c + 1u) {
        var d = g_out[base + c];
        if (p.before == 1u) {
            d = d * activation_derivative(n_in[base + c]);
        }
        dn[base + c] = d;
        let g = d * gamma[c];
        mean_g = mean_g + g;
        mean_gx = mean_gx + g * xhat_in[base + c];
    }
    mean_g = mean_g / f32(p.cols);
    mean_gx = mean_gx / f32(p.cols);
    let s = rstd_in[r];
    for (var c = 0u; c < p.cols; c = c + 1u) {
        let g = dn[base + c] * gamma[c];
        d_in[base + c] = s * (g - mean_g - xhat_in[base + c] * mean_gx);
    }
}

@group(0) @binding(14) var<storage, read> dn_in: array<f32>;
@group(0) @binding(15) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(16) var<storage, read_write> dbeta: array<f32>;

// dγ = Σ_rows dn·x̂, dβ = Σ_rows dn, one invocation per feature.
@compute @workgroup_size(64)
fn layernorm_param_grads(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.cols) {
        return;
    }
    var sg = 0.0;
    var sb = 0.0;
    for (var r = 0u; r < p.rows; r = r + 1u) {
        let i = r * p.cols + c;
        sg = sg + dn_in[i] * xhat_in[i];
        sb = sb + dn_in[i];
    }
    dgamma[c] = sg;
    dbeta[c] = sb;
}

@group(0) @binding(17) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(18) var<storage, read_write> running_var: array<f32>;

// The batch mean (or, in evaluation, the running mean) per feature, for
// batchnorm_apply.
@group(0) @binding(19) var<storage, read_write> bn_mean: array<f32>;
@group(0) @binding(20) var<storage, read> bn_mean_in: array<f32>;

// BatchNorm1d forward, first pass: one invocation per feature; sums in row
// order (deterministic). Training: biased batch variance for x̂, unbiased
// for the running estimate, running = (1 - momentum)·running +
// momentum·batch. Writes each feature's mean and 1/σ.
@compute @workgroup_size(64)
fn batchnorm_stats(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.cols) {
        return;
    }
    var mean = 0.0;
    var s = 0.0;
    if (p.training == 1u) {
        let m = moments(c, p.cols, p.rows);
        mean = m.x;
        let variance = m.y;
        s = 1.0 / sqrt(variance + p.eps);
        // The host refuses training batches of one row.
        let unbiased = variance * f32(p.rows) / f32(max(p.rows, 2u) - 1u);
        running_mean[c] = (1.0 - p.momentum) * running_mean[c] + p.momentum * mean;
        running_var[c] = (1.0 - p.momentum) * running_var[c] + p.momentum * unbiased;
    } else {
        mean = running_mean[c];
        s = 1.0 / sqrt(running_var[c] + p.eps);
    }
    bn_mean[c] = mean;
    rstd[c] = s;
}

// BatchNorm1d forward, second pass: one invocation per element (x along
// the features, y and z along the rows): x̂, n = γ·x̂ + β and, before the
// activation, y = f(n). (A single pass looping over the rows inside each
// feature's invocation measured up to 200x slower on lavapipe for one
// workgroup of features and 32 rows or fewer.)
@compute @workgroup_size(64)
fn batchnorm_apply(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let r = gid.y + gid.z * 65535u;
    if (c >= p.cols || r >= p.rows) {
        return;
    }
    let i = r * p.cols + c;
    let xh = (a[i] - bn_mean_in[c]) * rstd_in[c];
    xhat[i] = xh;
    let nv = gamma[c] * xh + beta[c];
    n_out[i] = nv;
    if (p.before == 1u) {
        y_out[i] = activation(nv);
    }
}

// BatchNorm1d backward (training statistics), one invocation per feature:
// dn = dy·f'(n) (before) or dy (after), dγ = Σ dn·x̂, dβ = Σ dn, and
// dx = γ/σ·(dn − dβ/N − x̂·dγ/N).
@compute @workgroup_size(64)
fn batchnorm_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.cols) {
        return;
    }
    var sg = 0.0;
    var sb = 0.0;
    for (var r = 0u; r < p.rows; r = r + 1u) {
        let i = r * p.cols + c;
        var d = g_out[i];
        if (p.before == 1u) {
            d = d * activation_derivative(n_in[i]);
        }
        dn[i] = d;
        sg = sg + d * xhat_in[i];
        sb = sb + d;
    }
    dgamma[c] = sg;
    dbeta[c] = sb;
    let k = gamma[c] * rstd_in[c];
    let mb = sb / f32(p.rows);
    let mg = sg / f32(p.rows);
    for (var r = 0u; r < p.rows; r = r + 1u) {
        let i = r * p.cols + c;
        d_in[i] = k * (dn[i] - mb - xhat_in[i] * mg);
    }
}
