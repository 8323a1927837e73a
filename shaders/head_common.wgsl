// What the two forms of the fused path's output-layer kernel share
// (shaders/head.wgsl, scalar, and shaders/head4.wgsl, vec4): parameters,
// the per-row bindings and the batch's statistics.

struct HeadParams {
    rows: u32,
    classes: u32,
    // Inputs of the output layer (the stack's width).
    width: u32,
    kind: u32,
    grad_scale: f32,
    // The weight [classes, width] and the bias in the parameter arena, and
    // their gradients in the gradient arena, in floats.
    w_off: u32,
    b_off: u32,
    dw_off: u32,
    db_off: u32,
    // The output layer's index (its finite-check slots start at 3 layer).
    layer: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> p: HeadParams;
// The last hidden layer's output, [rows, width].
@group(0) @binding(3) var<storage, read> labels: array<f32>;
@group(0) @binding(4) var<storage, read_write> logits: array<f32>;
@group(0) @binding(5) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(6) var<storage, read_write> row_stats: array<f32>;
// [batch mean loss, batch accuracy] at 0; running [loss sum, correct
// count, rows] since the last clear at STATS_TOTALS.
@group(0) @binding(9) var<storage, read_write> stats: array<f32>;

// Invocations of the one workgroup.
const WIDTH: u32 = 64u;
// Where the running totals start in `stats` (a view's alignment).
const STATS_TOTALS: u32 = 64u;

// The batch's loss and accuracy, summed over rows in order (one invocation).
fn batch_stats(rows: u32) {
    var loss = 0.0;
    var correct = 0.0;
    for (var r = 0u; r < rows; r++) {
        loss += row_stats[2u * r];
        correct += row_stats[2u * r + 1u];
    }
    let n = max(f32(rows), 1.0);
    stats[0] = loss / n;
    stats[1] = correct / n;
    stats[STATS_TOTALS] += loss;
    stats[STATS_TOTALS + 1u] += correct;
    stats[STATS_TOTALS + 2u] += f32(rows);
}
