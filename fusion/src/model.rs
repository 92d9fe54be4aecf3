//! The two rankers the project compares, behind one trait the trainer and the server drive.

use crate::data::Batch;
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

impl<B: Backend> RankModel<B> for FusedRanker<B> {
    fn ranker(&self) -> &Ranker<B> {
        &self.ranker
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
        let learn = batch.learn.clone().ok_or_else(|| {
            Error::Invalid(
                "the fused ranker needs LEARN inputs: build its batches with a LearnLookup".into(),
            )
        })?;
        let out = self.fusion.forward(learn);
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
