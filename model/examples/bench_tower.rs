//! Training throughput of the LEARN tower (samples/s), before/after in one run.
//!
//! One step = user tower over the history (80) + item tower variant 1 over the target (40) +
//! dense all-action loss + backward + Adam. Two implementations:
//! - `burn-nn`: Burn's `TransformerEncoder` (separate Q/K/V, boolean autoregressive mask) — the
//!   "before" that BURN.md measured;
//! - `lean`: learnrec's `LearnTower` (fused QKV, additive causal bias, own LayerNorm) — "after".
//!
//! Usage: `cargo run --release -p learnrec-model --example bench_tower -- [small|paper|both] [steps]`
//! Compare with `scripts/bench_tower_torch.py` (same model and step in PyTorch CPU).

use burn::module::Module;
use burn::nn::attention::generate_autoregressive_mask;
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use learnrec_model::CpuAutodiff;
use learnrec_model::towers::model::l2_normalize;
use learnrec_model::towers::{InputKind, LossMasks, TowerConfig, TowerInput, dense_all_action_loss};
use std::time::Instant;

#[derive(Module, Debug)]
struct BurnNnTower<B: Backend> {
    proj: Linear<B>,
    enc: TransformerEncoder<B>,
    out: Linear<B>,
}

impl<B: Backend> BurnNnTower<B> {
    fn new(c: &TowerConfig, dev: &B::Device) -> Self {
        BurnNnTower {
            proj: LinearConfig::new(c.input_dim, c.d_model).init(dev),
            enc: TransformerEncoderConfig::new(c.d_model, c.d_ff, c.n_heads, c.n_layers)
                .with_dropout(0.0)
                .with_norm_first(false)
                .init(dev),
            out: LinearConfig::new(c.d_model, c.output_dim).init(dev),
        }
    }
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, l, _] = x.dims();
        let mask = generate_autoregressive_mask::<B>(b, l, &x.device());
        let h = self.enc.forward(TransformerEncoderInput::new(self.proj.forward(x)).mask_attn(mask));
        l2_normalize(self.out.forward(h))
    }
}

struct Shape {
    name: &'static str,
    layers: usize,
    d: usize,
    heads: usize,
    batch: usize,
    input: usize,
}

fn data<B: Backend>(s: &Shape, len: usize, seed: u64, dev: &B::Device) -> Tensor<B, 3> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let v: Vec<f32> = (0..s.batch * len * s.input)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    Tensor::from_data(TensorData::new(v, [s.batch, len, s.input]), dev)
}

fn masks(s: &Shape, lt: usize, lh: usize) -> LossMasks {
    LossMasks {
        history_lens: vec![lh; s.batch],
        targets: (0..s.batch).map(|i| (0..lt as u32).map(|k| (i * lt) as u32 + k).collect()).collect(),
    }
}

fn run<B: AutodiffBackend, M: burn::module::AutodiffModule<B>>(
    label: &str,
    s: &Shape,
    mut model: M,
    fwd: impl Fn(&M, Tensor<B, 3>) -> Tensor<B, 3>,
    steps: usize,
) -> f64 {
    let dev: B::Device = Default::default();
    let (lh, lt) = (80, 40);
    let hist = data::<B>(s, lh, 1, &dev);
    let tgt = data::<B>(s, lt, 2, &dev);
    let m = masks(s, lt, lh);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init::<B, M>();
    let mut times = Vec::new();
    for i in 0..steps + 1 {
        let t0 = Instant::now();
        let u = fwd(&model, hist.clone());
        let it = fwd(&model, tgt.clone());
        let loss = dense_all_action_loss(u, it, &m, 20.0);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(5e-5, model, grads);
        let _ = model.clone().valid(); // settle lazy work
        if i > 0 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    let sps = s.batch as f64 / med;
    println!("{:<6} {:<8} median step {:>8.1} ms  {:>7.2} samples/s  (min {:.1} ms, {} steps)", s.name, label, med * 1e3, sps, times[0] * 1e3, steps);
    sps
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "both".into());
    let steps: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let shapes = [
        Shape { name: "small", layers: 2, d: 256, heads: 4, batch: 64, input: 640 },
        Shape { name: "paper", layers: 12, d: 768, heads: 12, batch: 8, input: 1536 },
    ];
    type B = CpuAutodiff;
    let dev = Default::default();
    for s in shapes.iter().filter(|s| which == "both" || which == s.name) {
        let mut c = TowerConfig::tiny(InputKind::LlmContent, s.input);
        c.n_layers = s.layers;
        c.d_model = s.d;
        c.n_heads = s.heads;
        c.d_ff = 4 * s.d;
        c.output_dim = 64;
        let before = run::<B, _>("burn-nn", s, BurnNnTower::<B>::new(&c, &dev), |m, x| m.forward(x), steps);
        let lean = c.init::<B>(&dev).expect("valid config");
        let after = run::<B, _>("lean", s, lean, |m, x| m.user_sequence(TowerInput::Content(x)), steps);
        println!("{:<6} speed-up lean / burn-nn: {:.2}x", s.name, after / before);
    }
}
