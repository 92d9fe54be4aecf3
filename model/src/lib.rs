//! learnrec-model: the Burn side of LEARN.
//!
//! - CEG (content extraction): frozen LLM / BERT backbones ([`backbone`]), weight loaders for
//!   Hugging Face directories ([`loader`]) and GGUF files ([`gguf`], [`quant`]), tokenizers
//!   ([`tokenizer`]), pooling ([`pooling`]), item text templates ([`text`]) and the `embed`
//!   pipeline ([`embed`]).
//! - PCH (preference alignment): the LEARN user tower and item tower, the dense all-action loss,
//!   training and retrieval metrics ([`towers`]).

pub mod backbone;
pub mod embed;
pub mod error;
pub mod gguf;
pub(crate) mod host_gemm;
pub mod loader;
pub mod pooling;
pub mod quant;
pub mod text;
pub mod tokenizer;
pub mod towers;
pub mod weights;

pub use error::{Error, Result};

/// The default CPU backend (Burn's pure-Rust Flex backend).
pub type CpuBackend = burn::backend::Flex;
/// The default CPU backend with autodiff, for training.
pub type CpuAutodiff = burn::backend::Autodiff<CpuBackend>;
