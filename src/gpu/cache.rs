//! The state a device context keeps between calls: parameter blocks made
//! once and shared, and the autotuner's decisions. Plain data, no device
//! calls: the context holds these, the modules that fill them import this.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::gemm::GemmVariant;

/// One tuning decision, for reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TuningRecord {
    /// The shape class.
    pub class: String,
    /// The chosen variant's name.
    pub variant: String,
    /// How it was chosen: `measured`, `cache`, `heuristic`, `heuristic,
    /// tuning budget spent` or `forced`.
    pub how: String,
    /// Seconds spent measuring (0 unless measured).
    pub seconds: f64,
    /// The measured GFLOP/s of each candidate (empty unless measured).
    pub candidates: BTreeMap<String, f64>,
}

/// The most parameter blocks [`Gpu::params`] keeps for reuse.
pub(crate) const PARAM_CACHE_ENTRIES: usize = 2048;

/// Parameter blocks by their bytes, least recently used evicted first.
#[derive(Default)]
pub(crate) struct ParamCache {
    pub(crate) blocks: HashMap<Vec<u8>, (wgpu::Buffer, u64)>,
    pub(crate) by_use: BTreeMap<u64, Vec<u8>>,
    tick: u64,
}

impl ParamCache {
    pub(crate) fn get(&mut self, bytes: &[u8]) -> Option<wgpu::Buffer> {
        self.tick += 1;
        let tick = self.tick;
        let (buffer, used) = self.blocks.get_mut(bytes)?;
        let key = self.by_use.remove(used)?;
        *used = tick;
        self.by_use.insert(tick, key);
        Some(buffer.clone())
    }

    pub(crate) fn insert(&mut self, bytes: Vec<u8>, buffer: wgpu::Buffer) {
        self.tick += 1;
        if let Some((_, old)) = self.blocks.insert(bytes.clone(), (buffer, self.tick)) {
            self.by_use.remove(&old);
        }
        self.by_use.insert(self.tick, bytes);
        while self.blocks.len() > PARAM_CACHE_ENTRIES {
            let Some((_, key)) = self.by_use.pop_first() else {
                break;
            };
            self.blocks.remove(&key);
        }
    }
}

/// The autotuner's state: the variant chosen per shape class, the
/// decisions made so far, and the disk cache once read.
#[derive(Default)]
pub(crate) struct TuningState {
    pub(crate) chosen: HashMap<String, GemmVariant>,
    pub(crate) records: Vec<TuningRecord>,
    pub(crate) disk_loaded: bool,
    pub(crate) disk: BTreeMap<String, GemmVariant>,
}
