//! Criterion benches of the fused linear kernels (the same cases as
//! `fusedmlp bench`, which also reports GFLOP/s against the adapter's peak).
//! Times are wall time of one submission including the wait.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fusedmlp::bench::{default_shapes, LinearFixture, BENCH_ACTIVATIONS};
use fusedmlp::Gpu;

fn linear(c: &mut Criterion) {
    let gpu = match Gpu::new() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("no GPU adapter, nothing to bench: {e}");
            return;
        }
    };
    let mut group = c.benchmark_group("linear");
    group.sample_size(10);
    for shape in default_shapes(false) {
        let (b, i, o) = (shape.batch, shape.in_features, shape.out_features);
        let fixture = LinearFixture::new(&gpu, shape).unwrap();
        group.throughput(Throughput::Elements(shape.forward_flops() as u64));
        for act in BENCH_ACTIVATIONS {
            let run = |backward: bool| {
                let mut e = gpu.device().create_command_encoder(&Default::default());
                if backward {
                    fixture.record_backward(&gpu, &mut e, act).unwrap();
                } else {
                    fixture.record_forward(&gpu, &mut e, act).unwrap();
                }
                gpu.queue().submit([e.finish()]);
                gpu.device()
                    .poll(wgpu::PollType::wait_indefinitely())
                    .unwrap();
            };
            let name = format!("{b}x{i}x{o}/{act}");
            group.bench_function(format!("forward/{name}"), |bench| bench.iter(|| run(false)));
            group.bench_function(format!("backward/{name}"), |bench| bench.iter(|| run(true)));
        }
    }
    group.finish();
}

criterion_group!(benches, linear);
criterion_main!(benches);
