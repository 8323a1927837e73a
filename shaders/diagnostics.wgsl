// Per-unit activation statistics of one layer over a batch, and their
// summary: activation mean and std, dead units (output exactly 0 for every
// example), saturated units (|f'(z)| below 1% of its maximum for more than
// half the batch) and a histogram of pre-activations. Assembled with the
// layer's activation. The sums of squares are taken of values divided by
// the largest |y|, so activations up to f32's limit give their true
// standard deviation instead of an overflow. Checked against host
// statistics in tests/gpu_training.rs.

// One launch covers every layer of a group (the hidden layers, which share
// an activation, or the output layer): y of the workgroup grid picks the
// layer, whose outputs, pre-activations and scratch lie at the offsets its
// entry gives (the hidden outputs alternate between two buffers).
struct LayerDiag {
    rows: u32,
    cols: u32,
    // 1% of max |f'| for this activation; 0 disables saturation counting.
    saturation_threshold: f32,
    // Offset of this layer's histogram in `hist` (in bins).
    hist_offset: u32,
    hist_min: f32,
    hist_max: f32,
    hist_bins: u32,
    // Where this layer's summary goes in `summary` (4 floats).
    summary_offset: u32,
    // Where its z starts in `z`, its y in `y0` (even parity) or `y1` (odd),
    // and its per-column scratch in `columns`.
    z_offset: u32,
    y_offset: u32,
    y_parity: u32,
    columns_offset: u32,
}

@group(0) @binding(0) var<storage, read> layers: array<LayerDiag>;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> y0: array<f32>;
@group(0) @binding(7) var<storage, read> y1: array<f32>;
// Per column: [Σy, Σ(y/m)², m = max |y|, nonzero count, saturated count].
@group(0) @binding(3) var<storage, read_write> columns: array<f32>;
@group(0) @binding(4) var<storage, read_write> hist: array<atomic<u32>>;

fn y_at(p: LayerDiag, i: u32) -> f32 {
    if (p.y_parity == 0u) {
        return y0[p.y_offset + i];
    }
    return y1[p.y_offset + i];
}

@compute @workgroup_size(64)
fn column_stats(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = layers[gid.y];
    let c = gid.x;
    if (c >= p.cols) {
        return;
    }
    var m = 0.0;
    for (var r = 0u; r < p.rows; r = r + 1u) {
        m = max(m, abs(y_at(p, r * p.cols + c)));
    }
    let inv = select(0.0, 1.0 / m, m > 0.0);
    var s = 0.0;
    var s2 = 0.0;
    var nonzero = 0u;
    var saturated = 0u;
    let width = (p.hist_max - p.hist_min) / f32(p.hist_bins);
    for (var r = 0u; r < p.rows; r = r + 1u) {
        let i = r * p.cols + c;
        let yv = y_at(p, i);
        let zv = z[p.z_offset + i];
        s = s + yv;
        let u = yv * inv;
        s2 = s2 + u * u;
        nonzero = nonzero + select(0u, 1u, yv != 0.0);
        if (abs(activation_derivative(zv)) < p.saturation_threshold) {
            saturated = saturated + 1u;
        }
        // Bin 0 is underflow, bin hist_bins + 1 overflow.
        var bin = 0u;
        if (zv >= p.hist_max) {
            bin = p.hist_bins + 1u;
        } else if (zv >= p.hist_min) {
            bin = min(u32((zv - p.hist_min) / width), p.hist_bins - 1u) + 1u;
        }
        atomicAdd(&hist[p.hist_offset + bin], 1u);
    }
    let at = p.columns_offset + 5u * c;
    columns[at] = s;
    columns[at + 1u] = s2;
    columns[at + 2u] = m;
    columns[at + 3u] = f32(nonzero);
    columns[at + 4u] = f32(saturated);
}

@group(0) @binding(5) var<storage, read> columns_in: array<f32>;
// [mean, std, dead fraction, saturated fraction] per layer.
@group(0) @binding(6) var<storage, read_write> summary: array<f32>;

// One invocation per layer sums its columns in order.
@compute @workgroup_size(1)
fn summarize(@builtin(workgroup_id) wg: vec3<u32>) {
    let p = layers[wg.x];
    let base = p.columns_offset;
    var big = 0.0;
    for (var c = 0u; c < p.cols; c = c + 1u) {
        big = max(big, columns_in[base + 5u * c + 2u]);
    }
    var s = 0.0;
    var s2 = 0.0;
    var dead = 0.0;
    var saturated = 0.0;
    for (var c = 0u; c < p.cols; c = c + 1u) {
        s = s + columns_in[base + 5u * c];
        // Σ(y/big)² from the column's Σ(y/m)².
        let k = select(0.0, columns_in[base + 5u * c + 2u] / big, big > 0.0);
        s2 = s2 + columns_in[base + 5u * c + 1u] * k * k;
        dead = dead + select(0.0, 1.0, columns_in[base + 5u * c + 3u] == 0.0);
        saturated = saturated + select(0.0, 1.0, columns_in[base + 5u * c + 4u] * 2.0 > f32(p.rows));
    }
    let n = max(f32(p.rows * p.cols), 1.0);
    let mean = s / n;
    var sd = 0.0;
    if (big > 0.0) {
        let scaled_mean = mean / big;
        sd = big * sqrt(max(s2 / n - scaled_mean * scaled_mean, 0.0));
    }
    let o = p.summary_offset;
    summary[o] = mean;
    summary[o + 1u] = sd;
    summary[o + 2u] = dead / max(f32(p.cols), 1.0);
    summary[o + 3u] = saturated / max(f32(p.cols), 1.0);
}
