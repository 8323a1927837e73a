//! [`GpuTensor`]: a row-major f32 matrix that lives on the device.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use super::context::Gpu;
use crate::error::Error;

/// A row-major `[rows, cols]` f32 matrix in a GPU storage buffer. Clones
/// share the buffer. Kernels take and return these so layers chain without
/// copying data back to the host.
#[derive(Clone)]
pub struct GpuTensor {
    pub(crate) buffer: Arc<wgpu::Buffer>,
    rows: usize,
    cols: usize,
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
    fn check_tensor_size(&self, what: &str, floats: usize) -> Result<u64, Error> {
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
            buffer: Arc::new(buffer),
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
            buffer: Arc::new(buffer),
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
            self.inner
                .queue
                .write_buffer(&tensor.buffer, 0, bytemuck::cast_slice(data))
        })
    }

    /// Copies a tensor back to the host (one readback).
    pub fn download(&self, tensor: &GpuTensor) -> Result<Vec<f32>, Error> {
        self.read_f32(&tensor.buffer, 0, tensor.len())
    }

    /// A kernel's parameter block holding `data`, bound as a read-only
    /// storage buffer (`var<storage, read>`), never as a uniform buffer:
    /// lavapipe (Mesa 22.3) folds uniform-buffer values that bound a loop
    /// into the shader and, where unrolling makes the shader larger,
    /// compiles a new variant at every dispatch and keeps each one. Logged
    /// steps of a 20 × 64 net at batch 32 grew the process by 8.7 MB a step
    /// and ran at 417 ms instead of 38 (tests/soak.rs holds it flat).
    pub(crate) fn params<T: bytemuck::Pod>(&self, data: &T) -> Result<wgpu::Buffer, Error> {
        self.scoped("creating kernel parameters", || {
            self.inner
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("fusedmlp params"),
                    contents: bytemuck::bytes_of(data),
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
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
    /// The underlying buffer, for users who record their own kernels.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
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
            buffer: self.buffer.clone(),
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
            buffer: self.buffer.clone(),
            rows,
            cols,
        })
    }
}
