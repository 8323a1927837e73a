//! Per-adapter choice of GEMM kernel variants.
//!
//! Lavapipe and real GPUs want opposite kernel designs, so the variant for
//! each class of GEMM shape is measured on the adapter itself the first time
//! that class is needed: every applicable candidate runs on a problem capped
//! at 384 in each dimension, and the fastest wins. Choices are cached in
//! memory and on disk (keyed by crate version, adapter, backend, driver and
//! shape class) so later processes skip the measurement. The measurement of
//! one class is bounded by a time budget (0.4 s), and all the measuring of
//! one process by another (1.5 s; classes past it take the heuristic's
//! choice); GEMMs under [`MIN_MEASURED_MACS`] multiply-adds, and every GEMM
//! when no cache can be written or `FUSEDMLP_AUTOTUNE=0`, take a
//! heuristic's choice without measuring.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use web_time::Instant;

use super::cache::TuningRecord;
use super::context::Gpu;
use super::gemm::{Epilogue, GemmKind, GemmVariant};
use super::linear::GemmDims;
use crate::error::Error;

/// Environment variable: `0` disables measuring (heuristic choice only).
pub const AUTOTUNE_ENV: &str = "FUSEDMLP_AUTOTUNE";
/// Environment variable: the folder for the autotune cache.
pub const CACHE_DIR_ENV: &str = "FUSEDMLP_CACHE_DIR";
/// Environment variable: force one GEMM kernel variant by its index in the
/// autotuner's candidate list (where it applies), for benchmarks of each.
pub const FORCE_VARIANT_ENV: &str = "FUSEDMLP_GEMM_VARIANT";

/// Time budget for tuning one shape class: measuring stops once it is spent
/// (after at least one candidate). Candidates are measured in order of
/// expected speed, the heuristic's choice first, so on a slow adapter the
/// ones left out are those least likely to win.
const BUDGET: Duration = Duration::from_millis(400);

/// Time budget for all the tuning of one process: once it is spent, classes
/// not yet seen take the heuristic's choice (not written to the disk cache,
/// so a later process measures them). A 20-layer net has about six classes.
const PROCESS_BUDGET: Duration = Duration::from_millis(1500);

/// GEMMs with fewer multiply-adds than this take the heuristic's choice
/// without measuring: at that size a dispatch's launch cost dominates any
/// variant's speed, and measuring every small class (a 20 × 64 net's head,
/// its evaluation batches) cost its first step about a second.
pub const MIN_MEASURED_MACS: u64 = 1 << 18;

/// Bumped whenever the candidate set changes, so that choices cached
/// before a new kind of kernel existed are measured again.
const CANDIDATE_GENERATION: u32 = 4;

fn bucket(v: usize) -> &'static str {
    match v {
        0..=16 => "16",
        17..=64 => "64",
        65..=256 => "256",
        257..=1024 => "1k",
        _ => "big",
    }
}

fn shape_class(dims: GemmDims) -> String {
    format!(
        "m{}-n{}-k{}-{}",
        bucket(dims.m),
        bucket(dims.n),
        bucket(dims.k),
        if dims.vec4_ok() { "vec4" } else { "scalar" }
    )
}

fn cache_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV) {
        return Some(PathBuf::from(dir).join("autotune.json"));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("fusedmlp").join("autotune.json"))
}

impl Gpu {
    fn adapter_key(&self) -> String {
        let i = self.adapter_info();
        format!(
            "fusedmlp-{}-g{CANDIDATE_GENERATION}|{}|{:?}|{}|{}",
            env!("CARGO_PKG_VERSION"),
            i.name,
            i.backend,
            i.driver,
            i.driver_info
        )
    }

    /// The candidates that can run for these dimensions on this adapter.
    pub(crate) fn applicable_variants(&self, dims: GemmDims) -> Vec<GemmVariant> {
        GemmVariant::CANDIDATES
            .iter()
            .copied()
            .filter(|v| !v.needs_vec4() || dims.vec4_ok())
            .filter(|v| !v.kind.uses_subgroups() || self.subgroups_ok())
            .filter(|v| !v.kind.uses_textures() || self.texture_operands_fit(dims))
            .collect()
    }

    /// The choice made without measuring.
    fn heuristic_variant(&self, dims: GemmDims) -> GemmVariant {
        let applicable = self.applicable_variants(dims);
        let is_cpu = self.adapter_info().device_type == wgpu::DeviceType::Cpu;
        let prefer = |kind: GemmKind, rows: u32, cols: u32| {
            applicable
                .iter()
                .copied()
                .find(|v| v.kind == kind && v.rows == rows && v.cols == cols && v.fma)
        };
        let pick = if is_cpu {
            // Measured on lavapipe at 1024³: texture operands with subgroup
            // sharing of A 23-26 GFLOP/s, plain texture tiles ~17, subgroup
            // sharing from buffers ~4, plain vec4 tiles ~2.
            // Below about 128³ the two packing passes cost what the texture
            // loads save.
            let textures = if dims.m * dims.n * dims.k >= 128 * 128 * 128 {
                prefer(GemmKind::TextureSubgroup, 16, 2).or_else(|| prefer(GemmKind::Texture, 8, 8))
            } else {
                None
            };
            textures
                .or_else(|| prefer(GemmKind::Vec4Subgroup, 16, 4))
                .or_else(|| prefer(GemmKind::Vec4, 8, 8))
        } else {
            prefer(GemmKind::Vec4, 4, 4)
        };
        pick.or_else(|| prefer(GemmKind::Scalar, 4, 4))
            .unwrap_or(applicable[0])
    }

    /// Every tuning decision made in this process so far.
    #[cfg(feature = "cli")]
    pub(crate) fn tuning_records(&self) -> Vec<TuningRecord> {
        self.inner
            .tuning
            .lock()
            .map(|t| t.records.clone())
            .unwrap_or_default()
    }

    /// The variant to use for a GEMM of these dimensions.
    pub(crate) fn gemm_variant(&self, dims: GemmDims) -> Result<GemmVariant, Error> {
        let applicable = self.applicable_variants(dims);
        if let Some(v) = std::env::var(FORCE_VARIANT_ENV)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .and_then(|i| GemmVariant::CANDIDATES.get(i).copied())
            .filter(|v| applicable.contains(v))
        {
            return Ok(v);
        }
        let class = shape_class(dims);
        let key = format!("{}|{class}", self.adapter_key());
        let mut state = self.inner.tuning.lock().unwrap_or_else(|p| p.into_inner());
        // A class spans sizes, and the texture kinds fit only up to the
        // texture size limit: where the class's choice cannot run these
        // dimensions, the heuristic picks among those that can (the class
        // keeps its choice).
        if let Some(v) = state.chosen.get(&key) {
            return Ok(if applicable.contains(v) {
                *v
            } else {
                self.heuristic_variant(dims)
            });
        }
        // Off means the heuristic's choice only: a cache written by an
        // earlier, measuring process does not count either.
        let off = std::env::var(AUTOTUNE_ENV).as_deref() == Ok("0");
        let path = cache_path().filter(|_| !off);
        if !state.disk_loaded && !off {
            state.disk_loaded = true;
            if let Some(text) = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
                // A corrupt or outdated cache is simply re-measured.
                state.disk = serde_json::from_str(&text).unwrap_or_default();
            }
        }
        let record = |variant: GemmVariant, how: &str, seconds: f64, candidates| TuningRecord {
            class: class.clone(),
            variant: variant.name(),
            how: how.to_string(),
            seconds,
            candidates,
        };
        if let Some(v) = state.disk.get(&key).copied() {
            if !applicable.contains(&v) {
                return Ok(self.heuristic_variant(dims));
            }
            state.chosen.insert(key, v);
            state.records.push(record(v, "cache", 0.0, BTreeMap::new()));
            return Ok(v);
        }
        let spent: f64 = state.records.iter().map(|r| r.seconds).sum();
        let over_budget = spent >= PROCESS_BUDGET.as_secs_f64();
        let measure = !off && path.is_some();
        let macs = dims.m as u64 * dims.n as u64 * dims.k as u64;
        let tiny = macs < MIN_MEASURED_MACS;
        if !measure || over_budget || tiny {
            let v = self.heuristic_variant(dims);
            state.chosen.insert(key, v);
            let how = if tiny {
                "heuristic, too small to measure"
            } else if over_budget {
                "heuristic, tuning budget spent"
            } else {
                "heuristic"
            };
            state.records.push(record(v, how, 0.0, BTreeMap::new()));
            return Ok(v);
        }
        let start = Instant::now();
        // The measurements run on encoders of their own: no step plan being
        // captured may keep them.
        let (best, rates) = super::plan::outside_plan(|| self.measure_variants(dims, &applicable))?;
        let seconds = start.elapsed().as_secs_f64();
        log::info!("autotuned {class}: {} in {seconds:.2} s", best.name());
        state.chosen.insert(key.clone(), best);
        state.disk.insert(key, best);
        state.records.push(record(best, "measured", seconds, rates));
        if let Some(path) = path {
            // Best effort: a read-only home only costs a re-measure next time.
            let text = serde_json::to_string_pretty(&state.disk).unwrap_or_default();
            let _ = path
                .parent()
                .map(std::fs::create_dir_all)
                .transpose()
                .and_then(|_| {
                    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                    std::fs::write(&tmp, text)?;
                    std::fs::rename(&tmp, &path)
                });
        }
        Ok(best)
    }

    /// Times each candidate on the capped problem; returns the fastest and
    /// every rate measured (GFLOP/s).
    fn measure_variants(
        &self,
        dims: GemmDims,
        candidates: &[GemmVariant],
    ) -> Result<(GemmVariant, BTreeMap<String, f64>), Error> {
        let cap = |v: usize| v.clamp(1, 384);
        let (m, n, k) = (cap(dims.m), cap(dims.n), cap(dims.k));
        let k_pad = if dims.vec4_ok() { k.div_ceil(4) * 4 } else { k };
        let probe = GemmDims {
            m,
            n,
            k,
            lda: k_pad,
            ldb: k_pad,
            ldc: n,
        };
        let a = self.upload(&vec![0.01f32; m * k_pad], m, k_pad)?;
        let b = self.upload(&vec![0.02f32; n * k_pad], n, k_pad)?;
        let y = self.zeros(m, n)?;
        let flops = 2.0 * (m * n * k) as f64;
        // Small problems repeat inside one submission, so that per-pass
        // costs (which the packing passes of texture kinds add to) count
        // and the submission's own overhead does not swamp them.
        let reps = ((2e7 / flops).ceil() as usize).clamp(1, 64);
        let start = Instant::now();
        // Rounds over all candidates, each keeping its best time: a burst of
        // load from elsewhere on the machine then costs one sample, not the
        // choice (timings on shared CPUs swing by 2x).
        let mut best_time: Vec<Option<f64>> = vec![None; candidates.len()];
        // CANDIDATES runs from the simplest kernels to the most elaborate;
        // the elaborate ones win on every adapter measured so far.
        let heuristic = self.heuristic_variant(dims);
        let mut order: Vec<usize> = (0..candidates.len()).rev().collect();
        if let Some(h) = candidates.iter().position(|&v| v == heuristic) {
            order.retain(|&i| i != h);
            order.insert(0, h);
        }
        'rounds: for _ in 0..3 {
            for &i in &order {
                let v = candidates[i];
                if start.elapsed() > BUDGET && best_time.iter().any(Option::is_some) {
                    break 'rounds;
                }
                let t = self.time_recorded(reps, 1, |encoder| {
                    self.record_gemm_with(
                        encoder,
                        v,
                        Epilogue::Plain,
                        probe,
                        &a,
                        &b,
                        None,
                        &y,
                        None,
                    )
                })?;
                let slot = &mut best_time[i];
                *slot = Some(slot.map_or(t.seconds, |b: f64| b.min(t.seconds)));
            }
        }
        let mut rates = BTreeMap::new();
        let mut best: Option<(GemmVariant, f64)> = None;
        for (&v, t) in candidates.iter().zip(&best_time) {
            let Some(t) = t else { continue };
            let rate = flops / t / 1e9;
            rates.insert(v.name(), rate);
            if best.is_none_or(|(_, r)| rate > r) {
                best = Some((v, rate));
            }
        }
        let best = best
            .map(|(v, _)| v)
            .unwrap_or_else(|| self.heuristic_variant(dims));
        Ok((best, rates))
    }
}
