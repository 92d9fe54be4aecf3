//! Adam for the tower: Burn's `Adam` (same math, same record) with a fused in-place CPU step.
//!
//! Burn's `Adam` updates each parameter with about a dozen whole-tensor operations (moments,
//! square, bias correction, square root, division, learning rate, subtraction), each a pass over
//! memory into a fresh allocation; on the 85M-parameter paper tower that is a few hundred ms per
//! step. [`TowerAdam`] does the same update in one pass over the host slices, in place
//! ([`super::fused`]), on learnrec's CPU backend, in the same f32 operation order (the results
//! are bit-identical, see the tests). Its state is Burn's [`AdamState`], so its record — and
//! the checkpoint format — is the one `OptimizerAdaptor<Adam, ..>` writes and reads. On other
//! backends, or with `LEARNREC_FUSED=0`, it runs Burn's `Adam`.

use super::fused::{self, AdamHyper};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, SimpleOptimizer};
use burn::module::AutodiffModule;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

/// Adam without weight decay (β₁, β₂, ε as PyTorch's `Adam`).
#[derive(Clone)]
pub struct TowerAdam {
    reference: Adam,
    hyper: AdamHyper,
}

impl TowerAdam {
    /// Adam with these moments' decay rates and epsilon.
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32) -> Self {
        TowerAdam {
            reference: AdamConfig::new()
                .with_beta_1(beta_1)
                .with_beta_2(beta_2)
                .with_epsilon(epsilon)
                .build(),
            hyper: AdamHyper { beta_1, beta_2, epsilon },
        }
    }

    /// The optimiser for a module (what `AdamConfig::init` returns for Burn's `Adam`).
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(self) -> OptimizerAdaptor<TowerAdam, M, B> {
        OptimizerAdaptor::from(self)
    }
}

impl<B: Backend> SimpleOptimizer<B> for TowerAdam {
    type State<const D: usize> = AdamState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let moments = state.map(|s| (s.momentum.time, s.momentum.moment_1, s.momentum.moment_2));
        match fused::adam_step(self.hyper, lr, tensor, grad, moments) {
            Ok((t, (time, m1, m2))) => (t, Some(AdamState::new(AdaptiveMomentumState::new(time, m1, m2)))),
            Err((tensor, grad, moments)) => {
                let state = moments.map(|(time, m1, m2)| AdamState::new(AdaptiveMomentumState::new(time, m1, m2)));
                SimpleOptimizer::<B>::step(&self.reference, lr, tensor, grad, state)
            }
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        <Adam as SimpleOptimizer<B>>::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use super::TowerAdam;
    use crate::CpuAutodiff as B;
    use crate::towers::fused::with_composite;
    use crate::towers::{InputKind, TowerConfig, TowerInput};
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::optim::{AdamConfig, GradientsParams, Optimizer};
    use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
    use burn::tensor::{Tensor, TensorData};

    fn params<M: Module<B>>(m: &M) -> Vec<f32> {
        struct V(Vec<f32>);
        impl ModuleVisitor<B> for V {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
                self.0.extend(p.val().into_data().convert::<f32>().to_vec::<f32>().expect("f32"));
            }
        }
        let mut v = V(vec![]);
        m.visit(&mut v);
        v.0
    }

    #[test]
    fn tower_adam_matches_burn_adam_bit_for_bit_and_shares_its_record() {
        let dev = Default::default();
        let mut c = TowerConfig::tiny(InputKind::LlmContent, 12);
        c.n_layers = 2;
        let m0 = c.init::<B>(&dev).expect("valid config");
        let x = Tensor::<B, 3>::from_data(
            TensorData::new((0..3 * 5 * 12).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect::<Vec<_>>(), [3, 5, 12]),
            &dev,
        );
        let loss = |m: &crate::towers::LearnTower<B>| {
            m.user_sequence(TowerInput::Content(x.clone())).powf_scalar(3.0).sum()
        };
        let (b1, b2, eps) = (0.8, 0.99, 1e-8);
        let mut ours = TowerAdam::new(b1, b2, eps).init::<B, _>();
        let mut burn = AdamConfig::new().with_beta_1(b1).with_beta_2(b2).with_epsilon(eps).init::<B, _>();
        // Reading the parameters materialises Burn's lazy initialisation: clones then share values.
        let p0 = params(&m0);
        let (mut a, mut b) = (m0.clone(), m0);
        for step in 0..4 {
            let lr = 1e-2 / (step + 1) as f64;
            // Gradients on the composite path for both (the fused forward rounds differently),
            // so the two optimisers see the same gradients: ours fused, the reference Burn's.
            let ga = with_composite(|| GradientsParams::from_grads(loss(&a).backward(), &a));
            a = ours.step(lr, a, ga);
            let gb = with_composite(|| GradientsParams::from_grads(loss(&b).backward(), &b));
            b = with_composite(|| burn.step(lr, b, gb));
        }
        let (pa, pb) = (params(&a), params(&b));
        assert!(pa.iter().zip(&p0).filter(|(x, y)| x != y).count() > pa.len() / 2, "parameters must change");
        assert_eq!(pa, pb, "4 steps: fused Adam must equal Burn's Adam bit for bit");
        let g = GradientsParams::from_grads(loss(&a).backward(), &a);
        let g2 = GradientsParams::from_grads(loss(&a).backward(), &a);
        let rec = ours.to_record();
        let bytes = Recorder::<B>::record(&BinBytesRecorder::<FullPrecisionSettings>::default(), rec, ()).expect("record");
        // Burn's Adam reads our record (same checkpoint format) ...
        let loaded = Recorder::<B>::load(&BinBytesRecorder::<FullPrecisionSettings>::default(), bytes, &dev).expect("load");
        let mut burn2 = AdamConfig::new().with_beta_1(b1).with_beta_2(b2).with_epsilon(eps).init::<B, _>().load_record(loaded);
        // ... and from the same state, gradients and parameters both take exactly the same step.
        let next_ours = params(&ours.step(1e-3, a.clone(), g));
        let next_burn = params(&burn2.step(1e-3, a, g2));
        assert_eq!(next_ours, next_burn, "fused Adam must equal Burn's Adam bit for bit");
    }
}
