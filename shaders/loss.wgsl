// Output heads and their losses, fused with the gradient of the logits.
// CPU twin: reference::mlp (loss_and_grad).
//
// kind 0: softmax + cross-entropy over `classes` logits, label = class index.
// kind 1: sigmoid + binary cross-entropy with logits; the target is the label
//         itself when classes == 1, else the one-hot of the label.
// kind 2: identity + mean squared error, targets as for kind 1.
// Losses are means over the batch (and over outputs for kinds 1 and 2), as
// PyTorch's default reduction; `grad_scale` is 1 / rows (1 / (rows·classes)
// for kinds 1 and 2), applied here so the backward needs no extra pass.

struct LossParams {
    rows: u32,
    classes: u32,
    kind: u32,
    grad_scale: f32,
}

@group(0) @binding(0) var<storage, read> p: LossParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<f32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
// Per row: [loss, correct (0 or 1)].
@group(0) @binding(4) var<storage, read_write> row_stats: array<f32>;

// One invocation per batch row (the per-row maths: shaders/loss_row.wgsl).
@compute @workgroup_size(64)
fn loss_forward_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.rows) {
        return;
    }
    loss_row(gid.x);
}

struct ReduceParams {
    rows: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(8) var<storage, read> rp: ReduceParams;
@group(0) @binding(5) var<storage, read> rows_in: array<f32>;
// [batch mean loss, batch accuracy]
@group(0) @binding(6) var<storage, read_write> step_stats: array<f32>;
// Running [loss sum, correct count, rows] since the last clear.
@group(0) @binding(7) var<storage, read_write> totals: array<f32>;

// A single invocation sums the rows in order: deterministic, and the batch
// is small next to the GEMMs.
@compute @workgroup_size(1)
fn loss_reduce() {
    var loss = 0.0;
    var correct = 0.0;
    for (var r = 0u; r < rp.rows; r = r + 1u) {
        loss = loss + rows_in[2u * r];
        correct = correct + rows_in[2u * r + 1u];
    }
    let n = max(f32(rp.rows), 1.0);
    step_stats[0] = loss / n;
    step_stats[1] = correct / n;
    totals[0] = totals[0] + loss;
    totals[1] = totals[1] + correct;
    totals[2] = totals[2] + f32(rp.rows);
}
