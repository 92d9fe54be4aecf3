//! Integration tests of the fusion stage on the generated toy world.

use burn::module::AutodiffModule;
use burn::nn::Linear;
use burn::tensor::backend::AutodiffBackend;
use learnrec_eval::store::StoreKind;
use learnrec_fusion::data::{Batcher, IdVocab, RankingExample};
use learnrec_fusion::io::{RankersMeta, load_rankers, save_rankers, write_predictions};
use learnrec_fusion::lookup::ItemSource;
use learnrec_fusion::loss::weighted_bce_with_logits;
use learnrec_fusion::metrics::auc;
use learnrec_fusion::toy::ToyConfig;
use learnrec_fusion::train::{TrainConfig, predict, train};
use learnrec_fusion::{
    CpuAutodiff, CpuBackend, FusedRankerConfig, Interaction, LearnFusionConfig, LearnLookup,
    RankModel,
};

type AD = CpuAutodiff;

mod common;
use common::{ranker_config, setup};

/// Largest |grad| over a linear layer's weight; `None` when the weight got no gradient at all.
fn max_grad<B: AutodiffBackend>(l: &Linear<B>, grads: &B::Gradients) -> Option<f32> {
    l.weight
        .grad(grads)
        .map(|g| g.abs().max().into_scalar().elem::<f32>())
}
use burn::tensor::ElementConversion as _;

/// Sum of the aux network's largest weight gradients from one backward pass of `main + aux`.
fn aux_grad(stop_gradient: bool, lambda: f64) -> (f32, f32) {
    let s = setup(&ToyConfig {
        n_users: 50,
        n_items: 60,
        impressions_per_user: 10,
        ..Default::default()
    });
    let device = Default::default();
    let fusion = LearnFusionConfig::new(s.lookup.user_dim(), s.lookup.item_dim())
        .with_stop_gradient(stop_gradient)
        .with_aux_weight(lambda);
    let model = FusedRankerConfig::new(ranker_config(&s), fusion).init::<AD>(&device);
    let batcher = Batcher::new(&s.toy.data, &s.users, &s.items, Some(&s.lookup));
    let batch = batcher
        .batch(&s.toy.data.examples[..128])
        .to_device::<AD>(&device);
    let (logits, out) = model.forward_batch(&batch).unwrap();
    let out = out.unwrap();
    let loss = weighted_bce_with_logits(logits, batch.labels.clone(), None)
        + model.aux_loss(&out, &batch, false).unwrap();
    let grads = loss.backward();
    let aux: f32 = model
        .fusion
        .mlp
        .iter()
        .chain(std::iter::once(&model.fusion.head))
        .map(|l| max_grad(l, &grads).unwrap_or(0.0))
        .sum();
    let ranker_head = model
        .ranker
        .user_emb
        .weight
        .grad(&grads)
        .map(|g| g.abs().max().into_scalar().elem::<f32>());
    (aux, ranker_head.unwrap_or(0.0))
}

#[test]
fn stop_gradient_blocks_the_main_loss_from_the_aux_network() {
    // λ = 0 and stop-gradient: the aux network gets nothing, the ranker still learns.
    let (aux, ranker) = aux_grad(true, 0.0);
    assert_eq!(aux, 0.0, "aux params got a gradient from the main loss");
    assert!(ranker > 0.0, "the ranker's own params got no gradient");
    // λ = 0 without stop-gradient: the main loss reaches the aux network.
    let (aux, _) = aux_grad(false, 0.0);
    assert!(
        aux > 0.0,
        "without stop-gradient the main loss must train the aux network"
    );
    // stop-gradient with λ > 0: the aux loss alone trains it.
    let (aux, _) = aux_grad(true, 1.0);
    assert!(aux > 0.0, "the aux CVR loss must train the aux network");
}

#[test]
fn fused_ranker_beats_baseline_when_content_decides_new_items() {
    let s = setup(&ToyConfig::default());
    let split = s.toy.data.temporal_split(0.7, 0.1);
    let device = Default::default();
    let cfg = TrainConfig::new().with_max_epochs(6).with_patience(2);
    let base_batcher = Batcher::new(&s.toy.data, &s.users, &s.items, None);
    let fused_batcher = Batcher::new(&s.toy.data, &s.users, &s.items, Some(&s.lookup));

    let t = std::time::Instant::now();
    let (base, rb) = train::<AD, _>(
        "baseline",
        ranker_config(&s).init::<AD>(&device),
        &base_batcher,
        &split,
        &cfg,
        &device,
        |_, _| {},
    )
    .unwrap();
    let fcfg = FusedRankerConfig::new(ranker_config(&s), LearnFusionConfig::new(16, 16));
    let (fused, rf) = train::<AD, _>(
        "fused",
        fcfg.init::<AD>(&device),
        &fused_batcher,
        &split,
        &cfg,
        &device,
        |_, _| {},
    )
    .unwrap();
    println!(
        "training took {:?}; baseline {:.0} samples/s, fused {:.0} samples/s",
        t.elapsed(),
        rb.samples_per_sec,
        rf.samples_per_sec
    );

    let new: Vec<RankingExample> = split
        .test
        .iter()
        .copied()
        .filter(|e| s.toy.is_new[e.item as usize])
        .collect();
    assert!(
        new.len() > 200,
        "the toy test split must hold new items ({} found)",
        new.len()
    );
    let labels: Vec<f32> = new.iter().map(|e| e.label).collect();
    let pb = predict(&base.valid(), &base_batcher, &new, 1024, &device).unwrap();
    let pf = predict(&fused.valid(), &fused_batcher, &new, 1024, &device).unwrap();
    let (ab, af) = (auc(&pb, &labels).unwrap(), auc(&pf, &labels).unwrap());
    println!("new-item test AUC: baseline {ab:.4}, fused {af:.4}");
    assert!(
        af > ab + 0.05,
        "fused {af:.4} should beat baseline {ab:.4} on new items"
    );
    assert!(
        af > 0.65,
        "fused AUC on new items {af:.4} is too low to have learned anything"
    );
}

#[test]
fn oov_users_and_items_get_the_reserved_row_and_learned_defaults() {
    let s = setup(&ToyConfig {
        n_users: 40,
        n_items: 50,
        impressions_per_user: 10,
        ..Default::default()
    });
    let vocab = IdVocab::fit(&s.toy.data.items, [3u32, 5, 3]);
    assert_eq!(vocab.n_rows(), 3);
    assert_eq!(vocab.row("i3"), 1);
    assert_eq!(vocab.row("i5"), 2);
    assert_eq!(vocab.row("never-seen"), 0);

    let batcher = Batcher::new(&s.toy.data, &s.users, &s.items, Some(&s.lookup));
    // ids beyond the dataset: OOV rows, missing features, unknown LEARN rows.
    let ex = [
        RankingExample {
            user: 9_999,
            item: 9_999,
            ts: 0,
            label: 0.0,
            weight: 1.0,
        },
        RankingExample {
            user: 9_998,
            item: 9_997,
            ts: 0,
            label: 1.0,
            weight: 1.0,
        },
    ];
    let b = batcher.batch(&ex);
    assert_eq!(b.users, vec![0, 0]);
    assert_eq!(b.items, vec![0, 0]);
    assert_eq!(
        b.fields,
        s.toy
            .data
            .features
            .offsets()
            .iter()
            .chain(s.toy.data.features.offsets().iter())
            .map(|&o| i64::from(o))
            .collect::<Vec<_>>()
    );
    let l = b.learn.as_ref().unwrap();
    assert_eq!(l.user_known, vec![0.0, 0.0]);
    assert_eq!(l.item_known, vec![0.0, 0.0]);

    let device = Default::default();
    let model = FusedRankerConfig::new(ranker_config(&s), LearnFusionConfig::new(16, 16))
        .init::<CpuBackend>(&device);
    let p = predict(&model, &batcher, &ex, 16, &device).unwrap();
    assert!(
        p.iter().all(|v| v.is_finite() && *v > 0.0 && *v < 1.0),
        "{p:?}"
    );
    assert_eq!(
        p[0], p[1],
        "two fully unknown examples must be scored alike"
    );

    // the baseline refuses LEARN-less fused use, and the fused ranker refuses batches without LEARN
    let plain = Batcher::new(&s.toy.data, &s.users, &s.items, None);
    let e = predict(&model, &plain, &ex, 16, &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs LEARN inputs"), "{e}");
}

#[test]
fn new_items_fall_back_to_content_derived_embeddings() {
    let s = setup(&ToyConfig {
        n_users: 60,
        n_items: 300,
        impressions_per_user: 5,
        noise: 0.05,
        ..Default::default()
    });
    assert_eq!(
        s.lookup.stats.items_from_content,
        s.toy.new_item_truth.len()
    );
    assert_eq!(s.lookup.stats.items_default, 0);
    assert_eq!(s.lookup.stats.users_in_store, s.toy.user_store.len());
    let mut cos_sum = 0.0;
    for (r, id) in s.toy.new_item_truth.ids.iter().enumerate() {
        let item = s.toy.data.items.get(id).unwrap();
        assert_eq!(s.lookup.item_source(item), ItemSource::Content);
        let got = s.lookup.fill([(0, item)]).item;
        let want = s.toy.new_item_truth.row(r);
        let dot: f32 = got.iter().zip(want).map(|(a, b)| a * b).sum();
        let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        cos_sum += dot / (n(&got) * n(want));
    }
    let mean_cos = cos_sum / s.toy.new_item_truth.len() as f32;
    assert!(
        mean_cos > 0.9,
        "content-derived embeddings are far from the truth: mean cosine {mean_cos}"
    );

    // without a content store, new items use the learned default
    let no_content = LearnLookup::new(
        &s.toy.data.users,
        &s.toy.data.items,
        &s.toy.user_store,
        &s.toy.item_store,
        None,
    )
    .unwrap();
    assert_eq!(no_content.stats.items_default, s.toy.new_item_truth.len());
    assert_eq!(no_content.stats.items_from_content, 0);
}

#[test]
fn stores_of_the_wrong_kind_are_errors() {
    let s = setup(&ToyConfig {
        n_users: 10,
        n_items: 10,
        impressions_per_user: 2,
        ..Default::default()
    });
    let d = &s.toy.data;
    let e = LearnLookup::new(
        &d.users,
        &d.items,
        &s.toy.content_store,
        &s.toy.item_store,
        None,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the user store holds `content` embeddings; expected `user`"
    );
    let e = LearnLookup::new(
        &d.users,
        &d.items,
        &s.toy.user_store,
        &s.toy.user_store,
        None,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the item store holds `user` embeddings; expected `item`"
    );
    let e = LearnLookup::new(
        &d.users,
        &d.items,
        &s.toy.user_store,
        &s.toy.item_store,
        Some(&s.toy.item_store),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the content store holds `item` embeddings; expected `content`"
    );

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("u.safetensors");
    s.toy.item_store.save(&p).unwrap();
    let e = learnrec_fusion::lookup::load_store(&p, StoreKind::User)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("u.safetensors") && e.contains("expected a `user` store"),
        "{e}"
    );
}

#[test]
fn rankers_round_trip_and_predictions_file() {
    let s = setup(&ToyConfig {
        n_users: 30,
        n_items: 40,
        impressions_per_user: 8,
        ..Default::default()
    });
    let device = Default::default();
    let rc = ranker_config(&s).with_interaction(Interaction::DcnV2 { layers: 2 });
    let fc = FusedRankerConfig::new(
        rc.clone(),
        LearnFusionConfig::new(16, 16).with_stop_gradient(true),
    );
    let base = rc.init::<CpuBackend>(&device);
    let fused = fc.init::<CpuBackend>(&device);
    let meta = RankersMeta {
        baseline: rc,
        fused: Some(fc),
        users: s.users.clone(),
        items: s.items.clone(),
        dataset_users: s.toy.data.users.clone(),
        dataset_items: s.toy.data.items.clone(),
        features: s.toy.data.features.clone(),
    };
    // Predict first: Burn initialises parameters lazily, and a never-used module's clone would
    // draw its own initial weights when saved.
    let ex = &s.toy.data.examples[..50];
    let b1 = Batcher::new(&s.toy.data, &s.users, &s.items, Some(&s.lookup));
    let q1 = predict(&base, &b1, ex, 64, &device).unwrap();
    let p1 = predict(&fused, &b1, ex, 64, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    save_rankers(dir.path(), &meta, &base, Some(&fused)).unwrap();
    let back = load_rankers::<CpuBackend>(dir.path(), &device).unwrap();
    let data2 = back.meta.dataset();
    let b2 = Batcher::new(&data2, &back.meta.users, &back.meta.items, Some(&s.lookup));
    let q2 = predict(&back.baseline, &b2, ex, 64, &device).unwrap();
    assert_eq!(q1, q2, "baseline");
    let p2 = predict(back.fused.as_ref().unwrap(), &b2, ex, 64, &device).unwrap();
    assert_eq!(p1, p2, "fused");

    let out = dir.path().join("pred.csv");
    write_predictions(
        &out,
        &s.toy.data,
        ex,
        &["baseline", "fused"],
        &[q1, p1.clone()],
        true,
    )
    .unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("user_id,item_id,label,score_baseline,score_fused,weight")
    );
    let first: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(first[0], s.toy.data.users.name(ex[0].user));
    assert_eq!(first[4].parse::<f32>().unwrap(), p1[0]);
    assert_eq!(text.lines().count(), ex.len() + 1);

    let e = load_rankers::<CpuBackend>(&dir.path().join("nope"), &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("rankers.json"), "{e}");
}

#[test]
fn plug_in_example_runs() {
    // `cargo test` builds examples; run the built one if it is there.
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let Some(dir) = exe.parent().and_then(|d| d.parent()) else {
        return;
    };
    let bin = dir
        .join("examples")
        .join(format!("plug_in{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        println!("skipped: {} not built", bin.display());
        return;
    }
    let out = std::process::Command::new(&bin)
        .arg("--quick")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "plug_in failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("aux loss"), "{stdout}");
}

#[test]
fn examples_from_the_shared_log_types() {
    use learnrec_eval::data::{
        Action, Catalog, IdMap, Interaction, InteractionLog, Item, LabelRule,
    };
    use learnrec_fusion::io::{LabelSpace, from_log};
    let item = |id: &str, cat: &str, price: f64| Item {
        id: id.into(),
        category: cat.into(),
        brand: "b".into(),
        price: Some(price),
        ..Default::default()
    };
    let catalog = Catalog::from_items(vec![
        item("a", "shoes", 9.9),
        item("b", "bags", 120.0),
        item("c", "hats", 1.0),
    ]);
    let row = |user, item, ts, action, value| Interaction {
        user,
        item,
        ts,
        action,
        value,
        revenue: None,
    };
    // world-style: impressions, a click, a conversion
    let log = InteractionLog {
        users: IdMap::from_names(["u0", "u1"]),
        items: catalog.ids.clone(),
        rows: vec![
            row(0, 0, 10, Action::Impression, 1.0),
            row(0, 0, 11, Action::Click, 1.0),
            row(0, 0, 12, Action::Conversion, 1.0),
            row(0, 1, 13, Action::Impression, 1.0),
            row(1, 1, 5, Action::Impression, 1.0),
            row(1, 1, 6, Action::Click, 1.0),
        ],
    };
    let d = from_log(
        &catalog,
        &log,
        &LabelRule::default(),
        LabelSpace::Impressions,
        0,
        1,
    );
    let got: Vec<(u32, u32, i64, f32)> = d
        .examples
        .iter()
        .map(|e| (e.user, e.item, e.ts, e.label))
        .collect();
    assert_eq!(got, vec![(1, 1, 5, 0.0), (0, 0, 10, 1.0), (0, 1, 13, 0.0)]);
    let d = from_log(
        &catalog,
        &log,
        &LabelRule::default(),
        LabelSpace::Clicks,
        0,
        1,
    );
    let got: Vec<(u32, u32, f32)> = d
        .examples
        .iter()
        .map(|e| (e.user, e.item, e.label))
        .collect();
    assert_eq!(got, vec![(1, 1, 0.0), (0, 0, 1.0)]);
    assert_eq!(d.features.vocabs[0].names(), &["shoes", "bags", "hats"]);

    // MovieLens-style: ratings only; rating ≥ 4 converts; one sampled negative per rating
    let ml = InteractionLog {
        users: IdMap::from_names(["u0"]),
        items: catalog.ids.clone(),
        rows: vec![
            row(0, 0, 1, Action::Rating, 5.0),
            row(0, 1, 2, Action::Rating, 2.0),
        ],
    };
    let d = from_log(
        &catalog,
        &ml,
        &LabelRule::default(),
        LabelSpace::Impressions,
        1,
        3,
    );
    let got: Vec<(u32, i64, f32)> = d.examples.iter().map(|e| (e.item, e.ts, e.label)).collect();
    assert_eq!(
        got,
        vec![(0, 1, 1.0), (2, 1, 0.0), (1, 2, 0.0), (2, 2, 0.0)]
    );
}

#[test]
fn world_directory_through_the_shared_reader() {
    use learnrec_eval::data::LabelRule;
    use learnrec_eval::data::reader::read_dataset_dir;
    use learnrec_eval::segment::{Segment, Thresholds};
    use learnrec_fusion::io::{LabelSpace, Segments, from_log, write_predictions_segmented};
    let dir = tempfile::tempdir().unwrap();
    let cat = "item_id,title,category,brand,price,keywords,attributes,available_from,top_category,price_bucket\n\
               i1,Red shoe,shoes,acme,9.9,\"red,shoe\",\"size:40\",,fashion,0\n\
               i2,Blue bag,bags,bagco,120,,,1000,fashion,2\n";
    std::fs::write(dir.path().join("catalog.csv"), cat).unwrap();
    let inter = "user_id,item_id,timestamp,action,value,revenue\n\
                 u1,i1,10,impression,,\n\
                 u1,i1,11,click,,\n\
                 u1,i1,12,conversion,1,9.9\n\
                 u2,i2,20,impression,,\n\
                 u2,i2,21,click,,\n";
    std::fs::write(dir.path().join("interactions.csv"), inter).unwrap();
    let ds = read_dataset_dir(dir.path()).unwrap();
    let rule = LabelRule::default();
    let d = from_log(&ds.catalog, &ds.log, &rule, LabelSpace::Impressions, 1, 1);
    let got: Vec<(&str, &str, f32)> = d
        .examples
        .iter()
        .map(|e| (d.users.name(e.user), d.items.name(e.item), e.label))
        .collect();
    assert_eq!(got, vec![("u1", "i1", 1.0), ("u2", "i2", 0.0)]);
    // the world's extra catalog columns reach the categorical features
    assert_eq!(
        d.features.fields,
        [
            "category",
            "brand",
            "price_log2",
            "top_category",
            "price_bucket"
        ]
    );
    assert_eq!(d.features.vocabs[0].names(), &["shoes", "bags"]);
    assert_eq!(d.features.vocabs[1].names(), &["acme", "bagco"]);
    assert_eq!(d.features.vocabs[2].names(), &["p3", "p6"]);
    assert_eq!(d.features.vocabs[3].names(), &["fashion"]);
    assert_eq!(d.features.vocabs[4].names(), &["0", "2"]);
    assert_eq!(d.features.values.len(), 2 * 5);
    let d = from_log(&ds.catalog, &ds.log, &rule, LabelSpace::Clicks, 1, 1);
    assert_eq!(d.examples.len(), 2);

    // segments before ts 21: u1 has 2 interactions (click, conversion), u2 none yet (its click
    // is at 21); i1 has 1 conversion, i2 none
    let sg = Segments::before(
        &ds.log,
        &rule,
        21,
        d.users.len(),
        d.items.len(),
        &Thresholds::default(),
    );
    assert_eq!(sg.users, [Segment::LongTail, Segment::ColdStart]);
    assert_eq!(sg.items, [Segment::LongTail, Segment::ColdStart]);
    let sg2 = Segments::before(
        &ds.log,
        &rule,
        22,
        2,
        2,
        &Thresholds {
            user_long_tail_max: 1,
            item_long_tail_max: 0,
        },
    );
    assert_eq!(sg2.users, [Segment::Regular, Segment::LongTail]);
    assert_eq!(sg2.items, [Segment::Regular, Segment::ColdStart]);
    assert_eq!(sg.user(99), Segment::ColdStart);

    // time split at boundaries, and the segment columns of the predictions file
    let s = d.time_split(15, 20);
    assert_eq!((s.train.len(), s.valid.len(), s.test.len()), (1, 0, 1));
    assert!(s.test.iter().all(|e| e.ts >= 20) && s.train.iter().all(|e| e.ts < 15));
    let p = dir.path().join("p.csv");
    write_predictions_segmented(
        &p,
        &d,
        &s.test,
        &["baseline"],
        &[vec![0.5]],
        false,
        Some(&sg),
    )
    .unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    assert_eq!(
        text,
        "user_id,item_id,label,score_baseline,user_segment,item_segment\nu2,i2,0,0.5,cold-start,cold-start\n"
    );

    // bad input is named by the shared reader
    std::fs::write(
        dir.path().join("interactions.csv"),
        format!("{inter}u3,i9,30,click,,\n"),
    )
    .unwrap();
    let e = read_dataset_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("interactions.csv") && e.contains("i9"), "{e}");
}

#[test]
fn movielens_features_are_genre_and_decade() {
    use learnrec_eval::data::{Catalog, Item};
    use learnrec_fusion::io::catalog_features;
    let item = |id: &str, genre: &str, year: &str| {
        let mut it = Item {
            id: id.into(),
            category: genre.into(),
            ..Default::default()
        };
        it.extra.insert("release_year".into(), year.into());
        it
    };
    let c = Catalog::from_items(vec![
        item("1", "Comedy", "1995"),
        item("2", "Drama", "1987"),
    ]);
    let f = catalog_features(&c);
    assert_eq!(f.fields, ["category", "decade"]);
    assert_eq!(f.vocabs[1].names(), &["1990s", "1980s"]);
}

#[test]
fn dense_and_sparse_id_updates_both_learn() {
    use learnrec_fusion::train::EmbeddingUpdate;
    let s = setup(&ToyConfig {
        n_users: 150,
        n_items: 100,
        impressions_per_user: 40,
        new_item_frac: 0.0,
        ..Default::default()
    });
    let split = s.toy.data.temporal_split(0.7, 0.15);
    let device = Default::default();
    let b = Batcher::new(&s.toy.data, &s.users, &s.items, None);
    for upd in [EmbeddingUpdate::Dense, EmbeddingUpdate::Sparse] {
        let cfg = TrainConfig::new()
            .with_max_epochs(3)
            .with_embedding_update(upd);
        let before = ranker_config(&s).init::<AD>(&device);
        let w0: Vec<f32> = before
            .user_emb
            .weight
            .val()
            .into_data()
            .convert::<f32>()
            .into_vec()
            .unwrap();
        let (m, r) =
            train::<AD, _>("baseline", before, &b, &split, &cfg, &device, |_, _| {}).unwrap();
        let w1: Vec<f32> = m
            .user_emb
            .weight
            .val()
            .into_data()
            .convert::<f32>()
            .into_vec()
            .unwrap();
        // the OOV row 0 never appears in training (every training user is in the vocabulary)
        assert_eq!(&w0[..16], &w1[..16], "{upd:?}: the OOV row moved");
        assert_ne!(&w0[16..], &w1[16..], "{upd:?}: the ID table did not learn");
        let first = r.epochs[0].train_loss;
        let last = r.epochs.last().unwrap().train_loss;
        assert!(
            last < first,
            "{upd:?}: training loss did not fall ({first} → {last})"
        );
    }
}
