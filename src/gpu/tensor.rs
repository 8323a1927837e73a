//! [`GpuTensor`]: a row-major f32 matrix that lives on the device.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use super::context::Gpu;
use crate::error::Error;

/// A row-major `[rows, cols]` f32 matrix in a GPU storage buffer. Clones
/// share the buffer. Kernels take and return these so layers chain without
/// copying data back to the host.
///
/// A tensor may be a view of part of a larger buffer (an arena: a model's
/// parameters, a trainer's gradients, each tensor at its own aligned
/// offset): [`GpuTensor::offset`] says where it starts, and every kernel
/// binds only its range.
#[derive(Clone)]
pub struct GpuTensor {
    storage: Arc<wgpu::Buffer>,
    /// Where the tensor starts in `storage`, in bytes (a multiple of
    /// [`VIEW_ALIGN`] floats' bytes).
    offset: u64,
    rows: usize,
    cols: usize,
}

/// Views start at multiples of this many floats (256 bytes: the largest
/// `min_storage_buffer_offset_alignment` WebGPU allows, so a view binds on
/// every adapter).
pub const VIEW_ALIGN: usize = 64;

/// `floats` rounded up to a whole number of [`VIEW_ALIGN`] blocks.
pub fn align_floats(floats: usize) -> usize {
    floats.div_ceil(VIEW_ALIGN) * VIEW_ALIGN
}

/// What a kernel binds: a whole buffer, or a tensor's range of its buffer.
pub(crate) trait Bind {
    /// The binding resource.
    fn resource(&self) -> wgpu::BindingResource<'_>;
    /// The buffer and the byte offset where the bound range starts.
    fn raw(&self) -> (&wgpu::Buffer, u64);
}

impl<T: Bind + ?Sized> Bind for &T {
    fn resource(&self) -> wgpu::BindingResource<'_> {
        (**self).resource()
    }
    fn raw(&self) -> (&wgpu::Buffer, u64) {
        (**self).raw()
    }
}

impl Bind for wgpu::Buffer {
    fn resource(&self) -> wgpu::BindingResource<'_> {
        self.as_entire_binding()
    }
    fn raw(&self) -> (&wgpu::Buffer, u64) {
        (self, 0)
    }
}

impl Bind for GpuTensor {
    fn resource(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.storage,
            offset: self.offset,
            size: std::num::NonZeroU64::new(self.bytes()),
        })
    }
    fn raw(&self) -> (&wgpu::Buffer, u64) {
        (&self.storage, self.offset)
    }
}

impl std::fmt::Debug for GpuTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuTensor[{}, {}]", self.rows, self.cols)
    }
}

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl Gpu {
    pub(crate) fn check_tensor_size(&self, what: &str, floats: usize) -> Result<u64, Error> {
        let bytes = (floats.max(1) as u64) * 4;
        let limits = self.limits();
        if bytes > limits.max_buffer_size {
            return Err(Error::DeviceLimit {
                what: what.to_string(),
                limit: "max_buffer_size".into(),
                needed: bytes,
                available: limits.max_buffer_size,
            });
        }
        if bytes > limits.max_storage_buffer_binding_size {
            return Err(Error::DeviceLimit {
                what: what.to_string(),
                limit: "max_storage_buffer_binding_size".into(),
                needed: bytes,
                available: limits.max_storage_buffer_binding_size,
            });
        }
        Ok(bytes)
    }

    /// Uploads `data` as a `[rows, cols]` tensor.
    pub fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<GpuTensor, Error> {
        let expected = rows.checked_mul(cols).ok_or_else(|| {
            Error::Config(format!("tensor shape [{rows}, {cols}] overflows usize"))
        })?;
        if data.len() != expected {
            return Err(Error::shape(
                "upload",
                format!("{expected} values for [{rows}, {cols}]"),
                format!("{} values", data.len()),
            ));
        }
        self.check_tensor_size(&format!("a [{rows}, {cols}] tensor"), expected)?;
        self.count_buffer();
        let contents: &[u8] = if data.is_empty() {
            &[0u8; 4]
        } else {
            bytemuck::cast_slice(data)
        };
        let buffer = self.scoped("uploading a tensor", || {
            self.inner
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("fusedmlp tensor"),
                    contents,
                    usage: USAGE,
                })
        })?;
        Ok(GpuTensor {
            storage: Arc::new(buffer),
            offset: 0,
            rows,
            cols,
        })
    }

    /// A zero-filled `[rows, cols]` tensor.
    pub fn zeros(&self, rows: usize, cols: usize) -> Result<GpuTensor, Error> {
        let floats = rows.checked_mul(cols).ok_or_else(|| {
            Error::Config(format!("tensor shape [{rows}, {cols}] overflows usize"))
        })?;
        let bytes = self.check_tensor_size(&format!("a [{rows}, {cols}] tensor"), floats)?;
        self.count_buffer();
        // wgpu zero-initialises new buffers.
        let buffer = self.scoped("allocating a tensor", || {
            self.inner.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("fusedmlp tensor"),
                size: bytes,
                usage: USAGE,
                mapped_at_creation: false,
            })
        })?;
        Ok(GpuTensor {
            storage: Arc::new(buffer),
            offset: 0,
            rows,
            cols,
        })
    }

    /// Overwrites a tensor's contents from the host (no reallocation).
    pub fn write(&self, tensor: &GpuTensor, data: &[f32]) -> Result<(), Error> {
        if data.len() != tensor.len() {
            return Err(Error::shape(
                "write",
                format!("{} values", tensor.len()),
                format!("{} values", data.len()),
            ));
        }
        if data.is_empty() {
            return Ok(());
        }
        self.scoped("writing a tensor", || {
            self.inner.queue.write_buffer(
                &tensor.storage,
                tensor.offset,
                bytemuck::cast_slice(data),
            )
        })
    }

    /// Copies a tensor back to the host (one readback).
    pub fn download(&self, tensor: &GpuTensor) -> Result<Vec<f32>, Error> {
        pollster::block_on(self.download_async(tensor))
    }

    /// A kernel's parameter block holding `data`, bound as a read-only
    /// storage buffer (`var<storage, read>`), never as a uniform buffer:
    /// lavapipe (Mesa 22.3) folds uniform-buffer values that bound a loop
    /// into the shader and, where unrolling makes the shader larger,
    /// compiles a new variant at every dispatch and keeps each one. Logged
    /// steps of a 20 × 64 net at batch 32 grew the process by 8.7 MB a step
    /// and ran at 417 ms instead of 38 (tests/soak.rs holds it flat).
    ///
    /// Parameter blocks are immutable once made, so blocks with the same
    /// bytes share one buffer: a step's passes reuse the blocks of the
    /// steps before instead of allocating their own. The cache keeps the
    /// [`PARAM_CACHE_ENTRIES`](super::cache::PARAM_CACHE_ENTRIES) most recently used blocks, so blocks that
    /// change every step (a step number, a dropout seed) cannot make it grow.
    pub(crate) fn params<T: bytemuck::Pod>(&self, data: &T) -> Result<wgpu::Buffer, Error> {
        let bytes = bytemuck::bytes_of(data);
        if let Some(b) = self
            .inner
            .param_cache
            .lock()
            .ok()
            .and_then(|mut c| c.get(bytes))
        {
            return Ok(b);
        }
        let buffer = self.step_params(data)?;
        if let Ok(mut c) = self.inner.param_cache.lock() {
            c.insert(bytes.to_vec(), buffer.clone());
        }
        Ok(buffer)
    }

    /// A read-only storage buffer holding `data` (a table a kernel reads:
    /// offsets, segments), made once by its owner; `what` names it in errors.
    pub(crate) fn table<T: bytemuck::Pod>(
        &self,
        what: &str,
        data: &[T],
    ) -> Result<wgpu::Buffer, Error> {
        let bytes: &[u8] = if data.is_empty() {
            &[0u8; 4]
        } else {
            bytemuck::cast_slice(data)
        };
        self.count_buffer();
        self.scoped(&format!("uploading {what}"), || {
            self.inner
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(what),
                    contents: bytes,
                    usage: wgpu::BufferUsages::STORAGE,
                })
        })
    }

    /// A parameter block of its own, not shared (what [`Gpu::params`] makes
    /// for bytes it has not seen).
    pub(crate) fn step_params<T: bytemuck::Pod>(&self, data: &T) -> Result<wgpu::Buffer, Error> {
        let bytes = bytemuck::bytes_of(data);
        self.count_buffer();
        self.scoped("creating kernel parameters", || {
            self.inner
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("fusedmlp params"),
                    contents: bytes,
                    usage: wgpu::BufferUsages::STORAGE,
                })
        })
    }
}

impl GpuTensor {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }
    /// Whether it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The underlying buffer, for users who record their own kernels. The
    /// tensor occupies [`GpuTensor::byte_range`] of it (the whole buffer
    /// unless the tensor is a view into an arena): bind that range, for
    /// example with [`GpuTensor::binding`].
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.storage
    }

    /// Where the tensor starts in [`GpuTensor::buffer`], in bytes.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The bytes of [`GpuTensor::buffer`] the tensor occupies.
    pub fn byte_range(&self) -> std::ops::Range<u64> {
        self.offset..self.offset + self.len() as u64 * 4
    }

    /// The binding of exactly this tensor's range, for a bind group entry.
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        Bind::resource(self)
    }

    /// Bytes bound for this tensor: its elements, at least one float (an
    /// empty tensor still binds a valid range).
    fn bytes(&self) -> u64 {
        self.len().max(1) as u64 * 4
    }

    /// A `[rows, cols]` view of this tensor's storage starting `at` floats
    /// into it (a multiple of [`VIEW_ALIGN`]).
    pub(crate) fn view(&self, at: usize, rows: usize, cols: usize) -> Result<GpuTensor, Error> {
        let len = rows
            .checked_mul(cols)
            .and_then(|n| n.checked_add(at))
            .ok_or_else(|| Error::Config(format!("a view [{rows}, {cols}] overflows usize")))?;
        if !at.is_multiple_of(VIEW_ALIGN) || len > self.len() {
            return Err(Error::shape(
                "view",
                format!(
                    "a view inside {} floats at a multiple of {VIEW_ALIGN}",
                    self.len()
                ),
                format!("[{rows}, {cols}] at {at}"),
            ));
        }
        Ok(GpuTensor {
            storage: self.storage.clone(),
            offset: self.offset + at as u64 * 4,
            rows,
            cols,
        })
    }

    /// Records a copy of `floats` elements from `self` (starting `from`
    /// elements in) to `to` (starting `at` elements in).
    pub(crate) fn record_copy_to(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        from: usize,
        to: &GpuTensor,
        at: usize,
        floats: usize,
    ) {
        super::plan::copy_buffer(
            encoder,
            (&self.storage, self.offset + from as u64 * 4),
            (&to.storage, to.offset + at as u64 * 4),
            floats as u64 * 4,
        );
    }

    /// Records zeroing this tensor's range.
    pub(crate) fn record_clear(&self, encoder: &mut wgpu::CommandEncoder) {
        super::plan::clear_buffer(
            encoder,
            &self.storage,
            self.offset,
            Some(self.len() as u64 * 4),
        );
    }
    /// The first `rows` rows, sharing this tensor's storage.
    pub fn prefix_rows(&self, rows: usize) -> Result<GpuTensor, Error> {
        if rows > self.rows {
            return Err(Error::shape(
                "prefix_rows",
                format!("at most {} rows", self.rows),
                format!("{rows} rows"),
            ));
        }
        Ok(GpuTensor {
            storage: self.storage.clone(),
            offset: self.offset,
            rows,
            cols: self.cols,
        })
    }

    /// The same storage seen as `[rows, cols]` (same element count).
    pub fn reshape(&self, rows: usize, cols: usize) -> Result<GpuTensor, Error> {
        if rows * cols != self.len() {
            return Err(Error::shape(
                "reshape",
                format!("{} elements", self.len()),
                format!("[{rows}, {cols}]"),
            ));
        }
        Ok(GpuTensor {
            storage: self.storage.clone(),
            offset: self.offset,
            rows,
            cols,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::cache::PARAM_CACHE_ENTRIES;

    #[test]
    fn param_cache_reuses_and_stays_bounded() {
        let Some(gpu) = crate::gpu::context::tests::gpu_for_test() else {
            return;
        };
        let a = gpu.params(&[1u32, 2, 3, 4]).unwrap();
        let b = gpu.params(&[1u32, 2, 3, 4]).unwrap();
        assert!(a == b, "the same bytes share a buffer");
        let c = gpu.params(&[1u32, 2, 3, 5]).unwrap();
        assert!(a != c, "other bytes get their own buffer");
        for i in 0..(PARAM_CACHE_ENTRIES as u32 + 100) {
            gpu.params(&[7u32, i, 0, 0]).unwrap();
        }
        let len = gpu.inner.param_cache.lock().unwrap().blocks.len();
        assert!(len <= PARAM_CACHE_ENTRIES, "{len} blocks kept");
        let by_use = gpu.inner.param_cache.lock().unwrap().by_use.len();
        assert_eq!(len, by_use);
    }
}
