//! Kernel timing: GPU timestamps where the adapter has them, wall time
//! around submit-and-wait otherwise; medians over repeats after a warm-up.

use web_time::Instant;

use super::context::Gpu;
use super::shader;
use crate::activation::Activation;
use crate::error::Error;

/// How a time was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum TimeSource {
    /// GPU timestamp queries around the recorded work.
    Timestamps,
    /// Host wall clock around submit and wait.
    Wall,
}

/// A median time per repetition of some recorded work.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Timing {
    /// Median seconds per repetition.
    pub seconds: f64,
    /// Where the time came from.
    pub source: TimeSource,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PeakParams {
    iterations: u32,
    seed: f32,
    _pad: [u32; 2],
}

impl Gpu {
    /// Whether kernel times can come from GPU timestamps: the adapter has
    /// them and is not a CPU. A CPU adapter's kernels run on the host, so
    /// its wall clock is the kernel time; and lavapipe's timestamps cannot
    /// be trusted once any kernel has used a storage texture (each interval
    /// is checked against the wall clock), which small kernels' intervals
    /// cannot show.
    pub fn has_timestamps(&self) -> bool {
        self.features().contains(
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS,
        ) && self.adapter_info().device_type != wgpu::DeviceType::Cpu
    }

    /// Measures the elementwise forward kernel's throughput in GB/s (bytes
    /// read plus written) on `len` elements: median of `repeats` timed runs
    /// after a warm-up, wall time including the wait.
    pub fn elementwise_throughput(
        &self,
        act: Activation,
        len: usize,
        repeats: usize,
    ) -> Result<f64, Error> {
        let data: Vec<f32> = (0..len)
            .map(|i| ((i % 2001) as f32 - 1000.0) * 0.01)
            .collect();
        let zt = self.upload(&data, 1, len)?;
        let yt = self.zeros(1, len)?;
        let mut times = Vec::new();
        for i in 0..repeats + 1 {
            let mut encoder = self
                .inner
                .device
                .create_command_encoder(&Default::default());
            self.record_activation_forward(&mut encoder, act, &zt, &yt)?;
            let start = Instant::now();
            let index = self.submit("elementwise throughput", vec![encoder.finish()])?;
            self.wait("elementwise throughput", Some(index))?;
            if i > 0 {
                times.push(start.elapsed().as_secs_f64());
            }
        }
        Ok((len as f64 * 8.0) / median(&times) / 1e9)
    }

    /// Times `record` (called `reps` times into one encoder per measurement):
    /// one warm-up, then the median over `repeats` measurements, per rep.
    pub(crate) fn time_recorded(
        &self,
        reps: usize,
        repeats: usize,
        record: impl FnMut(&mut wgpu::CommandEncoder) -> Result<(), Error>,
    ) -> Result<Timing, Error> {
        let (times, source) = self.time_samples(reps, repeats.max(1), true, record)?;
        Ok(Timing {
            seconds: median(&times),
            source,
        })
    }

    /// Times `record` (called `reps` times into one encoder per measurement)
    /// `samples` times, after one untimed warm-up when `warm_up`: the
    /// seconds per rep of each measurement, in order. For interleaving
    /// measurements of several kernels so that a machine slowing down
    /// mid-run affects them all alike.
    pub(crate) fn time_samples(
        &self,
        reps: usize,
        samples: usize,
        warm_up: bool,
        mut record: impl FnMut(&mut wgpu::CommandEncoder) -> Result<(), Error>,
    ) -> Result<(Vec<f64>, TimeSource), Error> {
        let reps = reps.max(1);
        let device = &self.inner.device;
        let stamps = self.has_timestamps();
        let query = if stamps {
            Some(self.scoped("creating timestamp queries", || {
                device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("fusedmlp timing"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2,
                })
            })?)
        } else {
            None
        };
        let resolve_buf = self.scoped("creating a query buffer", || {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("fusedmlp timestamps"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        })?;
        let (mut gpu, mut walls) = (Vec::new(), Vec::new());
        let mut trusted = true;
        let skip = warm_up as usize;
        for i in 0..samples + skip {
            let mut encoder = device.create_command_encoder(&Default::default());
            if let Some(q) = &query {
                encoder.write_timestamp(q, 0);
            }
            for _ in 0..reps {
                record(&mut encoder)?;
            }
            if let Some(q) = &query {
                encoder.write_timestamp(q, 1);
                encoder.resolve_query_set(q, 0..2, &resolve_buf, 0);
            }
            let start = Instant::now();
            let index = self.submit("timing", vec![encoder.finish()])?;
            self.wait("timing", Some(index))?;
            let wall = start.elapsed().as_secs_f64();
            let gpu_seconds = if query.is_some() {
                let bytes = self.read_bytes(&resolve_buf, 0, 16)?;
                let t: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
                let period = self.inner.queue.get_timestamp_period() as f64;
                Some(t[1].saturating_sub(t[0]) as f64 * period * 1e-9)
            } else {
                None
            };
            if i >= skip {
                walls.push(wall / reps as f64);
                if let Some(g) = gpu_seconds {
                    trusted &= timestamps_plausible(g, wall);
                    gpu.push(g / reps as f64);
                }
            }
        }
        // One implausible interval discredits the whole measurement: the
        // samples of one call must all come from one clock.
        let (times, source) = if stamps && trusted {
            (gpu, TimeSource::Timestamps)
        } else {
            (walls, TimeSource::Wall)
        };
        Ok((times, source))
    }

    /// Measures the adapter's peak f32 multiply-add rate in GFLOP/s: a kernel
    /// of independent vec4 chains, in both the `fma()` and `a * b + c` forms;
    /// returns (best, fma, mul_add).
    pub fn measure_peak_gflops(&self) -> Result<(f64, f64, f64), Error> {
        // Enough invocations to fill any device; enough iterations that the
        // loop dominates launch overhead.
        let is_cpu = self.adapter_info().device_type == wgpu::DeviceType::Cpu;
        let invocations: u32 = if is_cpu { 64 * 64 } else { 64 * 4096 };
        let iterations: u32 = if is_cpu { 2048 } else { 8192 };
        let sink = self.zeros(1, invocations as usize)?;
        let params = self.params(&PeakParams {
            iterations,
            seed: 0.5,
            _pad: [0; 2],
        })?;
        let flops = invocations as f64 * iterations as f64 * 4.0 * 8.0 * 4.0 * 2.0;
        let mut rates = [0.0f64; 2];
        for (slot, use_fma) in [true, false].into_iter().enumerate() {
            let name = if use_fma {
                "peak[fma]"
            } else {
                "peak[mul_add]"
            };
            let pipeline = self.pipeline(name, "peak", || shader::peak_source(use_fma), false)?;
            let t = self.time_recorded(1, 5, |encoder| {
                self.scoped("recording the peak kernel", || {
                    super::elementwise::record_pass(
                        self,
                        encoder,
                        name,
                        &pipeline,
                        &[(0, &params), (1, &sink)],
                        (invocations / 64, 1, 1),
                    )
                })
            })?;
            rates[slot] = flops / t.seconds / 1e9;
        }
        Ok((rates[0].max(rates[1]), rates[0], rates[1]))
    }
}

/// Whether a GPU-timestamp interval can be trusted next to the wall time of
/// the same submit-and-wait, which holds the GPU time plus a submission
/// and wait overhead of at most a few milliseconds. A driver whose
/// timestamps do not advance gives 0; lavapipe (Mesa 22.3), once any kernel
/// has used a storage texture, stamps later work as taking a fraction of
/// its time, down to nothing (a 100 ms GEMM stamped 0.1 ms or 89 ms, its
/// wall clock 122 ms or 303 ms).
pub fn timestamps_plausible(gpu_seconds: f64, wall_seconds: f64) -> bool {
    gpu_seconds > 0.0 && wall_seconds - gpu_seconds < 2e-3 + 0.1 * wall_seconds
}

/// The median of `v` (the upper one for an even count; NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implausible_timestamps_fall_back_to_wall_time() {
        assert!(!timestamps_plausible(0.0, 0.01));
        // lavapipe after a storage-texture kernel (measured).
        assert!(!timestamps_plausible(1e-4, 0.1217));
        assert!(!timestamps_plausible(0.0892, 0.3033));
        assert!(!timestamps_plausible(0.1088, 0.1656));
        // Sound intervals: lavapipe before any texture, and a short kernel
        // whose wall time is mostly submission overhead.
        assert!(timestamps_plausible(0.0442, 0.0456));
        assert!(timestamps_plausible(1e-4, 1.5e-3));
    }
}
