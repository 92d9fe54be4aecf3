//! Training throughput of the LEARN tower (samples/s), before/after in one run.
//!
//! One step = user tower over the history (80) + item tower variant 1 over the target (40) +
//! dense all-action loss + backward + Adam (`lean`/`nn`: Burn's `Adam`; `fused`: `TowerAdam`'s
//! in-place step, the same math). Implementations (pick with the third argument, a
//! comma-separated list; default `lean,fused`):
//! - `nn`: Burn's `TransformerEncoder` (separate Q/K/V, boolean autoregressive mask) — what
//!   BURN.md measured;
//! - `lean`: learnrec's `LearnTower` on the composite path (linears applied as 2-D matmuls so the
//!   weight gradient is one GEMM, fused QKV, additive causal bias, own LayerNorm built from tensor
//!   ops, loss from tensor ops), two passes (history, target) as the official code;
//! - `fused`: what `learnrec train` runs: the same `LearnTower` with the fused CPU kernels of
//!   `towers::fused` (causal attention, LayerNorm and the dense loss straight from the
//!   embeddings, with hand-written backward passes) and `towers::fused_linear` (every linear as
//!   one op: GEMM straight into its buffer, bias and GELU fused, `dX`/`dW` side by side), one
//!   pass over the history and target tokens stacked (`LearnTower::user_and_item_sequences`)
//!   and `TowerAdam` — the default.
//!
//! Each line also splits the median step into forward, backward and optimiser time. Steps of the
//! implementations alternate, so load on a shared machine hits both; the dev profile already
//! builds dependencies (Burn, Flex kernels) at opt-level 3. The process keeps freed tensor
//! buffers in the heap (`towers::fused::keep_heap_memory`), as `learnrec train` does.
//!
//! Usage: `cargo run --release -p learnrec-model --example bench_tower -- [small|paper|both] [steps] [nn,lean,fused]`
//! `-- parts` times the small shape's parts (composite vs fused), `-- gemm` the paper shape's
//! matrix products in the forward and backward layouts.
//! Compare with `scripts/bench_tower_torch.py` (same model and step in PyTorch CPU).

use burn::module::Module;
use burn::nn::attention::generate_autoregressive_mask;
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use learnrec_model::CpuAutodiff;
use learnrec_model::towers::fused::with_composite;
use learnrec_model::towers::model::l2_normalize;
use learnrec_model::towers::{InputKind, ItemTowerVariant, LearnTower, LossMasks, TowerAdam, TowerConfig, TowerInput, dense_all_action_loss};
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

/// A model's forward over the history and the target: (users, items).
type Fwd<B, M> = fn(&M, Tensor<B, 3>, Tensor<B, 3>) -> (Tensor<B, 3>, Tensor<B, 3>);

/// One model under test: its module, optimiser and step times.
struct Runner<B: AutodiffBackend, M: burn::module::AutodiffModule<B>> {
    label: &'static str,
    model: Option<M>,
    optim: burn::optim::adaptor::OptimizerAdaptor<TowerAdam, M, B>,
    fwd: Fwd<B, M>,
    composite: bool,
    times: Vec<f64>,
    /// Per recorded step: forward, backward, optimiser seconds.
    split: Vec<[f64; 3]>,
}

impl<B: AutodiffBackend, M: burn::module::AutodiffModule<B>> Runner<B, M> {
    fn new(label: &'static str, model: M, fwd: Fwd<B, M>, composite: bool) -> Self {
        Runner {
            label,
            model: Some(model),
            optim: TowerAdam::new(0.9, 0.999, 1e-8).init::<B, M>(),
            fwd,
            composite,
            times: vec![],
            split: vec![],
        }
    }
    fn step(&mut self, hist: &Tensor<B, 3>, tgt: &Tensor<B, 3>, m: &LossMasks, record: bool) {
        let t0 = Instant::now();
        let model = self.model.take().expect("model");
        let fwd = || {
            let (u, it) = (self.fwd)(&model, hist.clone(), tgt.clone());
            dense_all_action_loss(u, it, m, 20.0)
        };
        let loss = if self.composite { with_composite(fwd) } else { fwd() };
        let t1 = Instant::now();
        let grads = if self.composite { with_composite(|| loss.backward()) } else { loss.backward() };
        let t2 = Instant::now();
        let grads = GradientsParams::from_grads(grads, &model);
        // Composite runners take Burn's own Adam (`TowerAdam` falls back to it).
        let optim = &mut self.optim;
        let model = if self.composite { with_composite(|| optim.step(5e-5, model, grads)) } else { optim.step(5e-5, model, grads) };
        let _ = model.clone().valid(); // settle lazy work
        self.model = Some(model);
        if record {
            let t3 = Instant::now();
            self.times.push(t0.elapsed().as_secs_f64());
            self.split.push([(t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64(), (t3 - t2).as_secs_f64()]);
        }
    }
    fn report(&mut self, s: &Shape) -> f64 {
        self.times.sort_by(f64::total_cmp);
        let med = self.times[self.times.len() / 2];
        let sps = s.batch as f64 / med;
        let part = |k: usize| {
            let mut v: Vec<f64> = self.split.iter().map(|t| t[k]).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2] * 1e3
        };
        let (f, b, o) = (part(0), part(1), part(2));
        println!(
            "{:<6} {:<8} median step {:>8.1} ms  {:>7.2} samples/s  (min {:.1} ms, {} steps; fwd {f:.1} bwd {b:.1} optim {o:.1} ms)",
            s.name,
            self.label,
            med * 1e3,
            sps,
            self.times[0] * 1e3,
            self.times.len()
        );
        sps
    }
}

/// Time of `f` (median of `n` runs after one warm-up), in ms.
#[allow(dead_code)]
fn time_ms(n: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..n)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[n / 2]
}

/// Where the time of one step goes (small shape): each part composite (`lean`) vs fused,
/// interleaved.
fn parts() {
    type B = CpuAutodiff;
    let dev = Default::default();
    let s = Shape { name: "small", layers: 2, d: 256, heads: 4, batch: 64, input: 640 };
    let mut c = TowerConfig::tiny(InputKind::LlmContent, s.input);
    (c.n_layers, c.d_model, c.n_heads, c.d_ff, c.output_dim) = (s.layers, s.d, s.heads, 4 * s.d, 64);
    let lean = c.init::<B>(&dev).expect("valid");
    let hist = data::<B>(&s, 80, 1, &dev);
    let tgt = data::<B>(&s, 40, 2, &dev);
    let m = masks(&s, 40, 80);
    let both = |name: &str, f: &dyn Fn()| {
        let (mut tc, mut tf) = (vec![], vec![]);
        f();
        with_composite(f);
        for _ in 0..5 {
            let t0 = Instant::now();
            with_composite(f);
            tc.push(t0.elapsed().as_secs_f64() * 1e3);
            let t0 = Instant::now();
            f();
            tf.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        tc.sort_by(f64::total_cmp);
        tf.sort_by(f64::total_cmp);
        println!("{name:<28} composite {:8.1} ms   fused {:8.1} ms  (medians of 5)", tc[2], tf[2]);
    };
    both("user tower fwd", &|| {
        let _ = lean.user_sequence(TowerInput::Content(hist.clone())).sum().into_scalar();
    });
    both("user tower fwd+bwd (sum)", &|| {
        let _ = lean.user_sequence(TowerInput::Content(hist.clone())).sum().backward();
    });
    let u = lean.user_sequence(TowerInput::Content(hist.clone())).detach().require_grad();
    let it = lean.user_sequence(TowerInput::Content(tgt.clone())).detach().require_grad();
    both("dense loss fwd+bwd", &|| {
        let _ = dense_all_action_loss(u.clone(), it.clone(), &m, 20.0).backward();
    });
    let x = data::<B>(&Shape { input: 256, ..s }, 80, 3, &dev).require_grad();
    let ln = &lean.layers[0].norm_attn;
    both("layernorm fwd+bwd", &|| {
        let _ = ln.forward(x.clone()).sum().backward();
    });
    let at = &lean.layers[0].attention;
    both("attention fwd+bwd", &|| {
        let _ = at.forward(x.clone(), learnrec_model::towers::AttentionMask::Causal).sum().backward();
    });
    let ff = &lean.layers[0];
    both("ffn fwd+bwd (not fused)", &|| {
        let _ = ff.ff_out.forward(burn::tensor::activation::gelu(ff.ff_in.forward(x.clone()))).sum().backward();
    });
    let mha = burn::nn::attention::MultiHeadAttentionConfig::new(256, 4).with_dropout(0.0).init::<B>(&dev);
    let mask = generate_autoregressive_mask::<B>(64, 80, &dev);
    both("Burn MHA fwd+bwd (not fused)", &|| {
        let _ = mha
            .forward(burn::nn::attention::MhaInput::self_attn(x.clone()).mask_attn(mask.clone()))
            .context
            .sum()
            .backward();
    });
}

/// GFLOP/s of the paper shape's matmuls (history: 640 rows) in the layouts the forward and the
/// backward use (`t` = a transposed view, as autodiff passes it).
fn gemm() {
    type I = learnrec_model::CpuBackend;
    let dev = Default::default();
    let m = |r: usize, c: usize| Tensor::<I, 2>::from_data(TensorData::new(vec![0.01f32; r * c], [r, c]), &dev);
    for (n, k, o) in [(640, 768, 2304), (640, 768, 768), (640, 768, 3072), (640, 3072, 768)] {
        let (x, w, dy) = (m(n, k), m(k, o), m(n, o));
        let fl = 2.0 * (n * k * o) as f64 / 1e6;
        let fwd = time_ms(5, || {
            let _ = x.clone().matmul(w.clone()).into_data();
        });
        let dx = time_ms(5, || {
            let _ = dy.clone().matmul(w.clone().transpose()).into_data();
        });
        let dw = time_ms(5, || {
            let _ = x.clone().transpose().matmul(dy.clone()).into_data();
        });
        println!(
            "[{n},{k}]x[{k},{o}]  fwd {:6.1} GFLOP/s  dX=dY·Wt {:6.1}  dW=Xt·dY {:6.1}",
            fl / fwd,
            fl / dx,
            fl / dw
        );
    }
}

fn main() {
    // What `learnrec train` does too (no effect on results): reuse big buffers from the heap.
    learnrec_model::towers::fused::keep_heap_memory();
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "both".into());
    if which == "parts" {
        return parts();
    }
    if which == "gemm" {
        return gemm();
    }
    let steps: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let impls_arg = args.next().unwrap_or_else(|| "lean,fused".into());
    let impls: Vec<&str> = impls_arg.split(',').collect();
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
        // Steps of the implementations alternate, so that load on a shared machine hits all.
        // `lean`: two passes (history, target), as the official code; `fused`: one pass over
        // both sequences' tokens stacked (`user_and_item_sequences`).
        let two_pass: Fwd<B, LearnTower<B>> =
            |m, h, t| (m.user_sequence(TowerInput::Content(h)), m.user_sequence(TowerInput::Content(t)));
        let stacked: Fwd<B, LearnTower<B>> = |m, h, t| {
            m.user_and_item_sequences(TowerInput::Content(h), TowerInput::Content(t), ItemTowerVariant::SharedCausal)
        };
        let mut nn = impls
            .contains(&"nn")
            .then(|| Runner::<B, _>::new("burn-nn", BurnNnTower::<B>::new(&c, &dev), |m, h, t| (m.forward(h), m.forward(t)), true));
        let mut lean = impls
            .contains(&"lean")
            .then(|| Runner::<B, _>::new("lean", c.init::<B>(&dev).expect("valid config"), two_pass, true));
        let mut fused = impls
            .contains(&"fused")
            .then(|| Runner::<B, _>::new("fused", c.init::<B>(&dev).expect("valid config"), stacked, false));
        let hist = data::<B>(s, 80, 1, &dev);
        let tgt = data::<B>(s, 40, 2, &dev);
        let m = masks(s, 40, 80);
        for i in 0..steps + 1 {
            if let Some(r) = nn.as_mut() {
                r.step(&hist, &tgt, &m, i > 0);
            }
            if let Some(r) = lean.as_mut() {
                r.step(&hist, &tgt, &m, i > 0);
            }
            if let Some(r) = fused.as_mut() {
                r.step(&hist, &tgt, &m, i > 0);
            }
        }
        let nn = nn.map(|mut r| r.report(s));
        let lean = lean.map(|mut r| r.report(s));
        let fused = fused.map(|mut r| r.report(s));
        if let (Some(a), Some(b)) = (lean, fused) {
            println!("{:<6} speed-up fused / lean: {:.2}x", s.name, b / a);
        }
        if let (Some(a), Some(b)) = (nn, fused) {
            println!("{:<6} speed-up fused / burn-nn: {:.2}x", s.name, b / a);
        }
    }
}
