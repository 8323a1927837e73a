//! The GPU host layer: device context, tensors, shader assembly and dispatch.

pub mod context;
pub mod elementwise;
pub mod shader;
pub mod tensor;

pub use context::Gpu;
pub use tensor::GpuTensor;
