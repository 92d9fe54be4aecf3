//! learnrec-fusion: the paper's ranking-side set-up.
//!
//! - [`ranker`]: a reference industrial ranker (ID + categorical embeddings → MLP or DCN-v2 →
//!   logit), the baseline.
//! - [`fusion`]: the LEARN auxiliary network and plug-in API — [`fusion::LearnFusion`] turns a
//!   batch's frozen LEARN user/item embeddings into fused features for any Burn ranking model,
//!   plus its own λ-weighted CVR loss. See `examples/plug_in.rs`.
//! - [`lookup`]: host-side LEARN lookups with cold-start fallbacks (OOV users/items, content-derived
//!   item embeddings).
//! - [`model`]: the baseline and fused rankers behind [`model::RankModel`]; [`train`]: the
//!   training loop with early stopping; [`serve`]: latency benchmarking; [`io`]: data readers,
//!   predictions and saved rankers; [`toy`]: a small generated world for tests and benchmarks;
//!   [`arm`]: saved rankers as A/B-simulator arms (`ab-sim`).

pub mod arm;
pub mod data;
pub mod error;
pub mod fusion;
pub mod io;
pub mod lookup;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod ranker;
pub mod serve;
pub mod sparse;
pub mod toy;
pub mod train;

pub use error::{Error, Result};
pub use fusion::{FusionOutput, LearnFusion, LearnFusionConfig, LearnInputs};
pub use lookup::LearnLookup;
pub use model::{FusedRanker, FusedRankerConfig, RankModel};
pub use ranker::{Interaction, Ranker, RankerConfig};

/// The default CPU backend (Burn's Flex).
pub type CpuBackend = learnrec_model::CpuBackend;
/// The default CPU backend with autodiff.
pub type CpuAutodiff = learnrec_model::CpuAutodiff;

/// Burn, re-exported so binaries use the exact version this crate was built with.
pub use burn;
