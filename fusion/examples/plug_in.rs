//! Plugging the LEARN auxiliary network into your own Burn ranking model.
//!
//! `MyRanker` stands for an existing production ranker: its own ID embeddings and an MLP. Adding
//! LEARN takes four lines, marked `// LEARN (n/4)`:
//!   1. a `LearnFusion` field;
//!   2. build it from a `LearnFusionConfig` (the LEARN embedding widths, λ, stop-gradient);
//!   3. in `forward`, concatenate its fused features beside your ID embeddings;
//!   4. in the training step, add its λ-weighted aux CVR loss to your loss.
//!
//! The batches come from `Batcher` with a `LearnLookup` over the exported LEARN stores
//! (`EmbeddingStore`s of kind User/Item, plus an optional content store for new items).
//!
//! Run: `cargo run -p learnrec-fusion --example plug_in [-- --quick]`

use burn::module::{AutodiffModule, Module};
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor};
use learnrec_fusion::data::{Batch, Batcher, IdVocab};
use learnrec_fusion::loss::weighted_bce_with_logits;
use learnrec_fusion::metrics::auc;
use learnrec_fusion::toy::{Toy, ToyConfig};
use learnrec_fusion::{CpuAutodiff, FusionOutput, LearnFusion, LearnFusionConfig};

/// Your ranking model.
#[derive(Module, Debug)]
struct MyRanker<B: Backend> {
    user: Embedding<B>,
    item: Embedding<B>,
    fusion: LearnFusion<B>, // LEARN (1/4)
    hidden: Linear<B>,
    out: Linear<B>,
}

impl<B: Backend> MyRanker<B> {
    fn new(n_users: usize, n_items: usize, fusion: LearnFusionConfig, device: &B::Device) -> Self {
        let d_in = 2 * 16 + fusion.output_dim();
        MyRanker {
            user: EmbeddingConfig::new(n_users, 16).init(device),
            item: EmbeddingConfig::new(n_items, 16).init(device),
            fusion: fusion.init(device), // LEARN (2/4)
            hidden: LinearConfig::new(d_in, 64).init(device),
            out: LinearConfig::new(64, 1).init(device),
        }
    }

    /// Logits `[batch]` and the fusion output (for the aux loss).
    fn forward(&self, b: &Batch<B>) -> (Tensor<B, 1>, FusionOutput<B>) {
        let n = b.users.dims()[0];
        let u = self
            .user
            .forward(b.users.clone().unsqueeze_dim(1))
            .reshape([n, 16]);
        let i = self
            .item
            .forward(b.items.clone().unsqueeze_dim(1))
            .reshape([n, 16]);
        let learn = b.learn.clone().expect("batches built with a LearnLookup");
        let fused = self.fusion.forward(learn);
        let x = Tensor::cat(vec![u, i, fused.features.clone()], 1); // LEARN (3/4)
        let logit = self.out.forward(relu(self.hidden.forward(x))).reshape([n]);
        (logit, fused)
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let toy = Toy::generate(&ToyConfig {
        n_users: if quick { 60 } else { 400 },
        n_items: if quick { 80 } else { 500 },
        impressions_per_user: if quick { 20 } else { 60 },
        ..Default::default()
    });
    let split = toy.data.temporal_split(0.8, 0.0);
    let users = IdVocab::fit(&toy.data.users, split.train.iter().map(|e| e.user));
    let items = IdVocab::fit(&toy.data.items, split.train.iter().map(|e| e.item));
    let lookup = toy.learn_lookup().expect("toy stores are valid");
    let batcher = Batcher::new(&toy.data, &users, &items, Some(&lookup));

    type B = CpuAutodiff;
    let device = Default::default();
    let fusion = LearnFusionConfig::new(lookup.user_dim(), lookup.item_dim()).with_aux_weight(0.5);
    let mut model = MyRanker::<B>::new(users.n_rows(), items.n_rows(), fusion, &device);
    let mut optim = AdamConfig::new().init();
    for epoch in 1..=if quick { 1 } else { 4 } {
        let (mut main_sum, mut aux_sum, mut n) = (0.0, 0.0, 0);
        for chunk in split.train.chunks(256) {
            let b = batcher.batch(chunk).to_device::<B>(&device);
            let (logits, fused) = model.forward(&b);
            let main = weighted_bce_with_logits(logits, b.labels.clone(), None);
            let aux = model.fusion.aux_loss(&fused, b.labels.clone(), None);
            main_sum += main.clone().into_scalar().elem::<f64>();
            aux_sum += aux.clone().into_scalar().elem::<f64>();
            n += 1;
            let loss = main + aux; // LEARN (4/4)
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(2e-3, model, grads);
        }
        println!(
            "epoch {epoch}: main loss {:.4}, aux loss {:.4}",
            main_sum / n as f64,
            aux_sum / n as f64
        );
    }
    let eval = model.valid();
    let b = batcher.batch(&split.test).to_device(&device);
    let (logits, _) = eval.forward(&b);
    let scores: Vec<f32> = logits
        .into_data()
        .convert::<f32>()
        .into_vec()
        .unwrap_or_default();
    let labels: Vec<f32> = split.test.iter().map(|e| e.label).collect();
    match auc(&scores, &labels) {
        Some(a) => println!("test AUC {a:.4} on {} examples", labels.len()),
        None => println!(
            "test AUC undefined (one class) on {} examples",
            labels.len()
        ),
    }
}
