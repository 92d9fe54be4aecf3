//! A format-independent source of named f32 tensors, so every backbone loads the same way from
//! a Hugging Face directory ([`crate::loader`]) or a GGUF file ([`crate::gguf`]).
//!
//! Names are Hugging Face's (e.g. `model.layers.0.self_attn.q_proj.weight`); each source maps its
//! own names onto them and documents the mapping. Shapes are PyTorch's (`[out, in]` for linear
//! weights); the backbone transposes where Burn wants `[in, out]`.

use crate::Result;

/// A tensor read as f32: its shape and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct F32Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A source of named tensors, dequantised / cast to f32 on read.
pub trait TensorSource {
    /// Reads tensor `name` (Hugging Face naming). A missing tensor is an error naming the file
    /// and the tensor.
    fn tensor(&self, name: &str) -> Result<F32Tensor>;
    /// Whether tensor `name` exists.
    fn contains(&self, name: &str) -> bool;
    /// Reads tensor `name` and checks its shape, with an error naming file, tensor and shapes.
    fn tensor_shaped(&self, name: &str, shape: &[usize]) -> Result<F32Tensor> {
        let t = self.tensor(name)?;
        if t.shape != shape {
            return Err(crate::Error::Invalid(format!(
                "{}: tensor `{name}` has shape {:?}, expected {:?}",
                self.describe(),
                t.shape,
                shape
            )));
        }
        Ok(t)
    }
    /// The file or directory behind this source, for error messages.
    fn describe(&self) -> String;
}
