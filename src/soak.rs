//! Long-run checks: what a process holds (resident memory, wgpu's live
//! objects), sampled while a net trains with diagnostics logged, and a
//! verdict on whether either grew past its bound. Used by `fusedmlp soak`
//! and by the soak test in `tests/soak.rs`.

use std::time::Duration;
use web_time::Instant;

use crate::data::Dataset;
use crate::error::Error;
use crate::gpu::Gpu;
use crate::nn::{Mlp, MlpConfig};
use crate::train::{TrainConfig, Trainer};

/// The resident memory of this process in bytes, where the OS tells it
/// (Linux: `/proc/self/statm`); `None` elsewhere.
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // Linux's base page size on every architecture wgpu's Vulkan runs on
    // except some arm64 kernels: there, the figure reads 16x low, which a
    // growth check still sees.
    Some(pages * 4096)
}

/// What the process holds at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ResourceSnapshot {
    /// Resident memory in bytes, where the OS tells it.
    pub resident_bytes: Option<u64>,
    /// Live wgpu buffers.
    pub buffers: isize,
    /// Live bind groups.
    pub bind_groups: isize,
    /// Live textures.
    pub textures: isize,
    /// Live texture views.
    pub texture_views: isize,
    /// Live compute pipelines.
    pub compute_pipelines: isize,
    /// Live shader modules.
    pub shader_modules: isize,
    /// Bytes of GPU memory held by buffers.
    pub buffer_memory: isize,
}

impl ResourceSnapshot {
    /// Reads wgpu's internal counters (the `counters` feature) and the
    /// resident memory. Wait for the GPU first: objects of a submission
    /// still in flight are counted until it finishes.
    pub fn take(gpu: &Gpu) -> ResourceSnapshot {
        let hal = gpu.device().get_internal_counters().hal;
        ResourceSnapshot {
            resident_bytes: resident_memory_bytes(),
            buffers: hal.buffers.read(),
            bind_groups: hal.bind_groups.read(),
            textures: hal.textures.read(),
            texture_views: hal.texture_views.read(),
            compute_pipelines: hal.compute_pipelines.read(),
            shader_modules: hal.shader_modules.read(),
            buffer_memory: hal.buffer_memory.read(),
        }
    }

    fn counts(&self) -> [(&'static str, isize); 7] {
        [
            ("buffers", self.buffers),
            ("bind groups", self.bind_groups),
            ("textures", self.textures),
            ("texture views", self.texture_views),
            ("compute pipelines", self.compute_pipelines),
            ("shader modules", self.shader_modules),
            ("buffer bytes", self.buffer_memory),
        ]
    }

    /// The live-object counts that are higher than in `baseline`, as
    /// `name: before -> now`.
    pub fn grown_since(&self, baseline: &ResourceSnapshot) -> Vec<String> {
        self.counts()
            .iter()
            .zip(baseline.counts())
            .filter(|((_, now), (_, before))| now > before)
            .map(|((name, now), (_, before))| format!("{name}: {before} -> {now}"))
            .collect()
    }

    /// Resident memory growth since `baseline` in bytes (negative when it
    /// shrank); `None` where the OS does not tell.
    pub fn resident_growth(&self, baseline: &ResourceSnapshot) -> Option<i64> {
        Some(self.resident_bytes? as i64 - baseline.resident_bytes? as i64)
    }

    /// One line: resident memory and the live objects.
    pub fn describe(&self) -> String {
        let rss = self.resident_bytes.map_or("rss n/a".to_string(), |b| {
            format!("rss {:.1} MB", b as f64 / 1e6)
        });
        format!(
            "{rss}, {} buffers, {} bind groups, {} textures, {} views, {} pipelines, {} shader modules",
            self.buffers,
            self.bind_groups,
            self.textures,
            self.texture_views,
            self.compute_pipelines,
            self.shader_modules
        )
    }
}

/// What a soak run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SoakReport {
    /// Taken after the warm-up steps.
    pub baseline: ResourceSnapshot,
    /// (optimizer steps taken, snapshot), one per sample.
    pub samples: Vec<(u64, ResourceSnapshot)>,
    /// Logged steps held by the trainer at the end (bounded by
    /// `TrainConfig::max_logged_steps`).
    pub logged_steps_held: usize,
    /// Why the run failed its bounds; empty when it held.
    pub failures: Vec<String>,
}

/// How long to soak and what counts as growth.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Steps taken before the baseline (pipelines compiled, autotune done,
    /// the log ring filled, the report at its cap).
    pub warmup_steps: usize,
    /// Stop after this many steps past the warm-up ...
    pub steps: Option<u64>,
    /// ... or after this long, whichever comes first.
    pub duration: Option<Duration>,
    /// Take a sample this often (wall time) ...
    pub sample_every: Duration,
    /// Largest resident-memory growth over the baseline, in bytes.
    pub max_resident_growth: u64,
}

/// Trains `model` on `train` with `config` (diagnostics logged as it says)
/// in chunks of one epoch's steps, reading the divergence flags after each
/// chunk as the training loop does, and samples what the process holds.
/// `on_sample` sees every sample as it is taken. The run fails its bounds
/// if any live-object count ends above the baseline or the resident memory
/// grew by more than `soak.max_resident_growth`.
pub fn soak(
    gpu: &Gpu,
    model: MlpConfig,
    config: TrainConfig,
    train: &Dataset,
    soak: &SoakConfig,
    mut on_sample: impl FnMut(u64, &ResourceSnapshot),
) -> Result<SoakReport, Error> {
    if soak.steps.is_none() && soak.duration.is_none() {
        return Err(Error::Config(
            "a soak run needs a step count or a duration".into(),
        ));
    }
    let mut trainer = Trainer::new(Mlp::new(gpu, model)?, config, train, train)?;
    let chunk = trainer.steps_per_epoch().clamp(1, 64);
    trainer.run_steps(soak.warmup_steps)?;
    let baseline = ResourceSnapshot::take(gpu);
    on_sample(trainer.steps_taken(), &baseline);
    let start = Instant::now();
    let mut last_sample = start;
    let mut samples = Vec::new();
    let mut taken = 0u64;
    loop {
        let left = soak.steps.map_or(chunk as u64, |s| s.saturating_sub(taken));
        let timed_out = soak.duration.is_some_and(|d| start.elapsed() >= d);
        if left == 0 || timed_out {
            break;
        }
        let n = (chunk as u64).min(left) as usize;
        trainer.run_steps(n)?;
        trainer.divergence()?;
        taken += n as u64;
        if last_sample.elapsed() >= soak.sample_every {
            last_sample = Instant::now();
            let s = ResourceSnapshot::take(gpu);
            on_sample(trainer.steps_taken(), &s);
            samples.push((trainer.steps_taken(), s));
        }
    }
    let end = ResourceSnapshot::take(gpu);
    on_sample(trainer.steps_taken(), &end);
    samples.push((trainer.steps_taken(), end));
    let mut failures: Vec<String> = end
        .grown_since(&baseline)
        .into_iter()
        .map(|g| format!("live GPU objects grew after the warm-up: {g}"))
        .collect();
    if let Some(growth) = end.resident_growth(&baseline) {
        if growth > soak.max_resident_growth as i64 {
            failures.push(format!(
                "resident memory grew by {:.1} MB over {taken} steps (bound {:.1} MB)",
                growth as f64 / 1e6,
                soak.max_resident_growth as f64 / 1e6
            ));
        }
    }
    Ok(SoakReport {
        baseline,
        samples,
        logged_steps_held: trainer.logs().len(),
        failures,
    })
}
