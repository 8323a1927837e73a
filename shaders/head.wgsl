// The output layer of a training step in one dispatch, for the fully fused
// path: logits = y_last · Wᵀ + b, the loss and the gradient of the logits
// (shaders/loss_row.wgsl), the batch's loss and accuracy, then dW = dlogitsᵀ
// · y_last and db (into the gradient arena) and dL/dy_last = dlogits · W
// (which the fused stack's backward starts from). CPU twin: reference::mlp.
//
// One workgroup: its invocations share the rows in the first phase and the
// gradients' elements in the second, with a storage barrier between; every
// sum runs over rows, inputs or classes in order, so runs are
// bit-identical. The output layer is small next to the stack (classes ·
// width · batch multiply-adds, three times), and one dispatch replaces the
// eight passes (GEMMs, transposes, the loss and its reduction) of the
// layered output layer.

// The parameters, the per-row bindings and batch_stats: shaders/head_common.wgsl.

// The last hidden layer's output, [rows, width].
@group(0) @binding(1) var<storage, read> y_last: array<f32>;
@group(0) @binding(2) var<storage, read> arena: array<f32>;
// dL/dy_last, [rows, width].
@group(0) @binding(7) var<storage, read_write> dy_last: array<f32>;
@group(0) @binding(8) var<storage, read_write> grads: array<f32>;

@compute @workgroup_size(64)
fn head_step(@builtin(local_invocation_index) lid: u32) {
    let rows = p.rows;
    let classes = p.classes;
    let width = p.width;
    let w_off = p.w_off;
    // Phase 1: each invocation's rows: logits, loss, dlogits.
    for (var r = lid; r < rows; r += WIDTH) {
        let y_row = r * width;
        for (var j = 0u; j < classes; j++) {
            let w_row = w_off + j * width;
            var z = arena[p.b_off + j];
            for (var k = 0u; k < width; k++) {
                z = fma(y_last[y_row + k], arena[w_row + k], z);
            }
            logits[r * classes + j] = z;
        }
        loss_row(r);
    }
    storageBarrier();
    workgroupBarrier();
    // Phase 2: the gradients, each element a sum in order.
    for (var i = lid; i < classes * width; i += WIDTH) {
        let j = i / width;
        let k = i % width;
        var s = 0.0;
        for (var r = 0u; r < rows; r++) {
            s = fma(dlogits[r * classes + j], y_last[r * width + k], s);
        }
        grads[p.dw_off + i] = s;
    }
    for (var j = lid; j < classes; j += WIDTH) {
        var s = 0.0;
        for (var r = 0u; r < rows; r++) {
            s += dlogits[r * classes + j];
        }
        grads[p.db_off + j] = s;
    }
    for (var i = lid; i < rows * width; i += WIDTH) {
        let r = i / width;
        let k = i % width;
        var s = 0.0;
        for (var j = 0u; j < classes; j++) {
            s = fma(dlogits[r * classes + j], arena[w_off + j * width + k], s);
        }
        dy_last[i] = s;
    }
    if (lid == 0u) {
        batch_stats(rows);
    }
}
