//! Bind groups made once: a cache a caller (a trainer) installs on its
//! thread while it records, so that a pass recorded again with the same
//! kernel and the same buffer ranges reuses the bind group made the first
//! time instead of making another. A training step's passes bind the same
//! buffers every step (parameter blocks, tables and staging are made once
//! and written in place), so after the first step of each kind a step makes
//! no bind group; [`Gpu::objects_created`](super::Gpu::objects_created)
//! counts the ones made.
//!
//! The cache holds its bind groups (and so their buffers) until its owner
//! drops it; it is bounded, and cleared when full, for callers whose
//! bindings keep changing.

use std::cell::RefCell;
use std::collections::HashMap;

/// The most bind groups a cache keeps before it starts over.
const MAX_ENTRIES: usize = 4096;

/// What a bind group binds, as a key: the pipeline and each entry's
/// resource (a buffer range or a texture view).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    pipeline: wgpu::ComputePipeline,
    entries: Vec<(u32, Resource)>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Resource {
    Buffer(wgpu::Buffer, u64, Option<u64>),
    View(wgpu::TextureView),
}

/// A cache of bind groups by what they bind (see the module's doc).
#[derive(Default)]
pub(crate) struct BindGroupCache {
    groups: HashMap<Key, wgpu::BindGroup>,
    /// Bind groups looked up and found, for the `Debug` summary.
    hits: u64,
}

impl std::fmt::Debug for BindGroupCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BindGroupCache")
            .field("bind_groups", &self.groups.len())
            .field("reused", &self.hits)
            .finish()
    }
}

thread_local! {
    /// The cache installed on this thread, if any.
    static INSTALLED: RefCell<Option<BindGroupCache>> = const { RefCell::new(None) };
}

impl BindGroupCache {
    /// Runs `f` with this cache installed on the calling thread: every pass
    /// `f` records looks its bind group up here first.
    pub(crate) fn install<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let previous = INSTALLED.with(|c| c.borrow_mut().replace(std::mem::take(self)));
        let value = f();
        let mine = INSTALLED.with(|c| std::mem::replace(&mut *c.borrow_mut(), previous));
        *self = mine.unwrap_or_default();
        value
    }
}

/// The key of a bind group of `pipeline` with `entries`, or `None` where
/// an entry binds something the cache does not key (samplers, arrays).
fn key_of(pipeline: &wgpu::ComputePipeline, entries: &[wgpu::BindGroupEntry]) -> Option<Key> {
    let entries = entries
        .iter()
        .map(|e| {
            let resource = match &e.resource {
                wgpu::BindingResource::Buffer(b) => {
                    Resource::Buffer(b.buffer.clone(), b.offset, b.size.map(|s| s.get()))
                }
                wgpu::BindingResource::TextureView(v) => Resource::View((*v).clone()),
                _ => return None,
            };
            Some((e.binding, resource))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Key {
        pipeline: pipeline.clone(),
        entries,
    })
}

/// The bind group of `pipeline` with `entries`: the installed cache's where
/// it has one, else made by `make` (and kept, where a cache is installed).
/// Returns whether it was made.
pub(crate) fn bind_group(
    pipeline: &wgpu::ComputePipeline,
    entries: &[wgpu::BindGroupEntry],
    make: impl FnOnce() -> wgpu::BindGroup,
) -> (wgpu::BindGroup, bool) {
    let installed = INSTALLED.with(|c| c.borrow().is_some());
    let key = if installed {
        key_of(pipeline, entries)
    } else {
        None
    };
    let Some(key) = key else {
        return (make(), true);
    };
    if let Some(group) = INSTALLED.with(|c| {
        let mut c = c.borrow_mut();
        let cache = c.as_mut()?;
        let group = cache.groups.get(&key).cloned();
        if group.is_some() {
            cache.hits += 1;
        }
        group
    }) {
        return (group, false);
    }
    let group = make();
    INSTALLED.with(|c| {
        if let Some(cache) = c.borrow_mut().as_mut() {
            if cache.groups.len() >= MAX_ENTRIES {
                cache.groups.clear();
            }
            cache.groups.insert(key, group.clone());
        }
    });
    (group, true)
}
