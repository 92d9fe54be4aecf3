//! `learnrec train`: Adam ([`TowerAdam`]) with linear warm-up + cosine learning rate, per-epoch atomic
//! checkpoints, bit-for-bit `--resume`, and a NaN/Inf guard.
//!
//! Reproducibility: initialisation uses `seed`; the data order of epoch `e` is a ChaCha8
//! permutation seeded by `(seed, e)`; the backend RNG (dropout) is re-seeded from `(seed, step)`
//! before every step. A checkpoint therefore needs only the model record, the optimiser record
//! (Adam moments and step counter) and the step/epoch counters to continue exactly.

use super::config::{ItemTowerVariant, LearnConfig, LossKind};
use super::data::{ItemFeatures, SequenceBatch, UserSequence};
use super::loss::{dense_all_action_loss, last_position_loss};
use super::model::LearnTower;
use crate::{Error, Result};
use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use super::optim::TowerAdam;
use burn::optim::{GradientsParams, Optimizer};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Current checkpoint format: framing as v1 plus a trailing sha256 of every preceding byte.
const MAGIC: &[u8; 8] = b"LRNTWR02";
/// Format v1 (no checksum; still readable, framing-checked only).
const MAGIC_V1: &[u8; 8] = b"LRNTWR01";

/// The item embeddings of a batch for the configured item tower variant.
///
/// # Shapes
/// → `[batch, Lt, dim]`, L2-normalised.
pub fn batch_items<B: Backend>(model: &LearnTower<B>, batch: &SequenceBatch<B>, variant: ItemTowerVariant) -> Tensor<B, 3> {
    match variant {
        ItemTowerVariant::RawContent => batch
            .raw_target_content()
            .expect("raw-content variant is validated to have content input"),
        v => model.item_sequence(batch.target.clone(), v),
    }
}

/// The training loss of one batch.
///
/// # Shapes
/// → scalar `[1]`.
pub fn batch_loss<B: Backend>(model: &LearnTower<B>, batch: &SequenceBatch<B>, cfg: &LearnConfig) -> Tensor<B, 1> {
    let (users, items) = match cfg.tower.item_tower {
        ItemTowerVariant::RawContent => (model.user_sequence(batch.history.clone()), batch_items(model, batch, cfg.tower.item_tower)),
        // Variants 1 and 2: one pass over the history and target tokens together.
        v => model.user_and_item_sequences(batch.history.clone(), batch.target.clone(), v),
    };
    match cfg.train.loss {
        LossKind::DenseAllAction => dense_all_action_loss(users, items, &batch.masks, cfg.train.logit_scale),
        LossKind::LastPosition => last_position_loss(users, items, &batch.masks, cfg.train.logit_scale),
    }
}

/// Header of a checkpoint file (JSON), followed by the model and optimiser records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// The configuration the model was trained with.
    pub config: LearnConfig,
    /// Completed epochs.
    pub epoch: usize,
    /// Completed optimiser steps.
    pub step: u64,
    /// Mean loss of each completed epoch.
    pub epoch_losses: Vec<f32>,
    /// Number of training users (checked on resume).
    pub n_users: usize,
    /// Number of items the model was trained over.
    pub n_items: usize,
}

/// A checkpoint: header, model record bytes, optimiser record bytes.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    pub model: Vec<u8>,
    pub optim: Vec<u8>,
}

impl Checkpoint {
    /// Writes the checkpoint atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let header = serde_json::to_vec(&self.meta).map_err(|e| Error::Invalid(format!("checkpoint header: {e}")))?;
        learnrec_eval::atomic::write_with(path, |w| {
            use sha2::Digest;
            use std::io::Write;
            let mut h = sha2::Sha256::new();
            let mut put = |w: &mut std::io::BufWriter<std::fs::File>, b: &[u8]| {
                h.update(b);
                w.write_all(b)
            };
            put(w, MAGIC)?;
            for part in [&header, &self.model, &self.optim] {
                put(w, &(part.len() as u64).to_le_bytes())?;
                put(w, part)?;
            }
            w.write_all(&h.finalize())
        })?;
        Ok(())
    }

    /// Reads a checkpoint, checking its sha256 (format v2) and its framing.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |m: &str| Error::format(path, "checkpoint", m.to_string());
        let bytes: &[u8] = if bytes.len() >= 8 && &bytes[..8] == MAGIC {
            use sha2::Digest;
            let Some(body_len) = bytes.len().checked_sub(32).filter(|&n| n >= 8) else {
                return Err(bad("truncated (checksum)"));
            };
            let (body, sum) = bytes.split_at(body_len);
            if sha2::Sha256::digest(body).as_slice() != sum {
                return Err(bad("checksum mismatch: the file is corrupted or truncated"));
            }
            body
        } else if bytes.len() >= 8 && &bytes[..8] == MAGIC_V1 {
            &bytes
        } else {
            return Err(bad("not a learnrec tower checkpoint (bad magic)"));
        };
        let mut at = 8usize;
        let mut parts: Vec<Vec<u8>> = Vec::with_capacity(3);
        for _ in 0..3 {
            let len = bytes
                .get(at..at + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
                .ok_or_else(|| bad("truncated (length field)"))?;
            at += 8;
            let part = bytes.get(at..at.saturating_add(len)).ok_or_else(|| bad("truncated (record)"))?;
            parts.push(part.to_vec());
            at += len;
        }
        if at != bytes.len() {
            return Err(bad("trailing bytes after the records"));
        }
        let optim = parts.pop().expect("3 parts");
        let model = parts.pop().expect("3 parts");
        let meta: CheckpointMeta = serde_json::from_slice(&parts[0])
            .map_err(|e| Error::format(path, "header", e.to_string()))?;
        Ok(Checkpoint { meta, model, optim })
    }

    /// The model on any backend (e.g. the inner backend for inference).
    pub fn model<B: Backend>(&self, device: &B::Device, path: &Path) -> Result<LearnTower<B>> {
        let model = self.meta.config.tower.init::<B>(device)?;
        let record = Recorder::<B>::load(&recorder(), self.model.clone(), device)
            .map_err(|e| Error::format(path, "model record", e.to_string()))?;
        Ok(model.load_record(record))
    }
}

fn recorder() -> BinBytesRecorder<FullPrecisionSettings> {
    BinBytesRecorder::default()
}

/// Where `train` writes: `DIR/checkpoint.bin` (latest, per epoch) and `DIR/config.json`.
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.bin")
}

/// Options of a training run besides the config.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Output directory for checkpoints.
    pub out_dir: PathBuf,
    /// Continue from `out_dir/checkpoint.bin`.
    pub resume: bool,
    /// Show a progress bar (loss, lr, samples/s).
    pub progress: bool,
    /// Stop after this many epochs in this invocation (for tests and time-boxed runs).
    pub max_epochs_this_run: Option<usize>,
}

/// Result of a training run.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// Completed epochs in total (including resumed ones).
    pub epochs: usize,
    /// Completed steps in total.
    pub steps: u64,
    /// Loss of every step of this run.
    pub step_losses: Vec<f32>,
    /// Mean loss of every completed epoch (including resumed ones).
    pub epoch_losses: Vec<f32>,
    /// Users skipped for an empty history or target.
    pub skipped_users: usize,
    /// Training samples (users) per second in this run.
    pub samples_per_sec: f64,
}

fn mix(seed: u64, x: u64) -> u64 {
    // splitmix64 of (seed, x): independent streams per epoch/step.
    let mut z = seed ^ x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The user order of epoch `epoch` (0-based): a permutation seeded by `(seed, epoch)`.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(mix(seed, epoch as u64 + 1));
    order.shuffle(&mut rng);
    order
}

/// Trains the towers on `data`, writing a checkpoint after every epoch. Returns the trained
/// model (inner backend) and a report.
pub fn train<B: AutodiffBackend>(
    cfg: &LearnConfig,
    data: &[UserSequence],
    features: &ItemFeatures,
    opts: &TrainOptions,
    device: &B::Device,
) -> Result<(LearnTower<B::InnerBackend>, TrainReport)> {
    cfg.tower.validate()?;
    cfg.train.validate()?;
    features.check(cfg.tower.input, cfg.tower.input_dim)?;
    if cfg.tower.input.is_content() && features.n_items() == 0 {
        return Err(Error::Invalid("the content table is empty".into()));
    }
    let n_items = features.n_items();
    if let Some(bad) = data.iter().flat_map(|s| s.history.iter().chain(&s.target)).find(|&&i| i as usize >= n_items) {
        return Err(Error::Invalid(format!("item id {bad} is out of range (the item table has {n_items} rows)")));
    }
    if cfg.tower.learned_positions && cfg.train.history_len.max(cfg.train.target_len) > cfg.tower.max_len {
        return Err(Error::Invalid(format!(
            "learned positions: `max_len` ({}) is below history/target length {}",
            cfg.tower.max_len,
            cfg.train.history_len.max(cfg.train.target_len)
        )));
    }
    let users: Vec<&UserSequence> = data.iter().filter(|s| !s.history.is_empty() && !s.target.is_empty()).collect();
    let skipped_users = data.len() - users.len();
    // With fewer users than `batch_size` the batch is all users (a batch of `batch_size` would
    // be empty: no step at all, and a reported loss of 0).
    let bs = cfg.train.batch_size.min(users.len());
    if users.len() < 2 {
        return Err(Error::Invalid(format!(
            "need at least 2 users with a non-empty history and target, found {} ({skipped_users} skipped)",
            users.len()
        )));
    }
    // Full batches only: in-batch negatives need a stable batch size (the last partial batch of
    // each epoch is dropped, as in the official code's DataLoader(drop_last) default for DDP).
    let steps_per_epoch = (users.len() / bs).max(1);
    let total_steps = (steps_per_epoch * cfg.train.epochs) as u64;

    super::fused::keep_heap_memory();
    let ckpt_path = checkpoint_path(&opts.out_dir);
    // Burn's Adam (same math and record) with a fused in-place step on the CPU backend.
    let adam = TowerAdam::new(cfg.train.beta1, cfg.train.beta2, cfg.train.adam_eps);
    let mut optim: OptimizerAdaptor<TowerAdam, LearnTower<B>, B> = adam.init();
    let (mut model, mut epoch, mut step, mut epoch_losses) = if opts.resume {
        let ck = Checkpoint::load(&ckpt_path)?;
        if ck.meta.config != *cfg {
            return Err(Error::format(
                &ckpt_path,
                "config",
                "the checkpoint was written with a different configuration; resume with the same config",
            ));
        }
        if ck.meta.n_users != users.len() || ck.meta.n_items != n_items {
            return Err(Error::format(
                &ckpt_path,
                "data",
                format!(
                    "the checkpoint was trained on {} users / {} items, this data has {} / {}",
                    ck.meta.n_users,
                    ck.meta.n_items,
                    users.len(),
                    n_items
                ),
            ));
        }
        let model: LearnTower<B> = ck.model(device, &ckpt_path)?;
        let rec = Recorder::<B>::load(&recorder(), ck.optim.clone(), device)
            .map_err(|e| Error::format(&ckpt_path, "optimizer record", e.to_string()))?;
        optim = optim.load_record(rec);
        (model, ck.meta.epoch, ck.meta.step, ck.meta.epoch_losses)
    } else {
        B::seed(device, cfg.train.seed);
        (cfg.tower.init::<B>(device)?, 0, 0, Vec::new())
    };

    let last_epoch = match opts.max_epochs_this_run {
        Some(n) => (epoch + n).min(cfg.train.epochs),
        None => cfg.train.epochs,
    };
    let bar = if opts.progress {
        let pb = indicatif::ProgressBar::new(total_steps);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb.set_position(step);
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut samples = 0usize;
    let mut step_losses = Vec::new();
    while epoch < last_epoch {
        let order = epoch_order(users.len(), cfg.train.seed, epoch);
        let mut sum = 0f64;
        for chunk in order.chunks_exact(bs).take(steps_per_epoch) {
            let seqs: Vec<&UserSequence> = chunk.iter().map(|&i| users[i]).collect();
            B::seed(device, mix(cfg.train.seed ^ 0xD2, step + 1));
            let batch = SequenceBatch::<B>::new(&seqs, features, cfg.train.history_len, cfg.train.target_len, device);
            let loss = batch_loss(&model, &batch, cfg);
            let value: f32 = loss.clone().into_scalar().elem();
            if !value.is_finite() {
                bar.abandon();
                let hint = if cfg.tower.item_tower == ItemTowerVariant::RawContent {
                    "item tower variant 3 (raw content) is reported by the paper not to train".to_string()
                } else {
                    format!("lower the learning rate (peak {}) or check the input embeddings", cfg.train.lr)
                };
                return Err(Error::Diverged { step: step + 1, loss: value, hint });
            }
            let lr = cfg.train.lr_at(step, total_steps);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            step += 1;
            samples += seqs.len();
            sum += value as f64;
            step_losses.push(value);
            let rate = samples as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("epoch {} loss {value:.4} lr {lr:.2e} {rate:.1} samples/s", epoch + 1));
            bar.inc(1);
        }
        epoch += 1;
        epoch_losses.push((sum / steps_per_epoch as f64) as f32);
        let ck = Checkpoint {
            meta: CheckpointMeta {
                config: cfg.clone(),
                epoch,
                step,
                epoch_losses: epoch_losses.clone(),
                n_users: users.len(),
                n_items,
            },
            model: Recorder::<B>::record(&recorder(), model.clone().into_record(), ())
                .map_err(|e| Error::Invalid(format!("cannot serialise the model: {e}")))?,
            optim: Recorder::<B>::record(&recorder(), optim.to_record(), ())
                .map_err(|e| Error::Invalid(format!("cannot serialise the optimizer: {e}")))?,
        };
        ck.save(&ckpt_path)?;
    }
    bar.finish_and_clear();
    let samples_per_sec = samples as f64 / started.elapsed().as_secs_f64().max(1e-9);
    Ok((
        model.valid(),
        TrainReport { epochs: epoch, steps: step, step_losses, epoch_losses, skipped_users, samples_per_sec },
    ))
}

use burn::tensor::ElementConversion as _;
