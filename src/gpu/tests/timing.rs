//! Timing on a queue no other test shares: this binary holds one test, so
//! its wall-clock figures are not inflated by other tests' GPU work running
//! on the same device (the GPU test binaries run their tests in parallel
//! threads on one shared device and queue).

use super::{grid_values, run_gemm};

use crate::gpu::gemm::Epilogue;
use crate::gpu::linear::GemmDims;

#[test]
fn timings_after_a_texture_kernel_still_measure_the_work() {
    let Some(gpu) = super::gpu() else { return };
    let dims = GemmDims::dense(256, 256, 256);
    let applicable = gpu.applicable_variants(dims);
    let (Some(tex), Some(buf)) = (
        applicable.iter().find(|v| v.kind.uses_textures()),
        applicable.iter().find(|v| !v.kind.uses_textures()),
    ) else {
        println!("this adapter has no texture GEMM kinds; nothing to check");
        return;
    };
    let a = gpu
        .upload(&grid_values(256 * 256, 5, 1.0), 256, 256)
        .unwrap();
    let y = gpu.zeros(256, 256).unwrap();
    // Any kernel that used a storage texture (lavapipe, Mesa 22.3, then
    // stamps later work as taking almost no time).
    run_gemm(&gpu, *tex, dims, &a, &a, &y);
    // (measured time, wall clock per submission) of the buffer variant.
    let time = |dims: GemmDims| {
        let start = std::time::Instant::now();
        let t = gpu
            .time_recorded(1, 3, |e| {
                gpu.record_gemm_with(e, *buf, Epilogue::Plain, dims, &a, &a, None, &y, None)
            })
            .unwrap();
        // One warm-up and three timed submissions.
        let wall_each = start.elapsed().as_secs_f64() / 4.0;
        println!(
            "{} at {dims:?}: {:.4} ms measured ({:?}), {:.4} ms of wall clock per submission",
            buf.name(),
            t.seconds * 1e3,
            t.source,
            wall_each * 1e3
        );
        (t, wall_each)
    };
    let (t, wall_each) = time(dims);
    // Only meaningful where the kernel, not the submission, dominates. A
    // bogus interval is a hundredth of the work or less; the margin is wide
    // because the lib's other tests share the cores (0.25 once failed while
    // they ran).
    if wall_each > 5e-3 {
        assert!(
            t.seconds > 0.05 * wall_each,
            "{:.3} ms measured for a kernel that took {:.3} ms",
            t.seconds * 1e3,
            wall_each * 1e3
        );
    }
    // A small kernel's bogus interval cannot be told from submission
    // overhead by the wall clock (this once made the autotuner pick scalar
    // kernels for a 20-layer net of width 64, doubling its step time), so a
    // CPU adapter, whose kernels run on the host, is timed by the wall clock.
    if gpu.adapter_info().device_type == wgpu::DeviceType::Cpu {
        let (t, wall_each) = time(GemmDims::dense(32, 64, 64));
        assert_eq!(t.source, crate::gpu::timing::TimeSource::Wall);
        // A bogus interval is a hundredth of the work or less; the margin
        // is wide because `wall_each` also holds the warm-up, which other
        // tests running on the same cores can stretch several times over.
        assert!(
            t.seconds > 0.1 * wall_each,
            "{:.3} ms measured, {:.3} ms of wall clock per submission",
            t.seconds * 1e3,
            wall_each * 1e3
        );
    }
}
