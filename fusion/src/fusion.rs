//! The LEARN auxiliary network and the plug-in API (the paper's ranking A/B set-up, §3.4).
//!
//! Input: the frozen LEARN user embedding and LEARN item embedding of each example (looked up on
//! the host by [`crate::lookup::LearnLookup`]). An MLP with its own CVR head is trained with a CVR
//! BCE loss; its last hidden layer and the LEARN embeddings are the *fused features* a ranking model
//! concatenates beside its ID embeddings. Total loss = main loss + λ · aux CVR loss.
//!
//! Cold start: rows the lookup could not fill (`known = 0`) are replaced by a learned default
//! embedding (one for users without history, one for items absent from both the item store and the
//! content store), so unknown users and items always get a usable input.
//!
//! Optional departure from the paper (off by default): with `product_feature = true` the aux MLP
//! also sees `u ⊙ i` (when both embeddings have the same width), since LEARN trains user and
//! item embeddings in one cosine space. On the world it changed test AUC by +0.42 / +0.10 pp and
//! UAUC by +0.32 / −0.07 pp (seeds 7 / 11) while raising the fused serving plan's multiply-adds
//! per candidate from 11,328 to 15,424 (baseline ranker 8,256; `bench-serve` prints them), so it
//! is opt-in.
//!
//! # Plug-in in a few lines
//! ```ignore
//! let fusion = LearnFusionConfig::new(lookup.user_dim(), lookup.item_dim()).init(&device);
//! // in your forward:
//! let out = self.fusion.forward(batch.learn.clone());          // FusionOutput
//! let x = Tensor::cat(vec![my_id_embeddings, out.features.clone()], 1);
//! // in your training step:
//! let loss = my_bce + self.fusion.aux_loss(&out, labels, weights);   // λ applied inside
//! ```

use crate::loss::weighted_bce_with_logits;
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;

/// Configuration of [`LearnFusion`].
#[derive(Config, Debug)]
pub struct LearnFusionConfig {
    /// Width of the LEARN user embeddings.
    pub user_dim: usize,
    /// Width of the LEARN item embeddings.
    pub item_dim: usize,
    /// Hidden widths of the aux MLP; the last one is the width of the fused hidden features.
    /// Default `[64, 16]`. Cost on the world set-up (64-wide LEARN embeddings, ranker
    /// `[128, 64]`, 16-wide IDs, 5 fields of 8), multiply-adds per example of a training step
    /// (forward + backward): baseline 52k, fused 111k (2.1×; the raw LEARN embeddings in the
    /// ranker's first layer cost 33k, `[32, 16]` instead of `[64, 16]` saves 10k, the product
    /// feature would add 8k). Training on Flex is bound by these matmuls: the measured
    /// fused/baseline throughput follows the ratio of multiply-adds (README, issue #5).
    #[config(default = "vec![64, 16]")]
    pub hidden: Vec<usize>,
    /// λ: weight of the aux CVR loss in the total loss.
    #[config(default = 1.0)]
    pub aux_weight: f64,
    /// Stop the main loss's gradient at the fused features (`detach`): the aux network is then
    /// trained by the aux CVR loss only.
    #[config(default = false)]
    pub stop_gradient: bool,
    /// Concatenate the (frozen) LEARN embeddings themselves to the fused features, beside the aux
    /// network's last hidden layer (the paper does).
    #[config(default = true)]
    pub include_embeddings: bool,
    /// Feed `u ⊙ i` to the aux MLP as well (needs `user_dim == item_dim`; see the module docs).
    /// At serving time `(u ⊙ i)·A_p` is the one aux product that cannot be precomputed per item
    /// or per user (`du × A` multiply-adds per candidate: with `[64, 16]` it more than doubles
    /// the aux network's per-candidate cost), for a gain within seed noise on the world.
    #[config(default = false)]
    pub product_feature: bool,
}

/// Host-side LEARN inputs of a batch, moved to the device.
#[derive(Debug, Clone)]
pub struct LearnInputs<B: Backend> {
    /// `[batch, user_dim]` LEARN user embeddings (zeros where unknown).
    pub user: Tensor<B, 2>,
    /// `[batch, 1]`: 1 where the learned default user must be used, else 0; `None` when every
    /// user of the batch is known (saves the substitution ops at serving time).
    pub user_missing: Option<Tensor<B, 2>>,
    /// `[batch, item_dim]` LEARN item embeddings (store or content-derived; zeros where unknown).
    pub item: Tensor<B, 2>,
    /// `[batch, 1]`: 1 where the learned default item must be used, else 0; `None` when every
    /// item of the batch is known.
    pub item_missing: Option<Tensor<B, 2>>,
}

/// What [`LearnFusion::forward`] returns.
#[derive(Debug, Clone)]
pub struct FusionOutput<B: Backend> {
    /// `[batch, output_dim]` fused features to concatenate into the ranking model's input
    /// (detached when `stop_gradient`).
    pub features: Tensor<B, 2>,
    /// `[batch]` the aux network's own CVR logit.
    pub aux_logit: Tensor<B, 1>,
}

/// The LEARN auxiliary network, a Burn module to embed in any ranking model.
#[derive(Module, Debug)]
pub struct LearnFusion<B: Backend> {
    /// Hidden layers of the aux MLP (ReLU after each).
    pub mlp: Vec<Linear<B>>,
    /// The aux CVR head.
    pub head: Linear<B>,
    /// Learned embedding of users without LEARN history, `[1, user_dim]`.
    pub default_user: Param<Tensor<B, 2>>,
    /// Learned embedding of items with neither a LEARN nor a content embedding, `[1, item_dim]`.
    pub default_item: Param<Tensor<B, 2>>,
    aux_weight: f64,
    pub(crate) stop_gradient: bool,
    pub(crate) include_embeddings: bool,
    pub(crate) product_feature: bool,
}

impl LearnFusionConfig {
    /// Width of [`FusionOutput::features`].
    pub fn output_dim(&self) -> usize {
        let h = self
            .hidden
            .last()
            .copied()
            .unwrap_or(self.user_dim + self.item_dim);
        h + if self.include_embeddings {
            self.user_dim + self.item_dim
        } else {
            0
        }
    }

    fn use_product(&self) -> bool {
        self.product_feature && self.user_dim == self.item_dim
    }

    /// Builds the aux network with fresh weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> LearnFusion<B> {
        let mut d =
            self.user_dim + self.item_dim + if self.use_product() { self.user_dim } else { 0 };
        let mut mlp = Vec::new();
        for &h in &self.hidden {
            mlp.push(LinearConfig::new(d, h).init(device));
            d = h;
        }
        LearnFusion {
            mlp,
            head: LinearConfig::new(d, 1).init(device),
            default_user: Param::from_tensor(Tensor::zeros([1, self.user_dim], device)),
            default_item: Param::from_tensor(Tensor::zeros([1, self.item_dim], device)),
            aux_weight: self.aux_weight,
            stop_gradient: self.stop_gradient,
            include_embeddings: self.include_embeddings,
            product_feature: self.use_product(),
        }
    }
}

impl<B: Backend> LearnFusion<B> {
    /// The aux network's last hidden layer and the (default-filled) LEARN embeddings.
    fn hidden(&self, learn: LearnInputs<B>) -> (Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 2>) {
        // x = 0 where missing, so x + default · missing substitutes the learned default.
        let fill =
            |x: Tensor<B, 2>, missing: Option<Tensor<B, 2>>, default: Tensor<B, 2>| match missing {
                Some(m) => x + default * m,
                None => x,
            };
        let u = fill(learn.user, learn.user_missing, self.default_user.val());
        let i = fill(learn.item, learn.item_missing, self.default_item.val());
        let mut parts = vec![u.clone(), i.clone()];
        if self.product_feature {
            parts.push(u.clone() * i.clone());
        }
        let mut h = Tensor::cat(parts, 1);
        for l in &self.mlp {
            h = relu(l.forward(h));
        }
        (h, u, i)
    }

    fn fuse(&self, h: Tensor<B, 2>, u: Tensor<B, 2>, i: Tensor<B, 2>) -> Tensor<B, 2> {
        let features = if self.include_embeddings {
            Tensor::cat(vec![h, u, i], 1)
        } else {
            h
        };
        if self.stop_gradient {
            features.detach()
        } else {
            features
        }
    }

    /// Fused features and aux CVR logit of a batch (training).
    ///
    /// # Shapes
    /// - `learn.user`: `[batch, user_dim]`, `learn.item`: `[batch, item_dim]`,
    ///   `learn.*_missing`: `[batch, 1]`
    /// - output `features`: `[batch, output_dim]`, `aux_logit`: `[batch]`
    pub fn forward(&self, learn: LearnInputs<B>) -> FusionOutput<B> {
        let [batch, _] = learn.user.dims();
        let (h, u, i) = self.hidden(learn);
        let aux_logit = self.head.forward(h.clone()).reshape([batch]);
        FusionOutput {
            features: self.fuse(h, u, i),
            aux_logit,
        }
    }

    /// Whether the fused features include the LEARN embeddings beside the hidden layer.
    pub fn includes_embeddings(&self) -> bool {
        self.include_embeddings
    }

    /// The fused features only, without the aux CVR head (serving).
    ///
    /// # Shapes
    /// - as [`LearnFusion::forward`]; output `[batch, output_dim]`
    pub fn features(&self, learn: LearnInputs<B>) -> Tensor<B, 2> {
        let (h, u, i) = self.hidden(learn);
        self.fuse(h, u, i)
    }

    /// λ · (weighted) aux CVR BCE loss, ready to add to the main loss.
    ///
    /// # Shapes
    /// - `labels`, `weights`: `[batch]` → scalar `[1]`
    pub fn aux_loss(
        &self,
        out: &FusionOutput<B>,
        labels: Tensor<B, 1>,
        weights: Option<Tensor<B, 1>>,
    ) -> Tensor<B, 1> {
        weighted_bce_with_logits(out.aux_logit.clone(), labels, weights).mul_scalar(self.aux_weight)
    }

    /// λ, the aux loss weight.
    pub fn aux_weight(&self) -> f64 {
        self.aux_weight
    }
}
