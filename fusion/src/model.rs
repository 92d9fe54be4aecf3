//! The two rankers the project compares, behind one trait the trainer and the server drive.

use crate::data::{Batch, Batcher};
use crate::fusion::{FusionOutput, LearnFusion, LearnFusionConfig};
use crate::ranker::{Ranker, RankerConfig};
use crate::serve::ServePlan;
use crate::{Error, Result};
use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
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

impl<B: Backend> FusedRanker<B> {
    /// The training forward pass with block-wise first layers (plain MLP rankers), equal to
    /// [`FusedRanker::forward_batch_reference`] up to float rounding (tests/fast_paths.rs):
    /// - the ranker's first layer multiplies each input block by its rows of the weight and sums
    ///   (no concatenation of the fused features into the ranker's input);
    /// - the LEARN embeddings are frozen inputs: `u = x + m·d` (x the looked-up embedding, zero
    ///   where missing, m the missing mask, d the learned default) enters every linear layer as
    ///   `x·W + m·(d·W)`, so only the `[1, dim]` default carries a gradient, not a
    ///   `[batch, dim]` input; only the product feature `(u ⊙ i)·A_p` needs the filled rows.
    fn forward_blocks(
        &self,
        batch: &Batch<B>,
        id_rows: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
        learn: crate::fusion::LearnInputs<B>,
    ) -> (Tensor<B, 1>, Option<FusionOutput<B>>) {
        let f = &self.fusion;
        let [n, du] = learn.user.dims();
        let di = learn.item.dims()[1];
        let sg = |x: Tensor<B, 2>| if f.stop_gradient { x.detach() } else { x };
        let (du_val, di_val) = (f.default_user.val(), f.default_item.val());
        // `m·(d·W)` for each missing mask, `[n, out]`.
        let defaults = |w: &Tensor<B, 2>, at: usize, du_d: Tensor<B, 2>, di_d: Tensor<B, 2>| {
            let mut acc: Option<Tensor<B, 2>> = None;
            for (m, d, from, to) in [
                (&learn.user_missing, du_d, at, at + du),
                (&learn.item_missing, di_d, at + du, at + du + di),
            ] {
                if let Some(m) = m {
                    let t = m.clone() * d.matmul(w.clone().slice([from..to]));
                    acc = Some(match acc {
                        Some(a) => a + t,
                        None => t,
                    });
                }
            }
            acc
        };
        let raw = Tensor::cat(vec![learn.user.clone(), learn.item.clone()], 1);
        let filled = |x: Tensor<B, 2>, m: &Option<Tensor<B, 2>>, d: Tensor<B, 2>| match m {
            Some(m) => x + d * m.clone(),
            None => x,
        };
        // aux network, first layer block-wise
        let first = &f.mlp[0];
        let a1 = first.weight.val();
        let mut pre = raw.clone().matmul(a1.clone().slice([0..du + di]));
        if let Some(b) = &first.bias {
            pre = pre + b.val().unsqueeze_dim(0);
        }
        if let Some(t) = defaults(&a1, 0, du_val.clone(), di_val.clone()) {
            pre = pre + t;
        }
        // the default-filled rows are needed only by the product feature and the features
        // output with the embeddings
        let ui = (f.product_feature || f.include_embeddings).then(|| {
            (
                filled(learn.user.clone(), &learn.user_missing, du_val.clone()),
                filled(learn.item.clone(), &learn.item_missing, di_val.clone()),
            )
        });
        if f.product_feature
            && let Some((u, i)) = &ui
        {
            pre = pre + (u.clone() * i.clone()).matmul(a1.slice([du + di..du + di + du]));
        }
        let mut h = relu(pre);
        for l in &f.mlp[1..] {
            h = relu(l.forward(h));
        }
        let aux_logit = f.head.forward(h.clone()).reshape([n]);
        // ranker, first layer block-wise
        let r = &self.ranker;
        let x = r.input(
            batch.users.clone(),
            batch.items.clone(),
            batch.fields.clone(),
            Some(sg(h.clone())),
            id_rows,
        );
        let k = x.dims()[1];
        let w = r.mlp[0].weight.val();
        let mut z = x.matmul(w.clone().slice([0..k]));
        if f.include_embeddings {
            z = z + raw.matmul(w.clone().slice([k..k + du + di]));
            if let Some(t) = defaults(&w, k, sg(du_val), sg(di_val)) {
                z = z + t;
            }
        }
        if let Some(b) = &r.mlp[0].bias {
            z = z + b.val().unsqueeze_dim(0);
        }
        let mut y = relu(z);
        for l in &r.mlp[1..] {
            y = relu(l.forward(y));
        }
        let logits = r.head.forward(y).reshape([n]);
        let features = match ui {
            Some((u, i)) if f.include_embeddings => Tensor::cat(vec![h, u, i], 1),
            _ => h,
        };
        (
            logits,
            Some(FusionOutput {
                features: sg(features),
                aux_logit,
            }),
        )
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
        ServePlan::new(
            &self.ranker,
            Some(&self.fusion),
            batcher,
            n_users,
            n_items,
            device,
        )
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
        if !self.ranker.is_plain_mlp() || self.fusion.mlp.is_empty() {
            return self.forward_batch_reference(batch, id_rows);
        }
        Ok(self.forward_blocks(batch, id_rows, learn_of(batch)?))
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
