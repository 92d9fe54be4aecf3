//! The fast paths against the reference paths they replace: the serving plan
//! ([`ServePlan`]) against `score_batch`, and the fused ranker's block-wise first layer against
//! the concatenated input (predictions and gradients).

use burn::module::Param;
use burn::tensor::{Distribution, Tensor};
use learnrec_fusion::data::Batcher;
use learnrec_fusion::serve::make_requests;
use learnrec_fusion::toy::ToyConfig;
use learnrec_fusion::{
    CpuBackend, FusedRanker, FusedRankerConfig, Interaction, LearnFusionConfig, RankModel,
};

type B = CpuBackend;

mod common;
use common::{Setup, ranker_config};

fn setup() -> Setup {
    common::setup(&ToyConfig {
        n_users: 80,
        n_items: 90,
        impressions_per_user: 8,
        ..Default::default()
    })
}

/// Non-zero learned defaults, so that cold users and items exercise them.
fn random_defaults<Bk: burn::tensor::backend::Backend>(mut m: FusedRanker<Bk>) -> FusedRanker<Bk> {
    let device = Default::default();
    let [_, du] = m.fusion.default_user.dims();
    let [_, di] = m.fusion.default_item.dims();
    m.fusion.default_user = Param::from_tensor(Tensor::random(
        [1, du],
        Distribution::Normal(0.0, 1.0),
        &device,
    ));
    m.fusion.default_item = Param::from_tensor(Tensor::random(
        [1, di],
        Distribution::Normal(0.0, 1.0),
        &device,
    ));
    m
}

fn to_vec(t: Tensor<B, 1>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec().unwrap()
}

/// Largest |plan − reference| logit over 30 requests of 25 candidates; also checks that the
/// requests covered cold users (no LEARN embedding).
fn max_plan_error<M: RankModel<B>>(s: &Setup, model: &M, batcher: &Batcher<'_>) -> f32 {
    let device = Default::default();
    let n_items = s.toy.data.items.len();
    let plan = model
        .serve_plan(batcher, s.toy.data.users.len(), n_items, &device)
        .unwrap()
        .expect("a plain-MLP ranker has a plan");
    let reqs = make_requests(s.toy.data.users.len(), n_items, 30, 25, 5);
    let mut worst = 0f32;
    for req in &reqs {
        let reference = to_vec(
            model
                .score_batch(&batcher.batch(req).to_device(&device))
                .unwrap(),
        );
        let items: Vec<u32> = req.iter().map(|e| e.item).collect();
        let fast = to_vec(plan.score(req[0].user, &items, &device).unwrap());
        assert_eq!(reference.len(), fast.len());
        for (a, b) in reference.iter().zip(&fast) {
            assert!(a.is_finite() && b.is_finite());
            worst = worst.max((a - b).abs() / (1.0 + a.abs()));
        }
    }
    worst
}

#[test]
fn serve_plan_matches_score_batch_for_both_rankers() {
    let s = setup();
    let device = Default::default();
    let base_batcher = Batcher::new(&s.toy.data, &s.users, &s.items, None);
    let fused_batcher = Batcher::new(&s.toy.data, &s.users, &s.items, Some(&s.lookup));
    // the toy has users without LEARN embeddings and content-derived new items
    assert!(s.lookup.stats.users_in_store < s.lookup.stats.users);
    assert!(s.lookup.stats.items_from_content > 0);
    let base = ranker_config(&s).init::<B>(&device);
    let e = max_plan_error(&s, &base, &base_batcher);
    assert!(e < 1e-4, "baseline: plan differs from score_batch by {e}");
    for (embeddings, product) in [(true, true), (false, true), (true, false)] {
        let fc = FusedRankerConfig::new(
            ranker_config(&s),
            LearnFusionConfig::new(s.lookup.user_dim(), s.lookup.item_dim())
                .with_include_embeddings(embeddings)
                .with_product_feature(product),
        );
        let fused = random_defaults(fc.init::<B>(&device));
        let e = max_plan_error(&s, &fused, &fused_batcher);
        assert!(
            e < 1e-4,
            "fused (embeddings {embeddings}, product {product}): plan differs by {e}"
        );
    }
}

#[test]
fn serve_plan_declines_cross_layers_and_rejects_unknown_items() {
    let s = setup();
    let device = Default::default();
    let batcher = Batcher::new(&s.toy.data, &s.users, &s.items, None);
    let dcn = ranker_config(&s)
        .with_interaction(Interaction::DcnV2 { layers: 1 })
        .init::<B>(&device);
    assert!(dcn.serve_plan(&batcher, 5, 10, &device).unwrap().is_none());
    let base = ranker_config(&s).init::<B>(&device);
    let plan = base.serve_plan(&batcher, 5, 10, &device).unwrap().unwrap();
    let err = plan.score(0, &[3, 10], &device).unwrap_err();
    assert!(
        err.to_string()
            .contains("item 10 is beyond the plan's 10 items"),
        "{err}"
    );
    let err = plan.score(5, &[3], &device).unwrap_err();
    assert!(
        err.to_string()
            .contains("user 5 is beyond the plan's 5 users"),
        "{err}"
    );
}

/// The plan's multiply-adds per candidate: the ranker's layers after the first (and head) for
/// both, plus the product feature, the aux layers after the first and the fused rows for the
/// fused ranker.
#[test]
fn serve_plan_counts_its_multiply_adds_per_candidate() {
    let s = setup();
    let device = Default::default();
    let base_batcher = Batcher::new(&s.toy.data, &s.users, &s.items, None);
    let fused_batcher = Batcher::new(&s.toy.data, &s.users, &s.items, Some(&s.lookup));
    let (n_users, n_items) = (s.toy.data.users.len(), s.toy.data.items.len());
    let base = ranker_config(&s).with_hidden(vec![32, 8]).init::<B>(&device);
    let plan = base
        .serve_plan(&base_batcher, n_users, n_items, &device)
        .unwrap()
        .unwrap();
    assert_eq!(plan.macs_per_candidate(), 32 * 8 + 8);
    let du = s.lookup.user_dim();
    for product in [true, false] {
        let fc = FusedRankerConfig::new(
            ranker_config(&s).with_hidden(vec![32, 8]),
            LearnFusionConfig::new(du, s.lookup.item_dim())
                .with_hidden(vec![12, 4])
                .with_product_feature(product),
        );
        let fused = fc.init::<B>(&device);
        let plan = fused
            .serve_plan(&fused_batcher, n_users, n_items, &device)
            .unwrap()
            .unwrap();
        let aux = if product { du * 12 } else { 0 } + 12 * 4 + 4 * 32;
        assert_eq!(plan.macs_per_candidate(), 32 * 8 + 8 + aux, "product {product}");
    }
}

/// Every parameter's gradient (in visiting order; `None` where a parameter got none).
struct GradCollector<'a> {
    grads: &'a <AD as burn::tensor::backend::AutodiffBackend>::Gradients,
    out: Vec<Option<Vec<f32>>>,
}

impl burn::module::ModuleVisitor<AD> for GradCollector<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AD, D>>) {
        self.out.push(
            param
                .grad(self.grads)
                .map(|g| g.into_data().convert::<f32>().into_vec().unwrap()),
        );
    }
}

type AD = learnrec_fusion::CpuAutodiff;

/// Logits, every parameter's gradient and the ID leaves' gradients of `main + aux` loss, via
/// the fast path (`forward_batch_with`) or the reference path (concatenated input).
#[allow(clippy::type_complexity)]
fn loss_grads(
    model: &FusedRanker<AD>,
    batch: &learnrec_fusion::data::Batch<AD>,
    ids: (Tensor<AD, 2>, Tensor<AD, 2>),
    fast: bool,
) -> (Vec<f32>, Vec<Option<Vec<f32>>>, Vec<Vec<f32>>) {
    use burn::module::Module as _;
    let leaves = (ids.0.require_grad(), ids.1.require_grad());
    let (logits, out) = if fast {
        model
            .forward_batch_with(batch, Some(leaves.clone()))
            .unwrap()
    } else {
        model
            .forward_batch_reference(batch, Some(leaves.clone()))
            .unwrap()
    };
    let out = out.unwrap();
    let loss = learnrec_fusion::loss::weighted_bce_with_logits(
        logits.clone(),
        batch.labels.clone(),
        Some(batch.weights.clone()),
    ) + model.aux_loss(&out, batch, true).unwrap();
    let grads = loss.backward();
    let mut c = GradCollector {
        grads: &grads,
        out: Vec::new(),
    };
    model.visit(&mut c);
    let ids = [leaves.0, leaves.1]
        .iter()
        .map(|l| {
            l.grad(&grads)
                .unwrap()
                .into_data()
                .convert::<f32>()
                .into_vec()
                .unwrap()
        })
        .collect();
    let logits = logits.into_data().convert::<f32>().into_vec().unwrap();
    (logits, c.out, ids)
}

fn assert_close(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * scale + 1e-7,
            "{what}[{k}]: fast {y} vs reference {x}"
        );
    }
}

#[test]
fn fused_block_first_layer_matches_concatenation_in_logits_and_gradients() {
    let s = setup();
    let device = Default::default();
    let batcher = Batcher::new(&s.toy.data, &s.users, &s.items, Some(&s.lookup));
    let examples = &s.toy.data.examples[..200];
    let host = batcher.batch(examples);
    // cold users and default-filled items are in the batch, so the defaults get gradients
    let learn = host.learn.as_ref().unwrap();
    assert!(learn.user_known.iter().any(|&k| k < 0.5));
    let batch = host.to_device::<AD>(&device);
    for (embeddings, stop_gradient, product) in [
        (true, false, false),
        (false, false, false),
        (true, true, false),
        (true, false, true),
        (false, true, true),
    ] {
        let fc = FusedRankerConfig::new(
            ranker_config(&s).with_id_dim(8),
            LearnFusionConfig::new(s.lookup.user_dim(), s.lookup.item_dim())
                .with_include_embeddings(embeddings)
                .with_stop_gradient(stop_gradient)
                .with_product_feature(product),
        );
        let model: FusedRanker<AD> = random_defaults(fc.init::<AD>(&device));
        let n = examples.len();
        let ids = || {
            (
                Tensor::<AD, 2>::random([n, 8], Distribution::Normal(0.0, 0.1), &device),
                Tensor::<AD, 2>::random([n, 8], Distribution::Normal(0.0, 0.1), &device),
            )
        };
        let (iu, ii) = ids();
        let (lf, gf, idf) = loss_grads(&model, &batch, (iu.clone(), ii.clone()), true);
        let (lr, gr, idr) = loss_grads(&model, &batch, (iu, ii), false);
        let tag = format!("embeddings {embeddings}, stop-gradient {stop_gradient}, product {product}");
        assert_close(&format!("logits ({tag})"), &lr, &lf);
        assert_eq!(gf.len(), gr.len());
        let mut compared = 0;
        for (k, (f, r)) in gf.iter().zip(&gr).enumerate() {
            assert_eq!(
                f.is_some(),
                r.is_some(),
                "param {k} ({tag}): gradient presence"
            );
            if let (Some(f), Some(r)) = (f, r) {
                assert_close(&format!("param {k} grad ({tag})"), r, f);
                compared += 1;
            }
        }
        assert!(compared >= 8, "{compared} parameters compared");
        assert_close(&format!("user ID grad ({tag})"), &idr[0], &idf[0]);
        assert_close(&format!("item ID grad ({tag})"), &idr[1], &idf[1]);
    }
}
