//! Readers: good paths on small fixtures (world CSV, RecBole atomic, JSON Lines), every bad input
//! the readers must name (file, line, field), and MovieLens-1M when it has been fetched.

use learnrec_eval::Error;
use learnrec_eval::data::reader::{
    CatalogColumn, CatalogOptions, Format, InteractionColumn, InteractionOptions, UnknownItems, read_catalog,
    read_dataset_dir, read_interactions, read_interactions_report,
};
use learnrec_eval::data::{Action, Catalog};
use std::path::{Path, PathBuf};

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(p)
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn small_catalog(dir: &tempfile::TempDir) -> Catalog {
    let p = write(dir, "cat.csv", b"item_id,title\na,Apple\nb,Banana\n");
    read_catalog(&p, &CatalogOptions::default()).unwrap()
}

/// Asserts that `err` is a parse error at `file:line` naming `field`, and its text says `needle`.
fn assert_parse(err: Error, file: &str, line: u64, field: &str, needle: &str) {
    let text = err.to_string();
    match &err {
        Error::Parse { path, line: l, field: f, .. } => {
            assert!(path.ends_with(file), "{text}");
            assert_eq!(*l, line, "{text}");
            assert_eq!(f, field, "{text}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    assert!(text.contains(&format!("{file}:{line}: field `{field}`")), "{text}");
    assert!(text.contains(needle), "`{needle}` not in: {text}");
}

#[test]
fn world_catalog_all_six_fields_and_extra() {
    let cat = read_catalog(fixture("world/catalog.csv"), &CatalogOptions::default()).unwrap();
    assert_eq!(cat.len(), 3);
    let j = cat.get("i1").unwrap();
    assert_eq!(j.title, "Slim Fit Denim Jacket");
    assert_eq!(j.category, "Clothing");
    assert_eq!(j.brand, "Levi's");
    assert_eq!(j.price, Some(399.0));
    assert_eq!(j.keywords, "denim, jacket, slim");
    assert_eq!(j.attributes, "color=blue, size=M");
    assert_eq!(j.available_from, None);
    assert_eq!(j.extra.get("subcategory").map(String::as_str), Some("outerwear"));
    assert_eq!(cat.get("i2").unwrap().available_from, Some(1_700_000_000));
    assert_eq!(cat.get("i3").unwrap().title, "Running Shoes \"Air\"");
    assert_eq!(cat.ids.get("i3"), Some(2));
}

#[test]
fn world_interactions_sorted_with_actions_and_revenue() {
    let cat = read_catalog(fixture("world/catalog.csv"), &CatalogOptions::default()).unwrap();
    let log = read_interactions(fixture("world/interactions.csv"), Some(&cat), &InteractionOptions::default()).unwrap();
    assert_eq!(log.rows.len(), 5);
    assert_eq!(log.users.len(), 2);
    assert_eq!(log.items.len(), 3, "the log uses the catalog's item map");
    let ts: Vec<i64> = log.rows.iter().map(|r| r.ts).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]));
    let first = log.rows[0];
    assert_eq!((log.users.name(first.user), log.items.name(first.item)), ("u2", "i3"));
    assert_eq!(first.action, Action::Click);
    let conv = log.rows.iter().find(|r| r.action == Action::Conversion).unwrap();
    assert_eq!(conv.revenue, Some(399.0));
    assert_eq!(conv.value, 1.0);
    assert_eq!(log.rows.iter().filter(|r| r.action == Action::Impression).count(), 2);
    assert!(log.rows.iter().filter(|r| r.action != Action::Conversion).all(|r| r.revenue.is_none()));
    assert_eq!(log.time_range(), Some((1_700_000_050, 1_700_000_300)));
}

#[test]
fn recbole_atomic_movielens_shape() {
    let ds = read_dataset_dir(fixture("ml-mini")).unwrap();
    let toy = ds.catalog.get("Toy Story (1995)").unwrap();
    assert_eq!(toy.title, "Toy Story");
    assert_eq!(toy.category, "Animation, Children's, Comedy");
    assert_eq!(toy.extra.get("release_year").map(String::as_str), Some("1995"));
    assert_eq!(ds.log.rows.len(), 4);
    assert!(ds.log.rows.iter().all(|r| r.action == Action::Rating));
    let r = ds.log.rows.iter().find(|r| r.ts == 978_300_760).unwrap();
    assert_eq!(ds.log.users.name(r.user), "1m_1");
    assert_eq!(r.value, 5.0);
    assert_eq!(ds.log.items.name(r.item), "Toy Story (1995)");
}

#[test]
fn jsonl_catalog_and_log_with_column_map() {
    let dir = tempfile::tempdir().unwrap();
    let cat = write(
        &dir,
        "cat.jsonl",
        br#"{"sku": "a", "name": "Apple", "kw": ["red", "fruit"], "price": 2.5}

{"sku": "b", "name": "Banana", "price": null, "origin": "EC"}
"#,
    );
    let mut co = CatalogOptions::default();
    co.columns.insert(CatalogColumn::Keywords, "kw".into());
    let c = read_catalog(&cat, &co).unwrap();
    assert_eq!(c.items[0].keywords, "red, fruit");
    assert_eq!(c.items[0].price, Some(2.5));
    assert_eq!(c.items[1].price, None);
    assert_eq!(c.items[1].extra.get("origin").map(String::as_str), Some("EC"));
    assert!(!c.items[0].extra.contains_key("origin"));

    let inter = write(
        &dir,
        "log.ndjson",
        br#"{"who": "x", "item": "b", "t": 5}
{"who": "y", "item": "a", "t": 3.0}
"#,
    );
    let mut io = InteractionOptions::default();
    io.columns.insert(InteractionColumn::User, "who".into());
    io.columns.insert(InteractionColumn::Timestamp, "t".into());
    io.default_action = Action::Conversion;
    let log = read_interactions(&inter, Some(&c), &io).unwrap();
    assert_eq!(log.rows.len(), 2);
    assert_eq!(log.rows[0].ts, 3);
    assert!(log.rows.iter().all(|r| r.action == Action::Conversion && r.value == 1.0));
}

#[test]
fn format_override_reads_tsv_named_txt() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "log.txt", b"user\titem\tts\nu\ta\t1\n");
    let e = read_interactions(&p, None, &InteractionOptions::default()).unwrap_err().to_string();
    assert!(e.contains("log.txt") && e.contains("unknown file format"), "{e}");
    let opts = InteractionOptions { format: Some(Format::Tsv), ..Default::default() };
    let log = read_interactions(&p, None, &opts).unwrap();
    assert_eq!(log.rows[0].action, Action::Click, "implicit log: default action");
}

#[test]
fn error_missing_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "inter.csv", b"user_id,item_id,rating\nu,a,5\n");
    let e = read_interactions(&p, None, &InteractionOptions::default()).unwrap_err();
    assert!(matches!(e, Error::File { .. }));
    let t = e.to_string();
    assert!(t.contains("inter.csv") && t.contains("missing column for field `timestamp`"), "{t}");
    assert!(t.contains("columns are: user_id, item_id, rating"), "{t}");

    let p = write(&dir, "cat.csv", b"item_id,title\na,A\n");
    let mut co = CatalogOptions::default();
    co.columns.insert(CatalogColumn::Brand, "maker".into());
    let t = read_catalog(&p, &co).unwrap_err().to_string();
    assert!(t.contains("cat.csv") && t.contains("missing column `maker` (mapped to field `brand`)"), "{t}");
}

#[test]
fn error_unparsable_number() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "cat.csv", b"item_id,title,price\na,A,1.5\nb,B,abc\n");
    assert_parse(
        read_catalog(&p, &CatalogOptions::default()).unwrap_err(),
        "cat.csv",
        3,
        "price",
        "cannot parse `abc`",
    );
    let p = write(&dir, "inter.tsv", b"user_id\titem_id\ttimestamp\nu\ta\t1\nu\ta\tyesterday\n");
    assert_parse(
        read_interactions(&p, None, &InteractionOptions::default()).unwrap_err(),
        "inter.tsv",
        3,
        "timestamp",
        "cannot parse `yesterday`",
    );
    let p = write(&dir, "r.csv", b"user_id,item_id,timestamp,rating\nu,a,1,NaN\n");
    assert_parse(
        read_interactions(&p, None, &InteractionOptions::default()).unwrap_err(),
        "r.csv",
        2,
        "rating",
        "not a finite number",
    );
}

#[test]
fn error_ragged_row() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "inter.csv", b"user_id,item_id,timestamp\nu,a,1\nu,b\n");
    assert_parse(
        read_interactions(&p, None, &InteractionOptions::default()).unwrap_err(),
        "inter.csv",
        3,
        "timestamp",
        "ragged row: expected 3 fields, found 2",
    );
    let p = write(&dir, "cat.item", b"item_id:token\ttitle:token\na\tA\tsurplus\n");
    assert_parse(read_catalog(&p, &CatalogOptions::default()).unwrap_err(), "cat.item", 2, "extra field 3", "found 3");
}

#[test]
fn error_unknown_item_in_join_or_skip_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let cat = small_catalog(&dir);
    let p = write(&dir, "inter.csv", b"user_id,item_id,timestamp\nu,a,1\nu,b,2\nv,zzz,3\nv,a,4\nv,yyy,5\n");
    assert_parse(
        read_interactions(&p, Some(&cat), &InteractionOptions::default()).unwrap_err(),
        "inter.csv",
        4,
        "item_id",
        "unknown item id `zzz`",
    );
    let opts = InteractionOptions { unknown_items: UnknownItems::Skip, ..Default::default() };
    let (log, rep) = read_interactions_report(&p, Some(&cat), &opts).unwrap();
    assert_eq!(log.rows.len(), 3);
    assert_eq!(rep.rows_read, 5);
    assert_eq!(rep.skipped_unknown_items, 2);
    assert_eq!(rep.first_unknown, Some((4, "zzz".to_owned())));
    // Without a catalog every id is interned.
    assert_eq!(read_interactions(&p, None, &InteractionOptions::default()).unwrap().items.len(), 4);
}

#[test]
fn error_empty_file_and_header_only() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["empty.csv", "empty.inter", "empty.jsonl"] {
        let p = write(&dir, name, b"");
        let t = read_catalog(&p, &CatalogOptions::default()).unwrap_err().to_string();
        assert!(t.contains(name) && t.contains("empty file"), "{t}");
    }
    let p = write(&dir, "head.csv", b"item_id,title\n");
    let t = read_catalog(&p, &CatalogOptions::default()).unwrap_err().to_string();
    assert!(t.contains("head.csv") && t.contains("no data rows"), "{t}");
}

#[test]
fn error_non_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "cat.csv", b"item_id,title\na,ok\nb,caf\xe9\n");
    assert_parse(read_catalog(&p, &CatalogOptions::default()).unwrap_err(), "cat.csv", 3, "title", "not valid UTF-8");
    let p = write(&dir, "cat.jsonl", b"{\"item_id\": \"a\"}\n{\"item_id\": \"\xff\"}\n");
    assert_parse(
        read_catalog(&p, &CatalogOptions::default()).unwrap_err(),
        "cat.jsonl",
        2,
        "(line)",
        "not valid UTF-8",
    );
}

#[test]
fn error_duplicate_catalog_id() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "cat.csv", b"item_id,title\na,A\nb,B\na,A again\n");
    assert_parse(
        read_catalog(&p, &CatalogOptions::default()).unwrap_err(),
        "cat.csv",
        4,
        "item_id",
        "duplicate item id `a` (first at line 2)",
    );
}

#[test]
fn error_bad_action_empty_id_bad_json() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "inter.csv", b"user_id,item_id,timestamp,action\nu,a,1,click\nu,a,2,like\n");
    assert_parse(
        read_interactions(&p, None, &InteractionOptions::default()).unwrap_err(),
        "inter.csv",
        3,
        "action",
        "unknown action `like`",
    );
    let p = write(&dir, "i2.csv", b"user_id,item_id,timestamp\n,a,1\n");
    assert_parse(
        read_interactions(&p, None, &InteractionOptions::default()).unwrap_err(),
        "i2.csv",
        2,
        "user_id",
        "empty value",
    );
    let p = write(&dir, "i3.csv", b"user_id,item_id,timestamp,action\nu,a,1,rating\n");
    assert_parse(
        read_interactions(&p, None, &InteractionOptions::default()).unwrap_err(),
        "i3.csv",
        2,
        "value",
        "needs a value",
    );
    let p = write(&dir, "c.jsonl", b"{\"item_id\": \"a\"}\n{\"item_id\": \n");
    assert_parse(read_catalog(&p, &CatalogOptions::default()).unwrap_err(), "c.jsonl", 2, "(json)", "EOF");
    let p = write(&dir, "d.csv", b"item_id,title,Title\na,b,c\n");
    assert_parse(read_catalog(&p, &CatalogOptions::default()).unwrap_err(), "d.csv", 1, "Title", "duplicate column");
    let p = write(&dir, "missing.csv", b"");
    std::fs::remove_file(&p).unwrap();
    let t = read_catalog(&p, &CatalogOptions::default()).unwrap_err().to_string();
    assert!(t.contains("missing.csv"), "{t}");
}

/// MovieLens-1M as fetched (`learnrec fetch movielens-1m`): the published counts.
#[test]
fn movielens_1m_real_counts() {
    let dir = learnrec_eval::assets::path_of(learnrec_eval::assets::Asset::Movielens1m);
    if !dir.join("ml-1m.inter").is_file() || !dir.join("ml-1m.item").is_file() {
        println!("skipped: MovieLens-1M not found in {}", dir.display());
        return;
    }
    let ds = read_dataset_dir(&dir).unwrap();
    assert_eq!(ds.catalog.len(), 3883);
    assert_eq!(ds.log.rows.len(), 1_000_209);
    assert_eq!(ds.log.users.len(), 6040);
    let mut seen = vec![false; ds.catalog.len()];
    ds.log.rows.iter().for_each(|r| seen[r.item as usize] = true);
    assert_eq!(seen.iter().filter(|&&s| s).count(), 3706);
    assert!(ds.log.rows.iter().all(|r| r.action == Action::Rating && (1.0..=5.0).contains(&r.value)));
    let toy = ds.catalog.get("Toy Story (1995)").unwrap();
    assert_eq!((toy.title.as_str(), toy.category.as_str()), ("Toy Story", "Animation, Children's, Comedy"));
}
