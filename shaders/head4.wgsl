// The output layer of a training step in one dispatch, for the fully fused
// path where the hidden width is a multiple of 4 (shaders/head.wgsl is the
// scalar twin for other widths): logits = y_last · Wᵀ + b, the loss and the gradient of the logits
// (shaders/loss_row.wgsl), the batch's loss and accuracy, then dW = dlogitsᵀ
// · y_last and db (into the gradient arena) and dL/dy_last = dlogits · W
// (which the fused stack's backward starts from). CPU twin: reference::mlp.
//
// One workgroup: its invocations share blocks of outputs in each phase
// (logits, then the rows' losses, then the gradients), with a storage
// barrier between phases; every
// sum runs over rows, inputs or classes in order, so runs are
// bit-identical. The output layer is small next to the stack (classes ·
// width · batch multiply-adds, three times), and one dispatch replaces the
// eight passes (GEMMs, transposes, the loss and its reduction) of the
// layered output layer.

// The parameters, the per-row bindings and batch_stats: shaders/head_common.wgsl.

// The last hidden layer's output, [rows, width / 4] vec4s.
@group(0) @binding(1) var<storage, read> y_last: array<vec4<f32>>;
// Read_write for head_step_sgd's update (shaders/sgd_fold.wgsl).
@group(0) @binding(2) var<storage, read_write> arena: array<vec4<f32>>;
// dL/dy_last, [rows, width / 4] vec4s.
@group(0) @binding(7) var<storage, read_write> dy_last: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> grads: array<vec4<f32>>;

// The head where the width is a multiple of 4: everything the loops load is
// a vec4 (on llvmpipe each load is a loop over the SIMD lanes whatever its
// width, so loads per multiply-add are the cost). Arena offsets are
// multiples of 64 floats, so the weight's rows start on vec4s.
@compute @workgroup_size(64)
fn head_step(@builtin(local_invocation_index) lid: u32) {
    _ = head_forward(lid);
    head_backward(lid);
    if (lid == 0u) {
        batch_stats(p.rows);
    }
}

// head_step with plain SGD folded in (shaders/sgd_fold.wgsl): once every
// gradient is made and dL/dy_last has read the old weights, the output
// layer's weight and bias are updated in the arena, and what the step's
// finite check and the optimizer's dispatch would flag is flagged: the last
// hidden layer's output, the logits, the losses, the output layer's
// gradients and its updated parameters.
@compute @workgroup_size(64)
fn head_step_sgd(@builtin(local_invocation_index) lid: u32) {
    let seen = head_forward(lid);
    head_backward(lid);
    storageBarrier();
    workgroupBarrier();
    let w4 = p.width / 4u;
    let rule = sgd_step();
    var mask = 0u;
    for (var i = lid; i < p.classes * w4; i += WIDTH) {
        mask |= sgd_at(p.w_off / 4u + i, grads[p.dw_off / 4u + i], rule);
    }
    for (var q = lid; q < (p.classes + 3u) / 4u; q += WIDTH) {
        mask |= sgd_at(p.b_off / 4u + q, grads[p.db_off / 4u + q], rule);
    }
    let l = p.layer;
    flag_slot(3u * (l - 1u), (seen & 1u) != 0u);
    flag_slot(3u * l, (seen & 2u) != 0u);
    flag_slot(3u * l + 1u, (mask & 1u) != 0u);
    flag_slot(3u * l + 2u, (mask & 2u) != 0u);
    if (lid == 0u) {
        batch_stats(p.rows);
        var bad = false;
        for (var r = 0u; r < p.rows; r++) {
            bad = bad | nonfinite4(vec4<f32>(row_stats[2u * r]));
        }
        flag_slot(3u * (l + 1u), bad);
    }
}

// Each invocation of a phase owns a block of 4 outputs that share one
// operand, loaded once for the 4: 5 loads per term of their sums instead
// of 8 (on llvmpipe the loads are the cost). Outputs past the edge are
// computed on the last real index and not stored. The 4 sums are named,
// not an array indexed in a loop: SwiftShader (the browser's software
// adapter) computed wrong gradients from that form (the playground's step
// check caught it; lavapipe was right).

// Logit j of row r from the block's accumulator, stored where j is real;
// bit 1 if it is not finite.
fn store_logit(r: u32, j: u32, z: vec4<f32>) -> u32 {
    if (j >= p.classes) {
        return 0u;
    }
    let b = p.b_off + j;
    let logit = arena[b / 4u][b % 4u] + ((z.x + z.y) + (z.z + z.w));
    logits[r * p.classes + j] = logit;
    return select(0u, 2u, nonfinite4(vec4<f32>(logit)));
}

// Phase 1: the logits (per row, a block of 4 classes), then each row's
// loss and dlogits. Bit 0 of the result: an input was not finite; bit 1:
// a logit.
fn head_forward(lid: u32) -> u32 {
    let rows = p.rows;
    let classes = p.classes;
    let w4 = p.width / 4u;
    let w_off4 = p.w_off / 4u;
    let blocks = (classes + 3u) / 4u;
    var seen = 0u;
    for (var item = lid; item < rows * blocks; item += WIDTH) {
        let r = item / blocks;
        let j = (item % blocks) * 4u;
        let w0 = w_off4 + j * w4;
        let w1 = w_off4 + min(j + 1u, classes - 1u) * w4;
        let w2 = w_off4 + min(j + 2u, classes - 1u) * w4;
        let w3 = w_off4 + min(j + 3u, classes - 1u) * w4;
        var z0 = vec4<f32>(0.0);
        var z1 = vec4<f32>(0.0);
        var z2 = vec4<f32>(0.0);
        var z3 = vec4<f32>(0.0);
        for (var k4 = 0u; k4 < w4; k4++) {
            let y = y_last[r * w4 + k4];
            seen |= select(0u, 1u, nonfinite4(y));
            z0 = fma(y, arena[w0 + k4], z0);
            z1 = fma(y, arena[w1 + k4], z1);
            z2 = fma(y, arena[w2 + k4], z2);
            z3 = fma(y, arena[w3 + k4], z3);
        }
        seen |= store_logit(r, j, z0) | store_logit(r, j + 1u, z1);
        seen |= store_logit(r, j + 2u, z2) | store_logit(r, j + 3u, z3);
    }
    storageBarrier();
    workgroupBarrier();
    for (var r = lid; r < rows; r += WIDTH) {
        loss_row(r);
    }
    return seen;
}

// The block of 4 input vec4s from k0, the last ones clamped to the width
// (a clamped one equals the one before it and is not stored).
fn block_of(k0: u32, w4: u32) -> vec4<u32> {
    return min(vec4<u32>(k0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(w4 - 1u));
}

// A block's 4 sums.
struct Block4 {
    v0: vec4<f32>,
    v1: vec4<f32>,
    v2: vec4<f32>,
    v3: vec4<f32>,
}

// One term of a block's sums over rows: d times the last hidden layer's
// output at row offset `at`, input vec4s k.
fn block_fma(s: Block4, d: vec4<f32>, at: u32, k: vec4<u32>) -> Block4 {
    return Block4(
        fma(d, y_last[at + k.x], s.v0),
        fma(d, y_last[at + k.y], s.v1),
        fma(d, y_last[at + k.z], s.v2),
        fma(d, y_last[at + k.w], s.v3),
    );
}

// One term of a block's sums over classes: d times the weight row at `at`,
// input vec4s k.
fn block_fma_w(s: Block4, d: vec4<f32>, at: u32, k: vec4<u32>) -> Block4 {
    return Block4(
        fma(d, arena[at + k.x], s.v0),
        fma(d, arena[at + k.y], s.v1),
        fma(d, arena[at + k.z], s.v2),
        fma(d, arena[at + k.w], s.v3),
    );
}

// Phase 2, after phase 1's rows are in: the gradients (per class, a block
// of 4 input vec4s; each element a sum over rows in order) and dL/dy_last
// from the weights (per row, a block of 4 input vec4s).
fn head_backward(lid: u32) {
    let rows = p.rows;
    let classes = p.classes;
    let w4 = p.width / 4u;
    let w_off4 = p.w_off / 4u;
    let blocks = (w4 + 3u) / 4u;
    storageBarrier();
    workgroupBarrier();
    for (var item = lid; item < classes * blocks; item += WIDTH) {
        let j = item / blocks;
        let k = block_of((item % blocks) * 4u, w4);
        var s = Block4();
        for (var r = 0u; r < rows; r++) {
            s = block_fma(s, vec4<f32>(dlogits[r * classes + j]), r * w4, k);
        }
        let at = p.dw_off / 4u + j * w4 + k.x;
        grads[at] = s.v0;
        if (k.y > k.x) {
            grads[at + 1u] = s.v1;
        }
        if (k.z > k.y) {
            grads[at + 2u] = s.v2;
        }
        if (k.w > k.z) {
            grads[at + 3u] = s.v3;
        }
    }
    // The bias gradient, four classes a vec4 (zeros past the last class,
    // inside the bias's aligned block).
    for (var q = lid; q < (classes + 3u) / 4u; q += WIDTH) {
        var s = vec4<f32>(0.0);
        for (var r = 0u; r < rows; r++) {
            for (var e = 0u; e < 4u; e++) {
                let j = 4u * q + e;
                if (j < classes) {
                    s[e] += dlogits[r * classes + j];
                }
            }
        }
        grads[p.db_off / 4u + q] = s;
    }
    for (var item = lid; item < rows * blocks; item += WIDTH) {
        let r = item / blocks;
        let k = block_of((item % blocks) * 4u, w4);
        var s = Block4();
        for (var j = 0u; j < classes; j++) {
            s = block_fma_w(s, vec4<f32>(dlogits[r * classes + j]), w_off4 + j * w4, k);
        }
        let at = r * w4 + k.x;
        dy_last[at] = s.v0;
        if (k.y > k.x) {
            dy_last[at + 1u] = s.v1;
        }
        if (k.z > k.y) {
            dy_last[at + 2u] = s.v2;
        }
        if (k.w > k.z) {
            dy_last[at + 3u] = s.v3;
        }
    }
}
