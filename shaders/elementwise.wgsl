// Elementwise activation kernels over flat arrays of any length.
// CPU twin: reference::activation_forward / activation_backward.
//
// The dispatch is two-dimensional so that lengths past 65,535 workgroups of
// 256 still get one invocation per element: element = x + y * row_stride.

struct ElementwiseParams {
    len: u32,
    // Invocations per row of the dispatch grid (workgroups in x times 256).
    row_stride: u32,
}

@group(0) @binding(0) var<storage, read> params: ElementwiseParams;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// out = f(z).
@compute @workgroup_size(256)
fn activation_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.row_stride;
    if (i >= params.len) {
        return;
    }
    out[i] = activation(z[i]);
}

// out = dy * f'(z).
@compute @workgroup_size(256)
fn activation_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.row_stride;
    if (i >= params.len) {
        return;
    }
    out[i] = dy[i] * activation_derivative(z[i]);
}
