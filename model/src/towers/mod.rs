//! LEARN towers (PCH): the user tower, item tower variants, the dense all-action loss, training
//! with resumable checkpoints, and retrieval metrics (H@K, R@K, N@K).
//!
//! - [`config`]: [`TowerConfig`], [`TrainConfig`], [`InputKind`], [`ItemTowerVariant`], [`LossKind`].
//! - [`model`]: [`LearnTower`] (content projection → causal transformer → projection → L2 norm).
//! - [`attention`]: the lean fused-QKV self-attention and LayerNorm used by the tower.
//! - [`fused`]: fused CPU kernels (causal attention, LayerNorm, dense loss) with hand-written
//!   backward passes.
//! - [`fused_linear`]: fused `act(x·W + b)` (identity or GELU) with a hand-written backward.
//! - [`optim`]: [`TowerAdam`](optim::TowerAdam), Burn's Adam with a fused in-place CPU step.
//! - [`loss`]: [`dense_all_action_loss`] and the official code's [`last_position_loss`].
//! - [`data`]: [`UserSequence`], [`ItemFeatures`], [`SequenceBatch`].
//! - [`train`]: [`train()`](train::train) with per-epoch checkpoints and `--resume`.
//! - [`io`]: the sequences file (JSON Lines), the item vocabulary beside a checkpoint, config files.
//! - [`retrieval`]: user/item embeddings, exact top-K, [`evaluate`](retrieval::evaluate).

pub mod attention;
pub mod config;
pub mod data;
pub mod fused;
pub mod fused_linear;
pub mod io;
pub mod loss;
pub mod model;
pub mod optim;
pub mod retrieval;
pub mod train;

pub use config::{AttentionMask, InputKind, ItemTowerVariant, LearnConfig, LossKind, TowerConfig, TrainConfig};
pub use data::{ItemFeatures, SequenceBatch, UserSequence};
pub use loss::{LossMasks, dense_all_action_loss, last_position_loss};
pub use model::{LearnTower, TowerInput};
pub use optim::TowerAdam;
pub use train::{Checkpoint, TrainOptions, TrainReport, train};
