//! The reference ranking model, as industrial rankers are built: ID embeddings of user and item
//! plus categorical-feature embeddings (category, brand, price bucket…) → an optional DCN-v2 cross
//! network → an MLP → one CTR/CVR logit. It is the paper's "baseline" ranker; the fused ranker is
//! the same model with the [`crate::fusion::LearnFusion`] features concatenated to its input.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

/// How the ranker's input features interact before the MLP.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Interaction {
    /// Plain MLP over the concatenated features.
    Mlp,
    /// `layers` DCN-v2 cross layers (`x_{l+1} = x_0 ⊙ (W x_l + b) + x_l`, Wang et al. 2021) in
    /// parallel with the MLP; their output is concatenated with the MLP's before the head.
    DcnV2 {
        /// Number of cross layers.
        layers: usize,
    },
}

/// Configuration of the reference [`Ranker`].
#[derive(Config, Debug)]
pub struct RankerConfig {
    /// Rows of the user ID table, row 0 = out-of-vocabulary (unknown user).
    pub n_users: usize,
    /// Rows of the item ID table, row 0 = out-of-vocabulary (unknown item).
    pub n_items: usize,
    /// Rows of the shared categorical-feature table (all fields, offsets applied by the batcher).
    pub n_feature_rows: usize,
    /// Number of categorical fields per example.
    pub n_fields: usize,
    /// Width of the user and item ID embeddings.
    #[config(default = 16)]
    pub id_dim: usize,
    /// Width of each categorical-feature embedding.
    #[config(default = 8)]
    pub field_dim: usize,
    /// Width of extra dense features concatenated to the input (the fused LEARN features; 0 for
    /// the baseline).
    #[config(default = 0)]
    pub extra_dim: usize,
    /// Hidden layer widths of the MLP.
    #[config(default = "vec![128, 64]")]
    pub hidden: Vec<usize>,
    /// Feature interaction.
    #[config(default = "Interaction::Mlp")]
    pub interaction: Interaction,
}

/// One DCN-v2 cross layer: `x_{l+1} = x_0 ⊙ (W x_l + b) + x_l`.
#[derive(Module, Debug)]
pub struct CrossLayer<B: Backend> {
    linear: Linear<B>,
}

impl<B: Backend> CrossLayer<B> {
    /// # Shapes
    /// - `x0`, `x`: `[batch, d]` → `[batch, d]`
    pub fn forward(&self, x0: Tensor<B, 2>, x: Tensor<B, 2>) -> Tensor<B, 2> {
        x0 * self.linear.forward(x.clone()) + x
    }
}

/// The reference ranker (baseline when `extra_dim == 0`).
#[derive(Module, Debug)]
pub struct Ranker<B: Backend> {
    /// User ID embeddings, row 0 = OOV.
    pub user_emb: Embedding<B>,
    /// Item ID embeddings, row 0 = OOV.
    pub item_emb: Embedding<B>,
    /// Categorical features of all fields in one table.
    pub field_emb: Embedding<B>,
    cross: Vec<CrossLayer<B>>,
    pub(crate) mlp: Vec<Linear<B>>,
    pub(crate) head: Linear<B>,
    pub(crate) n_fields: usize,
    extra_dim: usize,
}

impl RankerConfig {
    /// Width of the concatenated input `[user id, item id, fields…, extra]`.
    pub fn input_dim(&self) -> usize {
        2 * self.id_dim + self.n_fields * self.field_dim + self.extra_dim
    }

    /// Builds the ranker with fresh weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Ranker<B> {
        let d_in = self.input_dim();
        let emb = |n: usize, d: usize| {
            EmbeddingConfig::new(n.max(1), d)
                .with_initializer(burn::nn::Initializer::Normal {
                    mean: 0.0,
                    std: 0.05,
                })
                .init(device)
        };
        let mut mlp = Vec::new();
        let mut d = d_in;
        for &h in &self.hidden {
            mlp.push(LinearConfig::new(d, h).init(device));
            d = h;
        }
        let cross: Vec<CrossLayer<B>> = match self.interaction {
            Interaction::Mlp => Vec::new(),
            Interaction::DcnV2 { layers } => (0..layers)
                .map(|_| CrossLayer {
                    linear: LinearConfig::new(d_in, d_in).init(device),
                })
                .collect(),
        };
        let head_in = d + if cross.is_empty() { 0 } else { d_in };
        Ranker {
            user_emb: emb(self.n_users, self.id_dim),
            item_emb: emb(self.n_items, self.id_dim),
            field_emb: emb(self.n_feature_rows, self.field_dim),
            cross,
            mlp,
            head: LinearConfig::new(head_in, 1).init(device),
            n_fields: self.n_fields,
            extra_dim: self.extra_dim,
        }
    }
}

impl<B: Backend> Ranker<B> {
    /// The logit of each example.
    ///
    /// # Shapes
    /// - `users`, `items`: `[batch]` ID-table rows (0 = OOV)
    /// - `fields`: `[batch, n_fields]` rows of the categorical table
    /// - `extra`: `[batch, extra_dim]` dense features (required iff `extra_dim > 0`)
    /// - output: `[batch]` logits
    pub fn forward(
        &self,
        users: Tensor<B, 1, Int>,
        items: Tensor<B, 1, Int>,
        fields: Tensor<B, 2, Int>,
        extra: Option<Tensor<B, 2>>,
    ) -> Tensor<B, 1> {
        let x = self.input(users, items, fields, extra, None);
        self.forward_features(x)
    }

    /// Replaces the ID tables' weights (sparse training writes its host tables back).
    ///
    /// # Shapes
    /// - `user`: `[n_users, id_dim]`, `item`: `[n_items, id_dim]`
    pub fn with_id_tables(mut self, user: Tensor<B, 2>, item: Tensor<B, 2>) -> Self {
        self.user_emb.weight = self.user_emb.weight.map(|_| user);
        self.item_emb.weight = self.item_emb.weight.map(|_| item);
        self
    }

    /// Concatenates the embedded input features. `id_rows`, when given, are the user and item ID
    /// embeddings already gathered (sparse training), used instead of the tables.
    ///
    /// # Shapes
    /// - as [`Ranker::forward`]; `id_rows`: `([batch, id_dim], [batch, id_dim])`;
    ///   output `[batch, input_dim]`
    pub fn input(
        &self,
        users: Tensor<B, 1, Int>,
        items: Tensor<B, 1, Int>,
        fields: Tensor<B, 2, Int>,
        extra: Option<Tensor<B, 2>>,
        id_rows: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
    ) -> Tensor<B, 2> {
        let [batch] = users.dims();
        let (u, i) = match id_rows {
            Some(rows) => rows,
            None => (
                self.user_emb
                    .forward(users.unsqueeze_dim(1))
                    .reshape([batch as i32, -1]),
                self.item_emb
                    .forward(items.unsqueeze_dim(1))
                    .reshape([batch as i32, -1]),
            ),
        };
        let mut parts = vec![u, i];
        if self.n_fields > 0 {
            parts.push(self.field_emb.forward(fields).reshape([batch as i32, -1]));
        }
        if self.extra_dim > 0
            && let Some(e) = extra
        {
            parts.push(e);
        }
        Tensor::cat(parts, 1)
    }

    /// The cross network, MLP and head over an already embedded input.
    ///
    /// # Shapes
    /// - `x`: `[batch, input_dim]` → `[batch]` logits
    pub fn forward_features(&self, x: Tensor<B, 2>) -> Tensor<B, 1> {
        let [batch, _] = x.dims();
        let mut h = x.clone();
        for l in &self.mlp {
            h = relu(l.forward(h));
        }
        if !self.cross.is_empty() {
            let mut c = x.clone();
            for l in &self.cross {
                c = l.forward(x.clone(), c);
            }
            h = Tensor::cat(vec![h, c], 1);
        }
        self.head.forward(h).reshape([batch])
    }

    /// Width of the extra dense features this ranker expects.
    pub fn extra_dim(&self) -> usize {
        self.extra_dim
    }

    /// Whether the ranker is a plain MLP (no cross layers) with at least one hidden layer: its
    /// first layer is then a sum of per-feature-block matmuls ([`crate::serve::ServePlan`]).
    pub fn is_plain_mlp(&self) -> bool {
        self.cross.is_empty() && !self.mlp.is_empty()
    }
}
