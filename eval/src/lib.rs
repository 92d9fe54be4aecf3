//! learnrec-eval: the Burn-free lowest layer of learnrec.
//!
//! Data in, numbers out: catalog and interaction readers, dense id maps, temporal splits, the
//! paper's user/item segments, the synthetic e-commerce world and its oracle, the embedding store
//! (SafeTensors), AUC/UAUC/WUAUC (`fusion-eval`) and the A/B simulation engine (`ab-sim`).
//! It never depends on Burn, so it builds in seconds and runs where no model runs.

pub mod abtest;
pub mod assets;
pub mod atomic;
pub mod data;
pub mod error;
pub mod fusion_eval;
pub mod i2i;
pub mod metrics;
pub mod segment;
pub mod split;
pub mod stats;
pub mod store;
pub mod world;

pub use error::{Error, Result};
