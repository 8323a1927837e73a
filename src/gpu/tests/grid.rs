//! Inputs whose products and sums are exact in f32, shared by the crate's
//! unit tests and the integration tests in `tests/` (which include this
//! file by path).

/// Inputs on a grid (multiples of 1/16 times a power of two) so that every
/// product and partial sum is exact in f32: the GPU's pre-activations then
/// equal the reference's exactly, whatever the summation order, and the
/// comparison measures the kernels, not the luck of a sign near a kink.
pub fn grid_values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let q = ((s >> 33) % 33) as i32 - 16; // -16..=16
            q as f32 / 16.0 * scale
        })
        .collect()
}
