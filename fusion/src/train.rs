//! The training loop shared by every ranker: Adam, shuffled mini-batches, early stopping on a
//! validation split, and prediction.

use crate::data::{Batcher, RankingExample, Split};
use crate::loss::weighted_bce_with_logits;
use crate::metrics::{auc, logloss};
use crate::model::RankModel;
use crate::sparse::SparseTable;
use crate::{Error, Result};
use burn::config::Config;
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom as _;
use std::time::{Duration, Instant};

/// What early stopping watches on the validation split.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum StopMetric {
    /// Validation AUC (higher is better).
    Auc,
    /// Validation log loss (lower is better).
    Logloss,
}

/// How the user and item ID tables are updated.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum EmbeddingUpdate {
    /// Burn's dense embedding gradient and Adam over the whole table (fine for small tables).
    Dense,
    /// Row-wise Adam on the touched rows only ([`crate::sparse`]); for large ID tables.
    Sparse,
}

/// Training options.
#[derive(Config, Debug)]
pub struct TrainConfig {
    /// Examples per step.
    #[config(default = 256)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[config(default = 2e-3)]
    pub lr: f64,
    /// Maximum passes over the training split.
    #[config(default = 10)]
    pub max_epochs: usize,
    /// Stop after this many epochs without validation improvement.
    #[config(default = 2)]
    pub patience: usize,
    /// Early-stopping metric.
    #[config(default = "StopMetric::Auc")]
    pub stop_metric: StopMetric,
    /// Weight the losses by the examples' sample weights.
    #[config(default = false)]
    pub use_weights: bool,
    /// Shuffling seed.
    #[config(default = 7)]
    pub seed: u64,
    /// How ID tables are updated.
    #[config(default = "EmbeddingUpdate::Sparse")]
    pub embedding_update: EmbeddingUpdate,
    /// Stop an epoch after this many steps (0 = no cap; for benchmarks).
    #[config(default = 0)]
    pub max_steps_per_epoch: usize,
}

/// Validation numbers after one epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: f64,
    pub valid_auc: Option<f64>,
    pub valid_logloss: f64,
}

/// What a training run did.
#[derive(Debug, Clone, Default)]
pub struct TrainReport {
    /// Per-epoch statistics.
    pub epochs: Vec<EpochStats>,
    /// Epoch (1-based) whose weights were kept.
    pub best_epoch: usize,
    /// Training examples processed per second of training steps (batching, forward, backward,
    /// optimizer; validation excluded).
    pub samples_per_sec: f64,
    /// Time spent in training steps.
    pub train_time: Duration,
}

/// Trains `model` on `split.train` with early stopping on `split.valid`; returns the best model
/// (by the stop metric) and the report. `on_step` is called after each step (progress bars).
pub fn train<B, M>(
    name: &str,
    mut model: M,
    batcher: &Batcher<'_>,
    split: &Split,
    cfg: &TrainConfig,
    device: &B::Device,
    mut on_step: impl FnMut(usize, f64),
) -> Result<(M, TrainReport)>
where
    B: AutodiffBackend,
    M: RankModel<B> + AutodiffModule<B> + Clone,
    M::InnerModule: RankModel<B::InnerBackend>,
{
    if split.train.is_empty() {
        return Err(Error::Invalid(format!(
            "`{name}`: the training split is empty"
        )));
    }
    if cfg.batch_size == 0 {
        return Err(Error::Invalid("batch size must be at least 1".into()));
    }
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init::<B, M>();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..split.train.len()).collect();
    let mut report = TrainReport::default();
    let mut best: Option<(f64, M)> = None;
    let mut since_best = 0;
    let mut seen = 0usize;
    let mut step = 0u64;
    let mut buf: Vec<RankingExample> = Vec::with_capacity(cfg.batch_size);
    let mut tables = match cfg.embedding_update {
        EmbeddingUpdate::Dense => None,
        EmbeddingUpdate::Sparse => Some((
            SparseTable::from_tensor(model.ranker().user_emb.weight.val())?,
            SparseTable::from_tensor(model.ranker().item_emb.weight.val())?,
        )),
    };
    for epoch in 1..=cfg.max_epochs.max(1) {
        order.shuffle(&mut rng);
        let t0 = Instant::now();
        let (mut loss_sum, mut loss_n) = (0.0f64, 0usize);
        for (k, chunk) in order.chunks(cfg.batch_size).enumerate() {
            if cfg.max_steps_per_epoch > 0 && k >= cfg.max_steps_per_epoch {
                break;
            }
            buf.clear();
            buf.extend(chunk.iter().map(|&i| split.train[i]));
            let host = batcher.batch(&buf);
            let batch = host.to_device::<B>(device);
            let n = host.len();
            let leaves = tables.as_ref().map(|(ut, it)| {
                let leaf = |t: &SparseTable, rows: &[i64]| {
                    Tensor::<B, 2>::from_data(TensorData::new(t.gather(rows), [n, t.dim()]), device)
                        .require_grad()
                };
                (leaf(ut, &host.users), leaf(it, &host.items))
            });
            let (logits, fusion) = model.forward_batch_with(&batch, leaves.clone())?;
            let w = cfg.use_weights.then(|| batch.weights.clone());
            let mut loss = weighted_bce_with_logits(logits, batch.labels.clone(), w);
            if let Some(aux) = fusion
                .as_ref()
                .and_then(|f| model.aux_loss(f, &batch, cfg.use_weights))
            {
                loss = loss + aux;
            }
            let lv = loss.clone().into_scalar().elem::<f32>();
            step += 1;
            if !lv.is_finite() {
                return Err(Error::Diverged {
                    model: name.to_owned(),
                    step,
                    loss: lv,
                });
            }
            let grads = loss.backward();
            if let (Some((ut, it)), Some((lu, li))) = (tables.as_mut(), leaves) {
                for (t, leaf, rows) in [(ut, lu, &host.users), (it, li, &host.items)] {
                    if let Some(g) = leaf.grad(&grads) {
                        let g: Vec<f32> =
                            g.into_data().convert::<f32>().into_vec().map_err(|e| {
                                Error::Invalid(format!(
                                    "cannot read an ID-embedding gradient: {e:?}"
                                ))
                            })?;
                        t.step(rows, &g, cfg.lr);
                    }
                }
            }
            let grads = GradientsParams::from_grads(grads, &model);
            model = optim.step(cfg.lr, model, grads);
            loss_sum += f64::from(lv);
            loss_n += 1;
            seen += buf.len();
            on_step(epoch, f64::from(lv));
        }
        if let Some((ut, it)) = &tables {
            model = model.with_id_tables(ut.to_tensor(device), it.to_tensor(device));
        }
        report.train_time += t0.elapsed();
        let valid = if split.valid.is_empty() {
            &split.train
        } else {
            &split.valid
        };
        let p = predict(&model.valid(), batcher, valid, 4096, device)?;
        let labels: Vec<f32> = valid.iter().map(|e| e.label).collect();
        let stats = EpochStats {
            epoch,
            train_loss: loss_sum / loss_n.max(1) as f64,
            valid_auc: auc(&p, &labels),
            valid_logloss: logloss(&p, &labels),
        };
        report.epochs.push(stats);
        let score = match cfg.stop_metric {
            StopMetric::Auc => stats.valid_auc.unwrap_or(0.5),
            StopMetric::Logloss => -stats.valid_logloss,
        };
        if best.as_ref().is_none_or(|(b, _)| score > *b) {
            best = Some((score, model.clone()));
            report.best_epoch = epoch;
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= cfg.patience {
                break;
            }
        }
    }
    report.samples_per_sec = seen as f64 / report.train_time.as_secs_f64().max(1e-9);
    let model = best.map(|(_, m)| m).unwrap_or(model);
    Ok((model, report))
}

use burn::tensor::ElementConversion as _;

/// Conversion probabilities of `examples` (inference backend, batches of `batch_size`).
pub fn predict<B: Backend, M: RankModel<B>>(
    model: &M,
    batcher: &Batcher<'_>,
    examples: &[RankingExample],
    batch_size: usize,
    device: &B::Device,
) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(batch_size.max(1)) {
        let batch = batcher.batch(chunk).to_device::<B>(device);
        let logits = model.score_batch(&batch)?;
        let p: Vec<f32> = sigmoid(logits)
            .into_data()
            .convert::<f32>()
            .into_vec()
            .map_err(|e| Error::Invalid(format!("cannot read predictions: {e:?}")))?;
        out.extend(p);
    }
    Ok(out)
}
