// One batch row's loss and the gradient of its logits, shared by
// shaders/loss.wgsl and shaders/head.wgsl. CPU twin: reference::mlp
// (loss_and_grad). The including kernel declares `p` (with `classes`,
// `kind` and `grad_scale`), `logits`, `labels`, `dlogits` and `row_stats`
// (per row: [loss, correct (0 or 1)]); heads and kinds as
// shaders/loss.wgsl describes.

fn target_of(j: u32, label: u32) -> f32 {
    if (p.classes == 1u) {
        return f32(label);
    }
    return select(0.0, 1.0, j == label);
}

// The loss of batch row r and the gradient of its logits.
fn loss_row(r: u32) {
    let base = r * p.classes;
    let label = u32(labels[r]);
    var best = 0u;
    var best_value = logits[base];
    for (var j = 1u; j < p.classes; j = j + 1u) {
        let v = logits[base + j];
        if (v > best_value) {
            best_value = v;
            best = j;
        }
    }
    var loss = 0.0;
    var correct = select(0.0, 1.0, best == label);
    if (p.kind == 0u) {
        // log-sum-exp with the max subtracted: no overflow for any logits.
        var sum = 0.0;
        for (var j = 0u; j < p.classes; j = j + 1u) {
            sum = sum + exp(logits[base + j] - best_value);
        }
        loss = best_value + log(sum) - logits[base + label];
        for (var j = 0u; j < p.classes; j = j + 1u) {
            let prob = exp(logits[base + j] - best_value) / sum;
            dlogits[base + j] = (prob - select(0.0, 1.0, j == label)) * p.grad_scale;
        }
    } else if (p.kind == 1u) {
        for (var j = 0u; j < p.classes; j = j + 1u) {
            let l = logits[base + j];
            let t = target_of(j, label);
            // max(l, 0) - l t + log(1 + exp(-|l|)): stable for any l.
            loss = loss + max(l, 0.0) - l * t + fm_log1p(exp(-abs(l)));
            dlogits[base + j] = (fm_sigmoid(l) - t) * p.grad_scale;
        }
        loss = loss / f32(p.classes);
        if (p.classes == 1u) {
            correct = select(0.0, 1.0, (logits[base] > 0.0) == (label == 1u));
        }
    } else {
        for (var j = 0u; j < p.classes; j = j + 1u) {
            let d = logits[base + j] - target_of(j, label);
            loss = loss + d * d;
            dlogits[base + j] = 2.0 * d * p.grad_scale;
        }
        loss = loss / f32(p.classes);
        if (p.classes == 1u) {
            correct = select(0.0, 1.0, abs(logits[base] - f32(label)) < 0.5);
        }
    }
    row_stats[2u * r] = loss;
    row_stats[2u * r + 1u] = correct;
}
