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
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
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

/// Time spent in each phase of one training step (for benchmarks; [`Trainer::step`] fills it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepTimes {
    /// Host batching (ID rows, categorical rows, LEARN lookups) and the move to the device.
    pub batch: Duration,
    /// Gathering the sparse ID rows into leaf tensors.
    pub gather: Duration,
    /// Forward pass and losses, up to reading the loss value.
    pub forward: Duration,
    /// `backward`.
    pub backward: Duration,
    /// Row-wise Adam on the sparse ID tables.
    pub sparse: Duration,
    /// Burn's Adam on the model's parameters.
    pub optim: Duration,
}

impl StepTimes {
    /// Sum of the phases.
    pub fn total(&self) -> Duration {
        self.batch + self.gather + self.forward + self.backward + self.sparse + self.optim
    }
}

/// One model with its optimizer state (Adam, and the sparse ID tables when configured), stepped
/// one mini-batch at a time. [`train`] drives it; benchmarks drive two of them in alternation.
pub struct Trainer<B, M>
where
    B: AutodiffBackend,
    M: RankModel<B> + AutodiffModule<B> + Clone,
{
    model: Option<M>,
    optim: OptimizerAdaptor<Adam, M, B>,
    tables: Option<(SparseTable, SparseTable)>,
    lr: f64,
    use_weights: bool,
    steps: u64,
    device: B::Device,
}

impl<B, M> Trainer<B, M>
where
    B: AutodiffBackend,
    M: RankModel<B> + AutodiffModule<B> + Clone,
{
    /// A trainer of `model` with `cfg`'s optimiser settings (Adam, ε = 1e-8; ID tables dense or
    /// sparse as `cfg.embedding_update` says).
    pub fn new(model: M, cfg: &TrainConfig, device: &B::Device) -> Result<Self> {
        let tables = match cfg.embedding_update {
            EmbeddingUpdate::Dense => None,
            EmbeddingUpdate::Sparse => Some((
                SparseTable::from_tensor(model.ranker().user_emb.weight.val())?,
                SparseTable::from_tensor(model.ranker().item_emb.weight.val())?,
            )),
        };
        Ok(Trainer {
            model: Some(model),
            optim: AdamConfig::new().with_epsilon(1e-8).init::<B, M>(),
            tables,
            lr: cfg.lr,
            use_weights: cfg.use_weights,
            steps: 0,
            device: device.clone(),
        })
    }

    /// One step on `examples` (forward, main + aux loss, backward, Adam); returns the loss.
    /// `times`, when given, receives the phases' durations. A non-finite loss is
    /// [`Error::Diverged`] and leaves the model as it was.
    pub fn step(
        &mut self,
        name: &str,
        batcher: &Batcher<'_>,
        examples: &[RankingExample],
        mut times: Option<&mut StepTimes>,
    ) -> Result<f32> {
        let device = &self.device;
        let model = self.model.take().ok_or_else(|| {
            Error::Invalid(format!("`{name}`: no model (an earlier step failed)"))
        })?;
        let mut mark = Instant::now();
        let mut lap = |field: fn(&mut StepTimes) -> &mut Duration,
                       t: &mut Option<&mut StepTimes>| {
            let now = Instant::now();
            if let Some(t) = t.as_deref_mut() {
                *field(t) += now - mark;
            }
            mark = now;
        };
        let host = batcher.batch(examples);
        let batch = host.to_device::<B>(device);
        let n = host.len();
        lap(|t| &mut t.batch, &mut times);
        let leaves = self.tables.as_ref().map(|(ut, it)| {
            let leaf = |t: &SparseTable, rows: &[i64]| {
                Tensor::<B, 2>::from_data(TensorData::new(t.gather(rows), [n, t.dim()]), device)
                    .require_grad()
            };
            (leaf(ut, &host.users), leaf(it, &host.items))
        });
        lap(|t| &mut t.gather, &mut times);
        let fwd = model.forward_batch_with(&batch, leaves.clone());
        let (logits, fusion) = match fwd {
            Ok(x) => x,
            Err(e) => {
                self.model = Some(model);
                return Err(e);
            }
        };
        let w = self.use_weights.then(|| batch.weights.clone());
        let mut loss = weighted_bce_with_logits(logits, batch.labels.clone(), w);
        if let Some(aux) = fusion
            .as_ref()
            .and_then(|f| model.aux_loss(f, &batch, self.use_weights))
        {
            loss = loss + aux;
        }
        let lv = loss.clone().into_scalar().elem::<f32>();
        self.steps += 1;
        if !lv.is_finite() {
            self.model = Some(model);
            return Err(Error::Diverged {
                model: name.to_owned(),
                step: self.steps,
                loss: lv,
            });
        }
        lap(|t| &mut t.forward, &mut times);
        let grads = loss.backward();
        lap(|t| &mut t.backward, &mut times);
        if let (Some((ut, it)), Some((lu, li))) = (self.tables.as_mut(), leaves) {
            for (t, leaf, rows) in [(ut, lu, &host.users), (it, li, &host.items)] {
                if let Some(g) = leaf.grad(&grads) {
                    let g: Vec<f32> = g.into_data().convert::<f32>().into_vec().map_err(|e| {
                        Error::Invalid(format!("cannot read an ID-embedding gradient: {e:?}"))
                    })?;
                    t.step(rows, &g, self.lr);
                }
            }
        }
        lap(|t| &mut t.sparse, &mut times);
        let grads = GradientsParams::from_grads(grads, &model);
        self.model = Some(self.optim.step(self.lr, model, grads));
        lap(|t| &mut t.optim, &mut times);
        Ok(lv)
    }

    /// The model, with the sparse ID tables written back into its `Embedding`s.
    pub fn model(&mut self) -> Result<M> {
        let mut model = self
            .model
            .take()
            .ok_or_else(|| Error::Invalid("no model (an earlier step failed)".into()))?;
        if let Some((ut, it)) = &self.tables {
            model = model.with_id_tables(ut.to_tensor(&self.device), it.to_tensor(&self.device));
        }
        self.model = Some(model.clone());
        Ok(model)
    }
}

/// The first epoch's shuffled order of `n` training examples, as [`train`] visits them with
/// seed `seed` (benchmarks replay it).
pub fn epoch_order(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    order
}

/// Trains `model` on `split.train` with early stopping on `split.valid`; returns the best model
/// (by the stop metric) and the report. `on_step` is called after each step (progress bars).
pub fn train<B, M>(
    name: &str,
    model: M,
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
    let mut trainer = Trainer::new(model, cfg, device)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..split.train.len()).collect();
    let mut report = TrainReport::default();
    let mut best: Option<(f64, M)> = None;
    let mut since_best = 0;
    let mut seen = 0usize;
    let mut buf: Vec<RankingExample> = Vec::with_capacity(cfg.batch_size);
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
            let lv = trainer.step(name, batcher, &buf, None)?;
            loss_sum += f64::from(lv);
            loss_n += 1;
            seen += buf.len();
            on_step(epoch, f64::from(lv));
        }
        let model = trainer.model()?;
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
            best = Some((score, model));
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
    let model = match best {
        Some((_, m)) => m,
        None => trainer.model()?,
    };
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
