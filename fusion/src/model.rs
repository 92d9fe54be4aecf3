//! The two rankers the project compares, behind one trait the trainer and the server drive.

use crate::data::{Batch, Batcher};
use crate::serve::ServePlan;
use crate::fusion::{FusionOutput, LearnFusion, LearnFusionConfig};
use crate::ranker::{Ranker, RankerConfig};
use crate::{Error, Result};
use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// A ranking model: logits of a batch, and optionally an auxiliary loss.
pub trait RankModel<B: Backend>: Module<B> {
    /// `[batch]` logits, and the fusion output when the model has an aux network.
    fn forward_batch(&self, batch: &Batch<B>) -> Result<(Tensor<B, 1>, Option<FusionOutput<B>>)> {
        self.forward_batch_with(batch, None)
    }
    /// As [`RankModel::forward_batch`], with the user and item ID embeddings already gathered
    /// (`[batch, id_dim]` each; sparse training) instead of looked up in the model's tables.
    fn forward_batch_with(
        &self,
        batch: &Batch<B>,
        id_rows: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
    ) -> Result<(Tensor<B, 1>, Option<FusionOutput<B>>)>;
    /// `[batch]` logits for serving and evaluation (no auxiliary outputs computed).
    fn score_batch(&self, batch: &Batch<B>) -> Result<Tensor<B, 1>> {
        Ok(self.forward_batch(batch)?.0)
    }
    /// The underlying reference ranker (its ID tables).
    fn ranker(&self) -> &Ranker<B>;
    /// Replaces the underlying ranker's ID tables.
    fn with_id_tables(self, user: Tensor<B, 2>, item: Tensor<B, 2>) -> Self;
    /// The serving fast path of this model over the dense users `0..n_users` and items
    /// `0..n_items` of `batcher`'s dataset (`None` when it has none: serve with [`RankModel::score_batch`]).
    fn serve_plan(
        &self,
        batcher: &Batcher<'_>,
        n_users: usize,
        n_items: usize,
        device: &B::Device,
    ) -> Result<Option<ServePlan<B>>>;
    /// The λ-weighted auxiliary loss of a fusion output (`None` for models without one).
    fn aux_loss(
        &self,
        _out: &FusionOutput<B>,
        _batch: &Batch<B>,
        _weighted: bool,
    ) -> Option<Tensor<B, 1>> {
        None
    }
}

impl<B: Backend> RankModel<B> for Ranker<B> {
    fn ranker(&self) -> &Ranker<B> {
        self
    }
    fn serve_plan(
        &self,
        batcher: &Batcher<'_>,
        n_users: usize,
        n_items: usize,
        device: &B::Device,
    ) -> Result<Option<ServePlan<B>>> {
        ServePlan::new(self, None, batcher, n_users, n_items, device)
    }
    fn with_id_tables(self, user: Tensor<B, 2>, item: Tensor<B, 2>) -> Self {
        Ranker::with_id_tables(self, user, item)
    }
    fn forward_batch_with(
        &self,
        batch: &Batch<B>,
        id_rows: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
    ) -> Result<(Tensor<B, 1>, Option<FusionOutput<B>>)> {
        if self.extra_dim() > 0 {
            return Err(Error::Invalid(format!(
                "this ranker expects {} extra features; use it inside a FusedRanker",
                self.extra_dim()
            )));
        }
        let x = self.input(
            batch.users.clone(),
            batch.items.clone(),
            batch.fields.clone(),
            None,
            id_rows,
        );
        Ok((self.forward_features(x), None))
    }
}

/// Configuration of [`FusedRanker`].
#[derive(Config, Debug)]
pub struct FusedRankerConfig {
    /// The ranker (its `extra_dim` is set from the fusion's output width).
    pub ranker: RankerConfig,
    /// The LEARN aux network.
    pub fusion: LearnFusionConfig,
}

impl FusedRankerConfig {
    /// Builds the fused ranker.
    pub fn init<B: Backend>(&self, device: &B::Device) -> FusedRanker<B> {
        let ranker = self
            .ranker
            .clone()
            .with_extra_dim(self.fusion.output_dim())
            .init(device);
        FusedRanker {
            ranker,
            fusion: self.fusion.init(device),
        }
    }
}

/// The reference ranker with the LEARN aux network plugged in: its fused features sit beside the
/// ID embeddings in the ranker's input.
#[derive(Module, Debug)]
pub struct FusedRanker<B: Backend> {
    pub ranker: Ranker<B>,
    pub fusion: LearnFusion<B>,
}

fn learn_of<B: Backend>(batch: &Batch<B>) -> Result<crate::fusion::LearnInputs<B>> {
    batch.learn.clone().ok_or_else(|| {
        Error::Invalid(
            "the fused ranker needs LEARN inputs: build its batches with a LearnLookup".into(),
        )
    })
}

impl<B: Backend> FusedRanker<B> {
    /// The reference forward pass: the fused features concatenated into the ranker's input,
    /// as the plug-in API describes. [`RankModel::forward_batch_with`] computes the same
    /// block-wise for plain MLP rankers.
    ///
    /// # Shapes
    /// - as [`RankModel::forward_batch_with`]: `[batch]` logits
    pub fn forward_batch_reference(
        &self,
        batch: &Batch<B>,
        id_rows: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
    ) -> Result<(Tensor<B, 1>, Option<FusionOutput<B>>)> {
        let out = self.fusion.forward(learn_of(batch)?);
        let x = self.ranker.input(
            batch.users.clone(),
            batch.items.clone(),
            batch.fields.clone(),
            Some(out.features.clone()),
            id_rows,
        );
        let logits = self.ranker.forward_features(x);
        Ok((logits, Some(out)))
    }
}

impl<B: Backend> RankModel<B> for FusedRanker<B> {
    fn ranker(&self) -> &Ranker<B> {
        &self.ranker
    }
    fn serve_plan(
        &self,
        batcher: &Batcher<'_>,
        n_users: usize,
        n_items: usize,
        device: &B::Device,
    ) -> Result<Option<ServePlan<B>>> {
        ServePlan::new(&self.ranker, Some(&self.fusion), batcher, n_users, n_items, device)
    }
    fn with_id_tables(mut self, user: Tensor<B, 2>, item: Tensor<B, 2>) -> Self {
        self.ranker = self.ranker.with_id_tables(user, item);
        self
    }
    fn forward_batch_with(
        &self,
        batch: &Batch<B>,
        id_rows: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
    ) -> Result<(Tensor<B, 1>, Option<FusionOutput<B>>)> {
        if !self.ranker.is_plain_mlp() {
            return self.forward_batch_reference(batch, id_rows);
        }
        // Block-wise first layer: the frozen LEARN embeddings enter through their own rows of
        // the weight (no concatenation into the ranker's input, no input gradient for them).
        // Equal to `forward_batch_reference` up to float rounding (tests/fast_paths.rs).
        let p = self.fusion.forward_parts(learn_of(batch)?);
        let x = self.ranker.input(
            batch.users.clone(),
            batch.items.clone(),
            batch.fields.clone(),
            Some(p.hidden.clone()),
            id_rows,
        );
        let tail = self
            .fusion
            .includes_embeddings()
            .then(|| Tensor::cat(vec![p.user.clone(), p.item.clone()], 1));
        let logits = self.ranker.forward_split(x, tail);
        let features = if self.fusion.includes_embeddings() {
            Tensor::cat(vec![p.hidden, p.user, p.item], 1)
        } else {
            p.hidden
        };
        Ok((
            logits,
            Some(FusionOutput {
                features,
                aux_logit: p.aux_logit,
            }),
        ))
    }

    fn score_batch(&self, batch: &Batch<B>) -> Result<Tensor<B, 1>> {
        let learn = batch.learn.clone().ok_or_else(|| {
            Error::Invalid(
                "the fused ranker needs LEARN inputs: build its batches with a LearnLookup".into(),
            )
        })?;
        let features = self.fusion.features(learn);
        Ok(self.ranker.forward(
            batch.users.clone(),
            batch.items.clone(),
            batch.fields.clone(),
            Some(features),
        ))
    }

    fn aux_loss(
        &self,
        out: &FusionOutput<B>,
        batch: &Batch<B>,
        weighted: bool,
    ) -> Option<Tensor<B, 1>> {
        let w = weighted.then(|| batch.weights.clone());
        Some(self.fusion.aux_loss(out, batch.labels.clone(), w))
    }
}
