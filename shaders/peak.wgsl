// The adapter's peak multiply-add rate: every invocation runs eight
// independent vec4 chains with no memory traffic in the loop. `mad` is bound
// by src/gpu/shader.rs to `fma(a, b, c)` or to `a * b + c`: compilers treat
// the two forms differently, and the faster one is the adapter's peak.
// Each outer iteration: 4 unrolled steps x 8 chains x 4 lanes x 2 flops.

struct PeakParams {
    iterations: u32,
    seed: f32,
}

@group(0) @binding(0) var<storage, read> params: PeakParams;
@group(0) @binding(1) var<storage, read_write> sink: array<f32>;

@compute @workgroup_size(64)
fn peak(@builtin(global_invocation_id) gid: vec3<u32>) {
    let s = params.seed + f32(gid.x) * 1.0e-7;
    let m = vec4<f32>(0.9999, 0.9998, 0.9997, 0.9996);
    let k = vec4<f32>(1.0e-4, 2.0e-4, 3.0e-4, 4.0e-4);
    var a0 = vec4<f32>(s); var a1 = a0 + 0.1; var a2 = a0 + 0.2; var a3 = a0 + 0.3;
    var a4 = a0 + 0.4; var a5 = a0 + 0.5; var a6 = a0 + 0.6; var a7 = a0 + 0.7;
    for (var i = 0u; i < params.iterations; i = i + 1u) {
        for (var u = 0u; u < 4u; u = u + 1u) {
            a0 = mad(a0, m, k); a1 = mad(a1, m, k); a2 = mad(a2, m, k); a3 = mad(a3, m, k);
            a4 = mad(a4, m, k); a5 = mad(a5, m, k); a6 = mad(a6, m, k); a7 = mad(a7, m, k);
        }
    }
    let r = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    sink[gid.x] = r.x + r.y + r.z + r.w;
}
