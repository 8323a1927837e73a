// The activation step of a linear layer's backward pass, with the bias
// gradient fused in. CPU twin: reference::linear_backward.
//
//   dz[b, o] = dzt[o, b] = dy[b, o] * f'(saved[b, o])     (dz with a padded row stride)      saved = z, or y for the ReLU family
//   db[o]    = sum over b of dz[b, o]           (a fixed order: deterministic)
//
// One invocation per output column; neighbouring invocations read
// neighbouring columns. dz is then the A operand of the dX GEMM and its
// transpose dzt, written here rather than by a separate transpose pass, the
// A operand of the dW GEMM.
// (Measured on lavapipe: writing dz once and running plain GEMMs beats
// recomputing f' inside both GEMMs, which evaluate it (in / tile) and
// (out / tile) times per element.)

struct DzParams {
    batch: u32,
    cols: u32,
    // Row stride of dz: cols rounded up to a multiple of 4 (the padding
    // stays zero), so the GEMMs can read dz with vec4 loads.
    dz_stride: u32,
    // Row stride of dzt: batch rounded up to a multiple of 4.
    dzt_stride: u32,
}

@group(0) @binding(0) var<uniform> p: DzParams;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> saved: array<f32>;
@group(0) @binding(3) var<storage, read_write> dz: array<f32>;
@group(0) @binding(4) var<storage, read_write> db: array<f32>;
@group(0) @binding(5) var<storage, read_write> dzt: array<f32>;

@compute @workgroup_size(64)
fn dz_and_bias_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o = gid.x;
    if (o >= p.cols) {
        return;
    }
    var sum = 0.0;
    for (var bi = 0u; bi < p.batch; bi = bi + 1u) {
        let i = bi * p.cols + o;
        // derivative_from_saved is generated per activation: f'(z), or f'
        // from y for the ReLU family (src/gpu/shader.rs).
        // Tiny products are flushed like activations' results (see
        // flush_subnormal in activations.wgsl): they feed two GEMMs.
        let d = flush_subnormal(dy[i] * derivative_from_saved(saved[i]));
        dz[bi * p.dz_stride + o] = d;
        dzt[o * p.dzt_stride + bi] = d;
        sum = sum + d;
    }
    db[o] = sum;
}
