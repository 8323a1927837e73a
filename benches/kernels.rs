//! Criterion benches of the fused linear kernels (the same cases as
//! `fusedmlp bench`, which also reports GFLOP/s against the adapter's peak).
//! Times are wall time of one submission including the wait.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fusedmlp::bench::{default_shapes, BENCH_ACTIVATIONS};
use fusedmlp::{Gpu, Saved};

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
        let x = gpu.upload(&vec![0.01; b * i], b, i).unwrap();
        let w = gpu.upload(&vec![0.02; o * i], o, i).unwrap();
        let bias = gpu.upload(&vec![0.0; o], 1, o).unwrap();
        let dy = gpu.upload(&vec![0.1; b * o], b, o).unwrap();
        let (y, z) = (gpu.zeros(b, o).unwrap(), gpu.zeros(b, o).unwrap());
        let (dx, dw, db) = (
            gpu.zeros(b, i).unwrap(),
            gpu.zeros(o, i).unwrap(),
            gpu.zeros(1, o).unwrap(),
        );
        let scratch = gpu.linear_scratch(shape).unwrap();
        group.throughput(Throughput::Elements(shape.forward_flops() as u64));
        for act in BENCH_ACTIVATIONS {
            let keep_z = act.saved() == Saved::PreActivation;
            let run = |backward: bool| {
                let mut e = gpu.device().create_command_encoder(&Default::default());
                if backward {
                    let saved = if keep_z { &z } else { &y };
                    gpu.record_linear_backward(
                        &mut e,
                        act,
                        &x,
                        &w,
                        saved,
                        &dy,
                        &scratch,
                        Some(&dx),
                        &dw,
                        &db,
                    )
                    .unwrap();
                } else {
                    gpu.record_linear_forward(&mut e, act, &x, &w, &bias, &y, keep_z.then_some(&z))
                        .unwrap();
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
