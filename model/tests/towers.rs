//! Tests of the LEARN towers: losses against scalar references, tower masks, training with
//! resume, the divergence guard, retrieval metrics against brute force, config errors.

use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use learnrec_model::towers::retrieval::{self, Embeddings};
use learnrec_model::towers::train::{Checkpoint, checkpoint_path};
use learnrec_model::towers::*;
use learnrec_model::towers::io;
use learnrec_model::{CpuAutodiff, CpuBackend};
use rand::{Rng, SeedableRng};
use std::collections::HashSet;

type B = CpuBackend;

/// Flex keeps one process-wide seeded RNG: tests that initialise or train models take this lock
/// so that parallel tests do not draw from each other's stream.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn dev() -> burn::tensor::Device<B> {
    Default::default()
}

fn rand_unit(rng: &mut impl Rng, n: usize, dim: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n * dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    for r in v.chunks_mut(dim) {
        let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
        r.iter_mut().for_each(|x| *x /= n);
    }
    v
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64) * (*y as f64)).sum()
}

/// Direct scalar reference of the dense all-action loss (the formula in the doc comment).
fn dense_reference(u: &[f32], it: &[f32], b: usize, lh: usize, lt: usize, dim: usize, m: &LossMasks, scale: f64) -> f64 {
    let ur = |i: usize, j: usize| &u[(i * lh + j) * dim..(i * lh + j + 1) * dim];
    let ir = |i: usize, k: usize| &it[(i * lt + k) * dim..(i * lt + k + 1) * dim];
    let (mut total, mut pairs) = (0.0, 0usize);
    for i in 0..b {
        for j in 0..m.history_lens[i] {
            for k in 0..m.targets[i].len() {
                let pos = scale * dot(ur(i, j), ir(i, k));
                let mut denom = pos.exp();
                for z in (0..b).filter(|&z| z != i) {
                    for k2 in 0..m.targets[z].len() {
                        if m.targets[i].contains(&m.targets[z][k2]) {
                            continue; // same item as one of user i's positives
                        }
                        denom += (scale * dot(ur(i, j), ir(z, k2))).exp();
                    }
                }
                total += -(pos.exp() / denom).ln();
                pairs += 1;
            }
        }
    }
    total / pairs as f64
}

fn masks_with_padding_and_duplicate() -> LossMasks {
    // user 0 and user 2 share item 7 (a duplicate across users); padding in both sequences.
    LossMasks {
        history_lens: vec![3, 1, 2],
        targets: vec![vec![7, 1], vec![2, 3, 4], vec![5, 7]],
    }
}

#[test]
fn dense_loss_matches_scalar_reference() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let (b, lh, lt, dim) = (3, 3, 3, 5);
    let u = rand_unit(&mut rng, b * lh, dim);
    let it = rand_unit(&mut rng, b * lt, dim);
    let m = masks_with_padding_and_duplicate();
    for scale in [1.0f32, 20.0] {
        let ut = Tensor::<B, 3>::from_data(TensorData::new(u.clone(), [b, lh, dim]), &dev());
        let itt = Tensor::<B, 3>::from_data(TensorData::new(it.clone(), [b, lt, dim]), &dev());
        let got: f32 = dense_all_action_loss(ut, itt, &m, scale).into_scalar();
        let want = dense_reference(&u, &it, b, lh, lt, dim, &m, scale as f64);
        assert!((got as f64 - want).abs() < 1e-4 * want.abs().max(1.0), "scale {scale}: {got} vs {want}");
    }
    // Changing a padded position's embedding changes nothing.
    let mut u2 = u.clone();
    u2[(1 * lh + 2) * dim] += 5.0; // user 1, history position 2 (padding: len 1)
    let mut it2 = it.clone();
    it2[(2 * lt + 2) * dim] += 5.0; // user 2, target position 2 (padding: len 2)
    let a: f32 = dense_all_action_loss(
        Tensor::<B, 3>::from_data(TensorData::new(u.clone(), [b, lh, dim]), &dev()),
        Tensor::<B, 3>::from_data(TensorData::new(it.clone(), [b, lt, dim]), &dev()),
        &m,
        20.0,
    )
    .into_scalar();
    let c: f32 = dense_all_action_loss(
        Tensor::<B, 3>::from_data(TensorData::new(u2, [b, lh, dim]), &dev()),
        Tensor::<B, 3>::from_data(TensorData::new(it2, [b, lt, dim]), &dev()),
        &m,
        20.0,
    )
    .into_scalar();
    assert_eq!(a, c);
}

#[test]
fn dense_loss_gradient_is_finite_and_nonzero() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let (b, lh, lt, dim) = (3, 3, 3, 5);
    let u = Tensor::<CpuAutodiff, 3>::from_data(TensorData::new(rand_unit(&mut rng, b * lh, dim), [b, lh, dim]), &dev())
        .require_grad();
    let it = Tensor::<CpuAutodiff, 3>::from_data(TensorData::new(rand_unit(&mut rng, b * lt, dim), [b, lt, dim]), &dev());
    let loss = dense_all_action_loss(u.clone(), it, &masks_with_padding_and_duplicate(), 20.0);
    let g = u.grad(&loss.backward()).expect("grad");
    let g: Vec<f32> = g.into_data().to_vec().unwrap();
    assert!(g.iter().all(|x| x.is_finite()));
    // padded history rows get zero gradient, valid rows do not
    let row = |i: usize, j: usize| &g[(i * lh + j) * dim..(i * lh + j + 1) * dim];
    assert!(row(1, 1).iter().all(|&x| x == 0.0));
    assert!(row(0, 0).iter().any(|&x| x != 0.0));
}

#[test]
fn last_position_loss_matches_reference() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let (b, lh, lt, dim) = (3, 3, 3, 4);
    let u = rand_unit(&mut rng, b * lh, dim);
    let it = rand_unit(&mut rng, b * lt, dim);
    // users 0 and 2 have the same first target: each masks the other as a negative
    let m = LossMasks { history_lens: vec![3, 1, 2], targets: vec![vec![7], vec![2, 3], vec![7, 1]] };
    let scale = 20.0;
    let got: f32 = last_position_loss(
        Tensor::<B, 3>::from_data(TensorData::new(u.clone(), [b, lh, dim]), &dev()),
        Tensor::<B, 3>::from_data(TensorData::new(it.clone(), [b, lt, dim]), &dev()),
        &m,
        scale as f32,
    )
    .into_scalar();
    let mut want = 0.0;
    for i in 0..b {
        let j = m.history_lens[i] - 1;
        let ui = &u[(i * lh + j) * dim..(i * lh + j + 1) * dim];
        let s = |z: usize| scale * dot(ui, &it[(z * lt) * dim..(z * lt + 1) * dim]);
        let denom: f64 = (0..b).filter(|&z| z == i || m.targets[z][0] != m.targets[i][0]).map(|z| s(z).exp()).sum();
        want += -(s(i).exp() / denom).ln();
    }
    want /= b as f64;
    assert!((got as f64 - want).abs() < 1e-4 * want.max(1.0), "{got} vs {want}");
}

fn content_features(n_items: usize, dim: usize, seed: u64) -> ItemFeatures {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    ItemFeatures::Content { dim, data: rand_unit(&mut rng, n_items, dim) }
}

fn to_vec<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec().unwrap()
}

#[test]
fn user_tower_is_causal_and_item_variants_agree_on_single_items() {
    let _g = rng_lock();
    let cfg = TowerConfig::tiny(InputKind::LlmContent, 8);
    let model = cfg.init::<B>(&dev()).unwrap();
    let f = content_features(10, 8, 4);
    let a: &[u32] = &[1, 2, 3, 4];
    let b: &[u32] = &[1, 2, 9, 0];
    let out = to_vec(model.user_sequence(f.input::<B>(&[a, b], &dev())));
    let d = cfg.output_dim;
    // positions 0 and 1 agree (same prefix), position 2 differs
    assert!(out[..2 * d].iter().zip(&out[4 * d..6 * d]).all(|(x, y)| (x - y).abs() < 1e-5));
    assert!(out[2 * d..3 * d].iter().zip(&out[6 * d..7 * d]).any(|(x, y)| (x - y).abs() > 1e-4));
    // L2-normalised
    let n: f32 = out[..d].iter().map(|x| x * x).sum();
    assert!((n - 1.0).abs() < 1e-4);
    // Variant 2 (diagonal): position k of a sequence = item k alone; variant 1 differs after 0.
    let diag = to_vec(model.item_sequence(f.input::<B>(&[a], &dev()), ItemTowerVariant::SharedDiagonal));
    let alone = to_vec(model.item_sequence(f.input::<B>(&[&a[2..3]], &dev()), ItemTowerVariant::SharedCausal));
    assert!(diag[2 * d..3 * d].iter().zip(&alone).all(|(x, y)| (x - y).abs() < 1e-5));
    let causal = to_vec(model.item_sequence(f.input::<B>(&[a], &dev()), ItemTowerVariant::SharedCausal));
    assert!(causal[2 * d..3 * d].iter().zip(&alone).any(|(x, y)| (x - y).abs() > 1e-4));
    // Serving: item embeddings of single items equal the length-1 tower output.
    let emb = retrieval::item_embeddings(&model, &[3], &f, ItemTowerVariant::SharedCausal, 4, &dev()).unwrap();
    assert!(emb.data.iter().zip(&alone).all(|(x, y)| (x - y).abs() < 1e-6));
}

#[test]
fn learned_positions_and_id_input_build_and_run() {
    let _g = rng_lock();
    let mut cfg = TowerConfig::tiny(InputKind::Id, 6);
    cfg.n_items = 10;
    cfg.learned_positions = true;
    cfg.max_len = 8;
    let model = cfg.init::<B>(&dev()).unwrap();
    let f = ItemFeatures::Ids { n_items: 10 };
    let out = model.user_sequence(f.input::<B>(&[&[1, 2, 3], &[4]], &dev()));
    assert_eq!(out.dims(), [2, 3, 16]);
}

fn synthetic_users(n: usize, n_items: u32, seed: u64) -> Vec<UserSequence> {
    // Each user likes one of 4 "genres" (item id mod 4): history and target from that genre.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n as u32)
        .map(|u| {
            let g = u % 4;
            let mut pick = |len: usize| -> Vec<u32> {
                (0..len).map(|_| rng.random_range(0..n_items / 4) * 4 + g).collect()
            };
            let hl = 3 + (u as usize % 5);
            UserSequence { user: u, history: pick(hl), target: pick(1 + u as usize % 3) }
        })
        .collect()
}

fn tiny_learn(epochs: usize) -> LearnConfig {
    let mut tower = TowerConfig::tiny(InputKind::LlmContent, 8);
    tower.dropout = 0.1; // dropout on: resume must still be exact
    LearnConfig {
        tower,
        train: TrainConfig { epochs, batch_size: 8, lr: 1e-3, history_len: 6, target_len: 3, ..Default::default() },
    }
}

fn params(m: &LearnTower<B>) -> Vec<u32> {
    // Every float parameter's bits, in visiting order.
    struct Collect(Vec<u32>);
    impl burn::module::ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<B, D>>) {
            let v: Vec<f32> = p.val().into_data().to_vec().unwrap();
            self.0.extend(v.iter().map(|x| x.to_bits()));
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

#[test]
fn resume_is_bit_for_bit() {
    let _g = rng_lock();
    let data = synthetic_users(24, 40, 5);
    let f = content_features(40, 8, 6);
    let cfg = tiny_learn(2);
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let o1 = TrainOptions { out_dir: d1.path().into(), ..Default::default() };
    let (m1, r1) = train::<CpuAutodiff>(&cfg, &data, &f, &o1, &dev()).unwrap();
    let o2 = TrainOptions { out_dir: d2.path().into(), max_epochs_this_run: Some(1), ..Default::default() };
    let (_, ra) = train::<CpuAutodiff>(&cfg, &data, &f, &o2, &dev()).unwrap();
    assert_eq!(ra.epochs, 1);
    let o3 = TrainOptions { resume: true, ..o2.clone() };
    let (m2, rb) = train::<CpuAutodiff>(&cfg, &data, &f, &o3, &dev()).unwrap();
    assert_eq!((rb.epochs, rb.steps), (2, r1.steps));
    assert_eq!(r1.epoch_losses, rb.epoch_losses);
    let joined: Vec<f32> = ra.step_losses.iter().chain(&rb.step_losses).copied().collect();
    assert_eq!(r1.step_losses, joined);
    let (p1, p2) = (params(&m1), params(&m2));
    assert!(!p1.is_empty() && p1 == p2, "weights differ after resume");
    // and the checkpoint reloads to the same weights
    let p = checkpoint_path(d2.path());
    let ck = Checkpoint::load(&p).unwrap();
    assert!(params(&ck.model::<B>(&dev(), &p).unwrap()) == p2, "checkpoint weights differ");
}

#[test]
fn training_lowers_the_loss() {
    let _g = rng_lock();
    let data = synthetic_users(32, 40, 7);
    let f = content_features(40, 8, 8);
    let mut cfg = tiny_learn(4);
    cfg.tower.dropout = 0.0;
    let d = tempfile::tempdir().unwrap();
    let (_, r) = train::<CpuAutodiff>(&cfg, &data, &f, &TrainOptions { out_dir: d.path().into(), ..Default::default() }, &dev()).unwrap();
    let (first, last) = (r.epoch_losses[0], *r.epoch_losses.last().unwrap());
    assert!(last < first - 0.05, "epoch losses {:?}", r.epoch_losses);
}

#[test]
fn fewer_users_than_the_batch_size_still_train() {
    let _g = rng_lock();
    let data = synthetic_users(5, 40, 11);
    let f = content_features(40, 8, 12);
    let mut cfg = tiny_learn(2);
    cfg.train.batch_size = 128;
    let d = tempfile::tempdir().unwrap();
    let (_, r) = train::<CpuAutodiff>(&cfg, &data, &f, &TrainOptions { out_dir: d.path().into(), ..Default::default() }, &dev()).unwrap();
    assert_eq!(r.steps, 2, "one step per epoch over all 5 users");
    assert!(r.epoch_losses.iter().all(|&l| l > 0.0 && l.is_finite()), "epoch losses {:?}", r.epoch_losses);
}

#[test]
fn nan_input_stops_with_diverged() {
    let _g = rng_lock();
    let data = synthetic_users(16, 40, 9);
    let mut f = content_features(40, 8, 10);
    if let ItemFeatures::Content { data, .. } = &mut f {
        data[0] = f32::NAN;
    }
    let data: Vec<UserSequence> = data.into_iter().map(|mut u| { u.history.insert(0, 0); u }).collect();
    let d = tempfile::tempdir().unwrap();
    let err = train::<CpuAutodiff>(&tiny_learn(1), &data, &f, &TrainOptions { out_dir: d.path().into(), ..Default::default() }, &dev())
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, learnrec_model::Error::Diverged { step: 1, .. }), "{msg}");
    assert!(msg.contains("training diverged at step 1") && msg.contains("NaN"), "{msg}");
}

#[test]
fn raw_content_variant_trains_or_reports_divergence() {
    let _g = rng_lock();
    let data = synthetic_users(16, 40, 11);
    let f = content_features(40, 8, 12);
    let mut cfg = tiny_learn(1);
    cfg.tower.item_tower = ItemTowerVariant::RawContent;
    let d = tempfile::tempdir().unwrap();
    match train::<CpuAutodiff>(&cfg, &data, &f, &TrainOptions { out_dir: d.path().into(), ..Default::default() }, &dev()) {
        Ok((m, r)) => {
            assert!(r.step_losses.iter().all(|l| l.is_finite()));
            // user embeddings live in the content space (dim 8), comparable with raw items
            let u = retrieval::user_embeddings(&m, &[&data[0]], &f, 6, 4, &dev()).unwrap();
            assert_eq!(u.dim, 8);
        }
        Err(e) => assert!(e.to_string().contains("raw content"), "{e}"),
    }
}

#[test]
fn config_and_data_errors_are_explicit() {
    let _g = rng_lock();
    let mut t = TowerConfig::tiny(InputKind::LlmContent, 8);
    t.n_heads = 5;
    assert!(t.validate().unwrap_err().to_string().contains("multiple of `n_heads`"));
    let mut t = TowerConfig::tiny(InputKind::Id, 8);
    t.item_tower = ItemTowerVariant::RawContent;
    t.n_items = 3;
    assert!(t.validate().unwrap_err().to_string().contains("raw-content` needs a content input"));
    let cfg = tiny_learn(1);
    let d = tempfile::tempdir().unwrap();
    let o = TrainOptions { out_dir: d.path().into(), ..Default::default() };
    let f = content_features(4, 8, 1);
    let bad = vec![UserSequence { user: 0, history: vec![9], target: vec![1] }; 3];
    let e = train::<CpuAutodiff>(&cfg, &bad, &f, &o, &dev()).unwrap_err().to_string();
    assert!(e.contains("item id 9 is out of range"), "{e}");
    let wrong_dim = content_features(4, 6, 1);
    let ok = vec![UserSequence { user: 0, history: vec![1], target: vec![2] }; 3];
    let e = train::<CpuAutodiff>(&cfg, &ok, &wrong_dim, &o, &dev()).unwrap_err().to_string();
    assert!(e.contains("dim 6") && e.contains("input_dim 8"), "{e}");
    // resume without a checkpoint names the file
    let e = train::<CpuAutodiff>(&cfg, &ok, &f, &TrainOptions { resume: true, ..o.clone() }, &dev()).unwrap_err().to_string();
    assert!(e.contains("checkpoint.bin"), "{e}");
    // a truncated checkpoint is an error, not a panic
    let p = d.path().join("checkpoint.bin");
    std::fs::write(&p, b"LRNTWR01\x05\x00").unwrap();
    let e = Checkpoint::load(&p).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn lr_schedule_warms_up_then_decays_without_rising() {
    let t = TrainConfig { lr: 1e-3, warmup_frac: 0.1, ..Default::default() };
    let total = 100;
    let lrs: Vec<f64> = (0..130).map(|s| t.lr_at(s, total)).collect();
    assert!((lrs[0] - 1e-4).abs() < 1e-12 && (lrs[9] - 1e-3).abs() < 1e-12);
    assert!(lrs[10..].windows(2).all(|w| w[1] <= w[0] + 1e-15));
    assert!(lrs[100..].iter().all(|&x| x.abs() < 1e-12));
}

#[test]
fn metrics_match_brute_force_with_ties() {
    // items 0..6 on a line; ties between items 1 and 2 (equal vectors) break by lower row.
    let items = Embeddings { dim: 2, data: vec![1.0, 0.0, 0.8, 0.6, 0.8, 0.6, 0.0, 1.0, -1.0, 0.0, 0.6, 0.8] };
    let users = Embeddings { dim: 2, data: vec![1.0, 0.0, 0.0, 1.0] };
    let ranked = retrieval::top_k::<B>(&users, &items, 3, None, 1, &dev()).unwrap();
    assert_eq!(ranked[0], vec![0, 1, 2]);
    assert_eq!(ranked[1], vec![3, 5, 1]);
    let ex = vec![vec![0], vec![]];
    let ranked_ex = retrieval::top_k::<B>(&users, &items, 2, Some(&ex), 2, &dev()).unwrap();
    assert_eq!(ranked_ex[0], vec![1, 2]);
    // brute-force metrics
    let t: HashSet<usize> = [2, 4].into_iter().collect();
    let (h, r, n) = retrieval::user_metrics(&ranked[0], &t, 3);
    assert_eq!((h, r), (1.0, 0.5));
    let want = (1.0 / 4f64.log2()) / (1.0 + 1.0 / 3f64.log2());
    assert!((n - want).abs() < 1e-12);
    let (h, r, _) = retrieval::user_metrics(&ranked[0], &t, 2);
    assert_eq!((h, r), (0.0, 0.0));
    use learnrec_eval::segment::Segment::*;
    let rep = retrieval::evaluate(
        &ranked,
        &[vec![2, 4], vec![]],
        &[1, 3],
        &[Regular, ColdStart],
        &[Regular, Regular, LongTail, Regular, ColdStart, Regular],
    )
    .unwrap();
    assert_eq!((rep.users, rep.skipped_users), (1, 1));
    assert_eq!(rep.overall[1].recall, 0.5);
    assert_eq!(rep.by_item_segment[&LongTail].1[1].recall, 1.0);
    assert_eq!(rep.by_item_segment[&ColdStart].1[1].recall, 0.0);
    assert_eq!(rep.by_user_segment[&Regular].0, 1);
}

#[test]
fn config_files_toml_and_json() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("c.toml");
    std::fs::write(&p, "[tower]\nn_layers = 4\nitem_tower = \"shared-diagonal\"\n[train]\nlr = 1e-4\nloss = \"last-position\"\n").unwrap();
    let c = io::read_config(&p).unwrap();
    assert_eq!((c.tower.n_layers, c.tower.item_tower), (4, ItemTowerVariant::SharedDiagonal));
    assert_eq!((c.train.lr, c.train.loss, c.train.adam_eps), (1e-4, LossKind::LastPosition, 1e-8));
    assert_eq!(c.tower.d_model, 768); // paper default kept
    let j = d.path().join("c.json");
    std::fs::write(&j, serde_json::to_vec(&c).unwrap()).unwrap();
    assert_eq!(io::read_config(&j).unwrap(), c);
    std::fs::write(&p, "[tower]\nn_layer = 4\n").unwrap();
    let e = io::read_config(&p).unwrap_err().to_string();
    assert!(e.contains("c.toml") && e.contains("n_layer"), "{e}");
}

#[test]
fn sequences_file_errors_name_line_and_field() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s.jsonl");
    std::fs::write(&p, "{\"user\":\"a\",\"history\":[\"x\"],\"target\":[\"y\"]}\n{\"user\":\"b\",\"history\":[\"z\"],\"target\":[]}\n").unwrap();
    let mut users = learnrec_eval::data::IdMap::new();
    let mut items = learnrec_eval::data::IdMap::from_names(["x", "y"]);
    let e = io::read_sequences(&p, &mut users, &mut items, io::UnknownItems::Reject).unwrap_err().to_string();
    assert!(e.contains("s.jsonl") && e.contains("line 2: field `history`") && e.contains("unknown item `z`"), "{e}");
    let mut users = learnrec_eval::data::IdMap::new();
    let s = io::read_sequences(&p, &mut users, &mut items, io::UnknownItems::Intern).unwrap();
    assert_eq!(s[1].history, vec![2]);
    assert!(s[1].target.is_empty());
}
